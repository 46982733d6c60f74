package cli

import (
	"context"
	"errors"

	"github.com/ebreplica/ebreplica/internal/demo"
)

var demoCmd = &command{
	name:    "demo",
	summary: "a self-contained demonstration on a temporary directory remote",
	help: `Three replicas with skewed clocks (+2 h, -30 min, 0) write offline — disjoint
keys, the same keys concurrently, a delete racing an update, a write made
after seeing another's — then sync, and it prints what each holds and why.
Exits 0 when they converged, 1 otherwise. Needs no server and no --dir.`,
	maxArgs: 0,
	run:     runDemo,
}

func runDemo(ctx context.Context, e *env) error {
	ok, err := demo.RunWith(ctx, e.stdout, demo.Options{LowMemory: e.lowMemory})
	if err != nil {
		return errorf(err, "demo: %v", err)
	}
	if !ok {
		return errorf(errors.New("diverged"), "demo: the replicas did not converge")
	}
	return nil
}
