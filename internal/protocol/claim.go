package protocol

// ClaimStart is where a push's first claim on the log aims.
type ClaimStart int

const (
	// ClaimKnownTip claims the position after the highest one the replica
	// knows to exist (its cursor or its own last push): the protocol. Under
	// contention that tip is as old as the pull that learnt it, and the
	// claim fails whenever another push landed since (sim package doc,
	// "Fleet scale").
	ClaimKnownTip ClaimStart = iota
	// ClaimListedTip lists the log's tail after the known tip first (one
	// LIST, usually of nothing or a few keys) and claims the position
	// after the highest listed: the tip is then one request old. A
	// prototype (issue 17), used only by the simulator: the claim is still
	// a create-only put with the same retries, so nothing the absence
	// rules rely on changes; the sweeps in sim (TestListedTipSweep) run it
	// under the whole fault model.
	ClaimListedTip
)

// KnownTip is the protocol's claim rule.
func KnownTip() ClaimStart { return ClaimKnownTip }

// ListedTip is the prototype claim rule: list the tail, then claim.
func ListedTip() ClaimStart { return ClaimListedTip }
