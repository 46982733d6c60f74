package cli

import "context"

var reidentifyCmd = &command{
	name:    "reidentify",
	summary: "give a copied replica directory a new id, keeping its data",
	help: `For a directory copied from another replica (or restored from a backup):
push and pull stop with "another directory is using this replica id" until
it gets a new id. Keeps the data; unpushed changes are re-stamped under the
new id. --json: {"replica_id","old_replica_id"}.`,
	maxArgs: 0,
	run:     runReidentify,
}

func runReidentify(ctx context.Context, e *env) error {
	r, err := e.open()
	if err != nil {
		return err
	}
	old := r.ID()
	id, err := r.Reidentify(ctx)
	if err != nil {
		return errorf(err, "reidentify: %s", trimLib(err))
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			ReplicaID string `json:"replica_id"`
			Old       string `json:"old_replica_id"`
		}{id.String(), old.String()})
	}
	o := newOutput(e.stdout)
	o.printf("%s\n", id)
	return o.flush()
}
