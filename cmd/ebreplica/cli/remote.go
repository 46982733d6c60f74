package cli

import (
	"context"
	"errors"

	"github.com/ebreplica/ebreplica/replica"
)

// openSynced opens the replica and binds it to the remote it recorded at
// init. On failure the replica stays open for Run to close (a replica the
// server holds for a forwarded command stays open).
func (e *env) openSynced(ctx context.Context) (*replica.Replica, error) {
	r, err := e.open()
	if err != nil {
		return nil, err
	}
	url := r.RemoteURL()
	if url == "" {
		return nil, errorf(replica.ErrNoRemote, "the replica in %s has no remote", e.dir)
	}
	if msg := s3CredentialsProblem(url); msg != "" {
		return nil, errorf(nil, "remote %s: %s", url, msg)
	}
	if _, err := r.Backend(ctx); err != nil {
		return nil, errorf(err, "remote %s: %s", url, remoteProblem(url, err))
	}
	if b, err := r.Backend(ctx); err == nil && e.cmd != nil {
		e.trackRemote(e.cmd.name, b)
	}
	return r, nil
}

// syncError gives the errors of push, pull and sync their messages.
func syncError(op string, err error) error {
	return errorf(err, "%s: %s", op, remoteProblem("", err))
}

func isNotFound(err error) bool { return errors.Is(err, replica.ErrNotFound) }
