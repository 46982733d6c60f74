package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// ProbeMaxAge is how long a successful probe of the remote's conditional
// writes is trusted: Connect probes again when the last success recorded
// here is older than this by the replica's wall clock (Options.Wall).
const ProbeMaxAge = 24 * time.Hour

// probeState is the local record of the last successful probe (m/probe).
type probeState struct {
	At time.Time `json:"at"` // the replica's wall clock when it passed
}

// probeIfDue runs remote.ProbeConditional before connect reads or writes
// anything of the store, when this connect registers the replica (and so
// perhaps creates the store), when no probe ever passed here, when the
// last one is older than ProbeMaxAge, or when it lies in the future (the
// wall clock was set back). Otherwise it costs no request, so a push and an
// idle pull cost what they did. A store that ignores conditional writes
// fails with an error wrapping remote.ErrNoConditionalWrites, and nothing
// changes locally; nothing is left on the remote either (the probe deletes
// its scratch object).
func (r *Engine) probeIfDue(ctx context.Context) error {
	var rs regState
	if _, err := r.loadJSON("registry", &rs); err != nil {
		return err
	}
	now := r.now()
	if rs.Registered {
		var ps probeState
		// A record that does not decode counts as none: probe again.
		if b, err := r.meta("probe"); err != nil {
			return err
		} else if b != nil && json.Unmarshal(b, &ps) == nil && !ps.At.IsZero() &&
			!now.Before(ps.At) && now.Sub(ps.At) < ProbeMaxAge {
			return nil
		}
	}
	if err := remote.ProbeConditional(ctx, r.opts.Backend); err != nil {
		return err
	}
	return r.saveJSON(ctx, "probe", probeState{At: now.UTC()})
}
