package replica

import "github.com/ebreplica/ebreplica/store"

// FeedSeq returns the sequence number of the newest change in the change
// feed (0 when there is none). Watch(ctx, prefix, FeedSeq()) yields exactly
// the changes committed after this call, so a reader that must not miss a
// change made after it subscribed (an HTTP stream that has answered its
// client) takes its starting point here rather than from WatchFromNow,
// which is read only when the iteration starts.
func (r *Replica) FeedSeq() (uint64, error) {
	var seq uint64
	err := r.e.Store().View(func(v *store.View) (err error) {
		seq, err = v.FeedSeq()
		return err
	})
	return seq, err
}
