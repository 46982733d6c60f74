package cli

import (
	"context"
	"errors"

	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/replica"
)

// openSynced opens the replica and binds it to the remote it recorded at
// init.
func (e *env) openSynced(ctx context.Context) (*replica.Replica, error) {
	r, err := e.open()
	if err != nil {
		return nil, err
	}
	url := r.Remote()
	if url == "" {
		return nil, errorf(replica.ErrNoRemote, "the replica in %s has no remote", e.dir)
	}
	b, err := remoteurl.Open(ctx, url)
	if err != nil {
		return nil, errorf(err, "remote %s: %s", url, trimLib(err))
	}
	r.SetBackend(b)
	return r, nil
}

// syncError gives the errors of push, pull and sync their messages.
func syncError(op string, err error) error {
	return errorf(err, "%s: %s", op, trimLib(err))
}

func isNotFound(err error) bool { return errors.Is(err, replica.ErrNotFound) }
