package sim

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Estimated S3 request prices (US East, standard storage class), stated in
// every report: PUT, COPY, POST and LIST cost $0.005 per 1,000 requests,
// GET $0.0004 per 1,000; DELETE is free. Transfer and storage are left
// out.
const (
	PricePutListPer1000 = 0.005
	PriceGetPer1000     = 0.0004
)

// Requests counts the requests that reached the shared store, by verb.
type Requests struct {
	Put    int64 `json:"put"`
	Get    int64 `json:"get"`
	List   int64 `json:"list"`
	Delete int64 `json:"delete"`
}

// Cost is an estimate of what the requests would cost on S3.
type Cost struct {
	USD                 float64 `json:"usd"`
	PricePutListPer1000 float64 `json:"price_put_list_per_1000"`
	PriceGetPer1000     float64 `json:"price_get_per_1000"`
}

func estimate(r Requests) Cost {
	return Cost{
		USD:                 float64(r.Put+r.List)/1000*PricePutListPer1000 + float64(r.Get)/1000*PriceGetPer1000,
		PricePutListPer1000: PricePutListPer1000, PriceGetPer1000: PriceGetPer1000,
	}
}

// Report describes a simulation, or (from RunMany) the sum of several.
type Report struct {
	Seed       uint64 `json:"seed"` // the first seed
	Runs       int    `json:"runs"`
	Policy     string `json:"policy"`
	Engine     string `json:"engine"`
	Durability string `json:"durability"`
	Replicas   int    `json:"replicas"`
	Keys       int    `json:"keys"`
	Ops        int    `json:"ops"` // operations run

	// Converged: every run ended with identical replicas and every
	// invariant held.
	Converged bool `json:"converged"`
	Failed    int  `json:"failed"` // runs that did not
	// Rounds is the number of sync rounds after the faults stopped until
	// the replicas were identical (the most over the runs).
	Rounds int `json:"rounds"`
	// Conflicts counts the records left with concurrent versions by pull
	// merges.
	Conflicts int64 `json:"conflicts"`
	// LostUpdates (lww only) counts concurrent writes that lww hid from a
	// later writer, which overwrote them unread, plus the losing siblings
	// left at the end: the updates lww silently drops.
	LostUpdates int64 `json:"lost_updates"`
	// MaxSiblings is the most concurrent versions one key had anywhere.
	MaxSiblings int `json:"max_siblings"`
	// Writes counts acknowledged local writes; LostWrites those a power
	// loss took before any fsync (Relaxed durability only).
	Writes     int64 `json:"writes"`
	LostWrites int64 `json:"lost_writes"`
	Crashes    int64 `json:"crashes"`
	Partitions int64 `json:"partitions"`
	ClockJumps int64 `json:"clock_jumps"`
	// SkewCapped counts remote timestamps beyond MaxDrift that replicas
	// capped (as of the end; a crash resets a replica's count).
	SkewCapped     int64 `json:"skew_capped"`
	FaultsInjected int64 `json:"faults_injected"`
	// FalseVerdicts counts fencing verdicts (cloned, duplicate id) given
	// after two damaged reads in a row of a registry object, which the
	// design's confirm-on-a-second-read cannot rule out.
	FalseVerdicts int64            `json:"false_verdicts,omitempty"`
	FaultsByKind  map[string]int64 `json:"faults_by_kind"`
	// Compactions, collection, bootstrap and retirement (zero in runs
	// without them): Compacts that succeeded, records they collected, log
	// segments and snapshot objects they pruned, replicas they retired;
	// replicas that joined; offline stretches; rebases seen (a replica
	// re-stamping its offline edits).
	Compactions int64 `json:"compactions,omitempty"`
	Collected   int64 `json:"collected,omitempty"`
	Pruned      int64 `json:"pruned,omitempty"`
	Retired     int64 `json:"retired,omitempty"`
	Joins       int64 `json:"joins,omitempty"`
	Offline     int64 `json:"offline,omitempty"`
	Restamped   int64 `json:"restamped,omitempty"`
	// The absence fault model: pauses, directory copies saved, put back
	// and run alongside, and reidentifications after a correct ErrCloned.
	Pauses       int64 `json:"pauses,omitempty"`
	Backups      int64 `json:"backups,omitempty"`
	Restores     int64 `json:"restores,omitempty"`
	Copies       int64 `json:"copies,omitempty"`
	Reidentified int64 `json:"reidentified,omitempty"`
	// Withdrawn counts writes a reidentified directory's superseded,
	// unpublished versions had seen (or claimed to, through a twin's dot)
	// that its re-stamp no longer covers: reidentify lowers the old id's
	// clock entries, so such a write comes back as a sibling of the
	// re-stamp (reidentify's documented limit; no write is lost).
	Withdrawn int64 `json:"withdrawn,omitempty"`
	// RetiredCompacts counts Compacts that failed with ErrRetired on a
	// retired replica that had not rebased yet (a known replica bug, see
	// World.failed).
	RetiredCompacts int64 `json:"retired_compacts,omitempty"`
	// StuckRebases counts pushes and pulls of a retired replica that
	// failed for want of a snapshot to rebase on (a known replica bug).
	StuckRebases int64 `json:"stuck_rebases,omitempty"`
	// RebaseLost counts offline edits a rebase that failed half-way lost
	// (a known replica bug).
	RebaseLost int64    `json:"rebase_lost,omitempty"`
	Requests   Requests `json:"requests"`
	BytesOut   int64    `json:"bytes_out"` // log segments and registry objects (the manifest excluded)
	BytesIn    int64    `json:"bytes_in"`
	Cost       Cost     `json:"estimated_cost"`
	// Digest is a hash of the final state (one run).
	Digest string `json:"digest,omitempty"`
	// Failure is the first broken invariant, with its seed.
	Failure string `json:"failure,omitempty"`
	// Trace is the run's trace (one run); see World.Trace.
	Trace []string `json:"-"`
	// Workload says where the schedule's writes came from when not
	// generated: a replayed trace (RunTrace, Compare).
	Workload string `json:"workload,omitempty"`
	// Timeline is the run's samples (one run, Config.Timeline).
	Timeline []Sample `json:"-"`
}

