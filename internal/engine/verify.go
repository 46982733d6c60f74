package engine

// Verify, the fsck of a store, lives in internal/fsck, which reads the
// bucket through remote, remote/format and remote/segment only; these are
// the engine's delegates and the names its callers know.

import (
	"context"

	"github.com/ebreplica/ebreplica/internal/fsck"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
)

type (
	// VerifyOptions configures Verify.
	VerifyOptions = fsck.Options
	// VerifyReport is the result of Verify.
	VerifyReport = fsck.Report
	// Problem is one finding of Verify, about one object.
	Problem = fsck.Problem
)

// Problem kinds (Problem.Kind).
const (
	KindCorrupt      = fsck.KindCorrupt
	KindUnreadable   = fsck.KindUnreadable
	KindUnstable     = fsck.KindUnstable
	KindMissing      = fsck.KindMissing
	KindForeign      = fsck.KindForeign
	KindVersion      = fsck.KindVersion
	KindOrphan       = fsck.KindOrphan
	KindUnregistered = fsck.KindUnregistered
	KindQuarantine   = fsck.KindQuarantine
	KindProbe        = fsck.KindProbe
	KindPlaceholder  = fsck.KindPlaceholder
	KindUnchecked    = fsck.KindUnchecked
)

// LocalObject prefixes the Problem.Object of a finding about the local
// store: "local:" and the key.
const LocalObject = fsck.LocalObject

// The engine's limits are the format's (fsck reads by the format's): a
// compile-time check that they stay equal.
var (
	_ [maxPartSize - format.MaxPartSize]struct{}
	_ [format.MaxPartSize - maxPartSize]struct{}
	_ [DefaultMaxValueSize - format.DefaultMaxValueSize]struct{}
	_ [format.DefaultMaxValueSize - DefaultMaxValueSize]struct{}
)

// Verify checks every object of the store on the replica's remote (see
// the package-level Verify), then reads every record of the local store
// under its policy (findings name LocalObject+key). It does not connect
// first, so it also works on a store whose manifest is damaged.
func (r *Engine) Verify(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if r.opts.Backend == nil {
		return VerifyReport{}, ErrNoRemote
	}
	if o.Now == nil {
		o.Now = r.now
	}
	if o.Policies == nil {
		o.Policies = r.opts.Policies
	}
	b, _, err := r.Seal(ctx, r.opts.Backend) // an encrypted store is read through its seal
	if err != nil {
		return VerifyReport{}, err
	}
	return fsck.VerifyWith(ctx, b, o, fsck.Env{Local: r.st, Closed: ErrClosed, Budget: decodeBudget})
}

// Verify checks every object of the store on b and, with o.Repair,
// repairs corrupt log segments (see package internal/fsck). The error is
// for a verification that could not run (the remote failed); damage is
// reported in the VerifyReport.
func Verify(ctx context.Context, b remote.Backend, o VerifyOptions) (VerifyReport, error) {
	if b == nil {
		return VerifyReport{}, ErrNoRemote
	}
	return fsck.VerifyWith(ctx, b, o, fsck.Env{Budget: decodeBudget})
}
