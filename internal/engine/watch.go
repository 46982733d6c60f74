package engine

import (
	"context"
	"iter"
	"strings"

	"github.com/ebreplica/ebreplica/store"
)

// Change is one entry of the change feed: a change to what Get returns,
// local or merged from the remote, with its local sequence number.
type Change struct {
	Seq      uint64 `json:"seq"`
	Key      string `json:"key"`
	Op       string `json:"op"`     // "put" (live, with a new record) or "delete"
	Origin   string `json:"origin"` // "local" or "remote"
	Conflict bool   `json:"conflict"`
}

// WatchFromNow as Watch's since starts after the newest change: only
// changes made from then on are delivered.
const WatchFromNow = ^uint64(0)

// ErrFeedTooOld: Watch resumed after a sequence number older than the
// change feed keeps (store.FeedRetention changes).
var ErrFeedTooOld = store.ErrFeedTooOld

// watchBatch bounds the entries one read of the feed takes.
const watchBatch = 1000

// Watch yields, in order, every change to a key under prefix after
// sequence number since (WatchFromNow: from now on), then waits for more
// until ctx ends (it then returns without an error). The feed is in the
// local store, written in the same transaction as each change, so a
// reader never holds the writer up however slow it is; a reader that
// falls behind by more than the kept window (store.FeedRetention), or
// resumes after a number that old, gets ErrFeedTooOld and nothing more.
// Within a process no change is delivered twice or skipped; after a crash
// a resume from the last sequence number handled delivers every later one
// (at least once, the number to de-duplicate).
//
// Re-stamps follow the same rule: reidentify and a rebase write the
// unpushed changes again under fresh dots, which is an entry (a local
// put) only where it changes what Get returns (concurrent versions
// settled into one). A rebase (a replica back after retirement) shows
// each live key it does not keep as deleted, and as put again when the
// snapshot or the log brings it back: a consumer that follows the feed
// ends where Get does.
func (r *Engine) Watch(ctx context.Context, prefix string, since uint64) iter.Seq2[Change, error] {
	return func(yield func(Change, error) bool) {
		after := since
		if since == WatchFromNow {
			if err := r.st.View(func(v *store.View) (err error) {
				after, err = v.FeedSeq()
				return err
			}); err != nil {
				yield(Change{}, wrapClosed(err))
				return
			}
		}
		for {
			wake := r.st.Changed() // before the read: a commit after it wakes us
			var batch []store.FeedEntry
			err := r.st.View(func(v *store.View) error {
				return v.Feed(after, func(e store.FeedEntry) (bool, error) {
					batch = append(batch, e)
					return len(batch) < watchBatch, nil
				})
			})
			if err != nil {
				yield(Change{}, wrapClosed(err))
				return
			}
			for _, e := range batch {
				after = e.Seq
				if !strings.HasPrefix(e.Key, prefix) {
					continue
				}
				c := Change{Seq: e.Seq, Key: e.Key, Op: "put", Origin: "remote", Conflict: e.Conflict}
				if e.Deleted {
					c.Op = "delete"
				}
				if e.Local {
					c.Origin = "local"
				}
				if !yield(c, nil) {
					return
				}
			}
			if len(batch) == watchBatch {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
		}
	}
}
