package store

import (
	"encoding/binary"
	"fmt"

	"github.com/ebreplica/ebreplica/merge"
)

// The change feed: every change to what a read returns (a key becoming or
// staying live with a new record, or ceasing to be live) is recorded in
// the transaction that makes it, with a local sequence number (m/feed_seq
// is the last issued; the first is 1). The changes of one request are one
// entry, m/feed/<20-digit last seq of the entry>, so a batch of thousands
// of writes adds one key (the small profile's transaction limit counts
// keys). The feed's order is the commit order. Entries whose changes are
// all older than the last FeedRetention are deleted as new ones come (at
// most two a request, oldest first), so the feed stays about that size
// whatever the history. A reader that falls further behind gets
// ErrFeedTooOld (see View.Feed), never a silent gap.

// FeedRetention is how many of the latest change-feed changes are kept
// (at least; whole entries go).
const FeedRetention = 100_000

// ErrFeedTooOld: a change-feed read resumes after a sequence number whose
// successors were dropped (older than the FeedRetention window).
var ErrFeedTooOld = fmt.Errorf("store: the change feed no longer holds changes that old (it keeps the last %d)", FeedRetention)

// FeedEntry is one change in the feed.
type FeedEntry struct {
	Seq      uint64
	Key      string
	Deleted  bool // the key ceased to be live; else it is live with a new record
	Local    bool // a local write; else merged from the remote (or a rebase)
	Conflict bool // the record holds concurrent versions
}

const (
	feedDeleted = 1 << iota
	feedLocal
	feedConflict
)

var (
	keyFeedSeq    = metaKey("feed_seq")
	prefixFeedKey = metaKey("feed/")
)

func feedKey(seq uint64) []byte { return metaKey(fmt.Sprintf("feed/%020d", seq)) }

// addFeed records a change of this request (flushFeed writes them).
func (t *Tx) addFeed(e FeedEntry) { t.feed = append(t.feed, e) }

// flushFeed writes the request's changes as one feed entry, and drops
// entries that fell out of the window.
func (t *Tx) flushFeed() error {
	if len(t.feed) == 0 {
		return nil
	}
	last, err := getUintG(t, keyFeedSeq)
	if err != nil {
		return err
	}
	var b []byte
	for _, e := range t.feed {
		var flags byte
		if e.Deleted {
			flags |= feedDeleted
		}
		if e.Local {
			flags |= feedLocal
		}
		if e.Conflict {
			flags |= feedConflict
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(len(e.Key)))
		b = append(b, e.Key...)
	}
	last += uint64(len(t.feed))
	t.feed = t.feed[:0]
	t.set(keyFeedSeq, putUint(last))
	t.set(feedKey(last), b)
	if last <= FeedRetention {
		return nil
	}
	// Drop up to two of the oldest entries wholly out of the window (read
	// from committed state; an entry this group dropped already is
	// dropped again, harmlessly). The scan starts at the writer's hint,
	// the entry after the last one dropped, not at the first feed key: it
	// would step over every dropped entry Badger has not compacted away
	// yet, which made this scan a fifth of a batched write's time. The
	// hint is memory only (0 after Open: one scan from the start), and may
	// run ahead of a group that did not commit: the entries it skips then
	// stay until the next Open, which is harmless.
	n := 0
	var start []byte
	if t.s.feedLow > 0 {
		start = feedKey(t.s.feedLow)
	}
	return t.reader.Scan(prefixFeedKey, start, func(k, _ []byte) (bool, error) {
		seq, err := feedSeqOf(k)
		if err != nil || seq > last-FeedRetention {
			return false, err
		}
		t.del(append([]byte(nil), k...))
		t.s.feedLow = seq + 1
		n++
		return n < 2, nil
	})
}

func feedSeqOf(k []byte) (uint64, error) {
	var seq uint64
	if _, err := fmt.Sscanf(string(k[len(prefixMeta):]), "feed/%d", &seq); err != nil {
		return 0, fmt.Errorf("%w: m/%s", ErrCorrupt, k[len(prefixMeta):])
	}
	return seq, nil
}

// decodeFeed calls fn for each change of the entry whose last sequence
// number is last.
func decodeFeed(last uint64, val []byte, fn func(FeedEntry) bool) error {
	var es []FeedEntry
	for len(val) > 0 {
		flags := val[0]
		n, w := binary.Uvarint(val[1:])
		if w <= 0 || uint64(len(val)-1-w) < n {
			return fmt.Errorf("%w: change-feed entry %d", ErrCorrupt, last)
		}
		key := string(val[1+w : 1+w+int(n)])
		val = val[1+w+int(n):]
		es = append(es, FeedEntry{Key: key, Deleted: flags&feedDeleted != 0, Local: flags&feedLocal != 0, Conflict: flags&feedConflict != 0})
	}
	first := last - uint64(len(es)) + 1
	for i := range es {
		es[i].Seq = first + uint64(i)
		if !fn(es[i]) {
			return nil
		}
	}
	return nil
}

// FeedSeq returns the sequence number of the newest change-feed change (0:
// none yet).
func (v *View) FeedSeq() (uint64, error) { return getUint(v.r, keyFeedSeq) }

// Feed calls fn with the change-feed changes after sequence number after,
// in order, until fn returns false. When changes after it were already
// dropped (after+1 is older than the oldest kept) it returns ErrFeedTooOld
// and calls fn for none.
func (v *View) Feed(after uint64, fn func(FeedEntry) (bool, error)) error {
	// The oldest kept change: the first of the oldest entry.
	var oldest uint64
	found := false
	if err := v.r.Scan(prefixFeedKey, nil, func(k, val []byte) (bool, error) {
		last, err := feedSeqOf(k)
		if err != nil {
			return false, err
		}
		found = true
		return false, decodeFeed(last, val, func(e FeedEntry) bool { oldest = e.Seq; return false })
	}); err != nil {
		return err
	}
	if found && after+1 < oldest {
		return fmt.Errorf("%w: resume after %d, oldest kept %d", ErrFeedTooOld, after, oldest)
	}
	if !found {
		if last, err := v.FeedSeq(); err != nil || after >= last {
			return err
		} else if last > 0 {
			return fmt.Errorf("%w: resume after %d, none kept", ErrFeedTooOld, after)
		}
		return nil
	}
	var ferr error
	err := v.r.Scan(prefixFeedKey, feedKey(after+1), func(k, val []byte) (bool, error) {
		last, err := feedSeqOf(k)
		if err != nil {
			return false, err
		}
		more := true
		if err := decodeFeed(last, val, func(e FeedEntry) bool {
			if e.Seq <= after {
				return true
			}
			more, ferr = fn(e)
			return more && ferr == nil
		}); err != nil {
			return false, err
		}
		return more && ferr == nil, nil
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// sameVersions reports whether two records of a key hold the same
// versions (a record re-applied, or given a new position, is no change to
// what a read returns).
func sameVersions(a, b merge.Record) bool {
	if len(a.Versions) != len(b.Versions) {
		return false
	}
	for _, v := range a.Versions {
		found := false
		for _, w := range b.Versions {
			if v.Dot == w.Dot {
				found = v.Equal(w)
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