// add sums o into r.
func (r *Report) add(o Report) {
	if r.Runs == 0 {
		*r = o
		r.FaultsByKind = map[string]int64{}
		for k, v := range o.FaultsByKind {
			r.FaultsByKind[k] = v
		}
		r.Trace = nil
		if o.Runs == 0 {
			r.Runs = 1
		}
		return
	}
	r.Runs += max(o.Runs, 1)
	r.Ops += o.Ops
	r.Converged = r.Converged && o.Converged
	r.Failed += o.Failed
	r.Rounds = max(r.Rounds, o.Rounds)
	r.Conflicts += o.Conflicts
	r.LostUpdates += o.LostUpdates
	r.MaxSiblings = max(r.MaxSiblings, o.MaxSiblings)
	r.Writes += o.Writes
	r.LostWrites += o.LostWrites
	r.Crashes += o.Crashes
	r.Partitions += o.Partitions
	r.ClockJumps += o.ClockJumps
	r.SkewCapped += o.SkewCapped
	r.FaultsInjected += o.FaultsInjected
	r.FalseVerdicts += o.FalseVerdicts
	r.Compactions += o.Compactions
	r.Collected += o.Collected
	r.Pruned += o.Pruned
	r.Retired += o.Retired
	r.Joins += o.Joins
	r.Offline += o.Offline
	r.Restamped += o.Restamped
	r.Pauses += o.Pauses
	r.Backups += o.Backups
	r.Restores += o.Restores
	r.Copies += o.Copies
	r.Reidentified += o.Reidentified
	r.Withdrawn += o.Withdrawn
	r.RetiredCompacts += o.RetiredCompacts
	r.StuckRebases += o.StuckRebases
	r.RebaseLost += o.RebaseLost
	for k, v := range o.FaultsByKind {
		r.FaultsByKind[k] += v
	}
	r.Requests.Put += o.Requests.Put
	r.Requests.Get += o.Requests.Get
	r.Requests.List += o.Requests.List
	r.Requests.Delete += o.Requests.Delete
	r.BytesOut += o.BytesOut
	r.BytesIn += o.BytesIn
	r.Cost = estimate(r.Requests)
	r.Digest = ""
	if r.Failure == "" {
		r.Failure = o.Failure
	}
}

