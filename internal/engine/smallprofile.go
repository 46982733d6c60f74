package engine

import (
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// What the small profile (store.ProfileSmall: --low-memory, and every
// 32-bit build) changes in sync, besides Badger's sizing: fewer segments
// held at once by a pull, a smaller decode budget, and smaller segments
// pushed. The default profile keeps pullWindow, decodeBudget and the
// manifest's segment cap.
const (
	// SmallPullWindow bounds the segments a small-profile pull fetches
	// concurrently (pullWindow, 8, otherwise).
	SmallPullWindow = 2
	// SmallDecodeBudget is the decode budget that the small-profile
	// replicas of a process share (256 MiB otherwise). A segment whose
	// decode costs more (another writer's 8 MiB segment: its compressed
	// bytes plus its raw body, up to about 16 MiB and the record that
	// crosses the cap) still decodes: it waits for the whole budget and
	// runs alone (segment.Budget). The records are then applied in
	// chunks, so what a pull holds is bounded by one segment's compressed
	// and raw bytes, whatever the cap of the writer.
	SmallDecodeBudget = 16 << 20
	// SmallSegmentCap is the raw size at which a small-profile push starts
	// a new segment when the manifest's cap is larger (it is 8 MiB by
	// default). The format allows segments of any size up to the
	// manifest's cap, so other replicas read them as they read any.
	SmallSegmentCap = 1 << 20
)

// smallDecodeBudget is the budget the small-profile replicas of this
// process share (decodeBudget is the default profile's).
var smallDecodeBudget = segment.NewBudget(SmallDecodeBudget)

// small reports whether this replica's store runs the small profile.
func (r *Engine) small() bool { return r.st.Profile() == store.ProfileSmall }

// window is the number of segments (or snapshot parts) a pull fetches at
// once.
func (r *Engine) window() int {
	if r.small() {
		return SmallPullWindow
	}
	return pullWindow
}

// budget is the decode budget this replica's decodes hold.
func (r *Engine) budget() *segment.Budget {
	if r.small() {
		return smallDecodeBudget
	}
	return decodeBudget
}

// pushCap is the raw size at which this replica's push starts a new
// segment: the manifest's cap, at most SmallSegmentCap under the small
// profile. Before the manifest is read (a replica that has not synced
// yet) it is the cap this replica would write into a new one.
func (r *Engine) pushCap() int {
	c := r.opts.SegmentCap
	if r.manifest != nil && r.manifest.SegmentCap > 0 {
		c = r.manifest.SegmentCap
	}
	if c <= 0 {
		c = DefaultSegmentCap
	}
	if r.small() {
		c = min(c, SmallSegmentCap)
	}
	return c
}

// Knobs reports the sync sizes this replica runs with: the pull window,
// the decode budget in bytes and the push segment cap in bytes (they
// differ under the small profile; see SmallPullWindow).
func (r *Engine) Knobs() (window int, budget int64, segmentCap int) {
	return r.window(), r.budget().Size(), r.pushCap()
}