// WriteText writes the report for people, deterministically.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	runs := fmt.Sprintf("seed %d", r.Seed)
	if r.Runs > 1 {
		runs = fmt.Sprintf("%d runs, seeds %d..%d", r.Runs, r.Seed, r.Seed+uint64(r.Runs)-1)
	}
	fmt.Fprintf(&b, "ebreplica sim: %s; %d replicas, %d keys, policy %s, engine %s, durability %s\n",
		runs, r.Replicas, r.Keys, r.Policy, r.Engine, r.Durability)
	if r.Workload != "" {
		fmt.Fprintf(&b, "workload: %s\n", r.Workload)
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	conv := yes(r.Converged)
	switch {
	case r.Converged && r.Runs > 1:
		conv += fmt.Sprintf(", each after at most %d sync round(s)", r.Rounds)
	case r.Converged:
		conv += fmt.Sprintf(", after %d sync round(s)", r.Rounds)
	case r.Runs > 1:
		conv += fmt.Sprintf(" (%d of %d runs failed)", r.Failed, r.Runs)
	}
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t%s\n", k, fmt.Sprintf(format, a...)) }
	row("converged", "%s", conv)
	row("operations", "%d (%d acknowledged writes, %d lost to power loss before an fsync)", r.Ops, r.Writes, r.LostWrites)
	row("conflicts", "%d records left with concurrent versions by a merge", r.Conflicts)
	if r.Policy == PolicyLWW {
		row("lost updates", "%d concurrent writes overwritten unread under lww", r.LostUpdates)
	}
	row("max siblings", "%d", r.MaxSiblings)
	row("crashes", "%d", r.Crashes)
	row("partitions", "%d", r.Partitions)
	if r.Compactions+r.Joins+r.Offline > 0 {
		row("compaction", "%d compactions: %d records collected, %d objects pruned, %d replicas retired", r.Compactions, r.Collected, r.Pruned, r.Retired)
		row("membership", "%d joins, %d offline stretches, %d offline edits re-stamped by a rebase", r.Joins, r.Offline, r.Restamped)
	}
	if r.Pauses+r.Backups+r.Restores+r.Copies > 0 {
		row("absences", "%d pauses, %d directory copies saved, %d put back, %d run alongside, %d reidentified", r.Pauses, r.Backups, r.Restores, r.Copies, r.Reidentified)
	}
	row("clock", "%d backward jumps; %d remote timestamps capped at MaxDrift", r.ClockJumps, r.SkewCapped)
	kinds := slices.Sorted(func(yield func(string) bool) {
		for k := range r.FaultsByKind {
			if !yield(k) {
				return
			}
		}
	})
	var fk []string
	for _, k := range kinds {
		fk = append(fk, fmt.Sprintf("%s %d", k, r.FaultsByKind[k]))
	}
	faults := fmt.Sprint(r.FaultsInjected)
	if len(fk) > 0 {
		faults += " (" + strings.Join(fk, ", ") + ")"
	}
	row("faults injected", "%s", faults)
	row("requests", "PUT %d, GET %d, LIST %d, DELETE %d", r.Requests.Put, r.Requests.Get, r.Requests.List, r.Requests.Delete)
	row("bytes", "%d out, %d in", r.BytesOut, r.BytesIn)
	row("estimated cost", "$%.6f at S3 request prices: PUT and LIST $%.4f per 1,000, GET $%.4f per 1,000 (DELETE free; transfer and storage not counted)",
		r.Cost.USD, PricePutListPer1000, PriceGetPer1000)
	if r.Digest != "" {
		row("state digest", "%s", r.Digest)
	}
	tw.Flush()
	if r.Failure != "" {
		fmt.Fprintf(&b, "first failure:\n%s\n", r.Failure)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
