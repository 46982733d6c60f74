package sim

import (
	"context"
	"fmt"
	"hash/fnv"
	"iter"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/faultremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
)

// errPartition is what a cut-off replica's remote calls return.
var errPartition = fmt.Errorf("sim: replica cut off the remote by a partition: %w", remote.ErrTransient)

// meter counts the requests that reach the shared store, by verb, and the
// bytes moved. It is the simulator's own count rather than the memory
// backend's because the store manifest's body holds the wall-clock time it
// was made at (replica.Manifest.Created), whose length varies: the
// manifest's bytes are left out so that a report is the same on every run.
type meter struct {
	inner remote.Backend
	stats remote.Stats

	// logs holds every log segment written, by key, until checkLog has
	// read it: a compaction may prune a position it uploaded before the
	// operation ends, and what it held was published all the same (seed
	// 330 of the restore sweep).
	logMu sync.Mutex
	logs  map[string][]byte
}

// wrote keeps a log segment the store accepted.
func (m *meter) wrote(key string, data []byte, err error) {
	if err != nil || !strings.HasPrefix(key, remote.LogPrefix) {
		return
	}
	m.logMu.Lock()
	if m.logs == nil {
		m.logs = map[string][]byte{}
	}
	m.logs[key] = data
	m.logMu.Unlock()
}

var _ remote.Backend = (*meter)(nil)

func (m *meter) String() string       { return m.inner.String() }
func (m *meter) Stats() *remote.Stats { return &m.stats }
func countable(key string) bool       { return key != remote.ManifestKey }

func (m *meter) out(key string, n int) {
	m.stats.Puts.Add(1)
	if countable(key) {
		m.stats.BytesOut.Add(int64(n))
	}
}

func (m *meter) Get(ctx context.Context, key string) (remote.Object, error) {
	m.stats.Gets.Add(1)
	obj, err := m.inner.Get(ctx, key)
	if err == nil && countable(key) {
		m.stats.BytesIn.Add(int64(len(obj.Data)))
	}
	return obj, err
}

func (m *meter) Put(ctx context.Context, key string, data []byte) (string, error) {
	m.out(key, len(data))
	etag, err := m.inner.Put(ctx, key, data)
	m.wrote(key, data, err)
	return etag, err
}

func (m *meter) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	m.out(key, len(data))
	etag, err := m.inner.PutIfAbsent(ctx, key, data)
	m.wrote(key, data, err)
	return etag, err
}

func (m *meter) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	m.out(key, len(data))
	etag, err := m.inner.PutIfMatch(ctx, key, data, etag)
	m.wrote(key, data, err)
	return etag, err
}

func (m *meter) Delete(ctx context.Context, key string) error {
	m.stats.Deletes.Add(1)
	return m.inner.Delete(ctx, key)
}

func (m *meter) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	// The memory backend lists one page of up to 1000 objects per request;
	// count its pages.
	return func(yield func(remote.Info, error) bool) {
		n := 0
		m.stats.Lists.Add(1)
		for info, err := range m.inner.List(ctx, prefix, startAfter) {
			if n++; n > 1000 && n%1000 == 1 {
				m.stats.Lists.Add(1)
			}
			if !yield(info, err) {
				return
			}
		}
	}
}

// faultPlan is what the world tells the views about the operation running
// now: its fault rates and the seed of its faults.
type faultPlan struct {
	rates Faults
	seed  uint64 // mixes Config.Seed and the operation's ID
}

// view is one replica's window on the shared store: the partition switch
// and the fault injection of the operation running now. It is the
// replica's remote.Backend.
//
// Faults come from faultremote, seeded per operation (from the run's seed
// and the operation's ID, so an operation draws the same faults whatever
// ran before it) for the calls a replica makes one at a time, and seeded
// per call (from the operation, the object key and how many times this
// operation read it) for Get, which a pull issues from several goroutines
// at once: the faults of concurrent reads cannot depend on the order in
// which the goroutines happen to run. For the same reason a Get runs to
// completion even when a sibling read's error cancels the pull's context:
// which reads succeed must not depend on timing.
type view struct {
	w    *World
	node int
	eng  *diskModel // a dead engine (power failed mid-operation) sends nothing

	mu       sync.Mutex
	cut      bool
	plan     *faultPlan           // nil: no faults
	seq      *faultremote.Backend // the operation's sequential fault injector for log/
	seqMeta  *faultremote.Backend // ... and for the other objects (no late duplicates)
	reads    map[string]int       // Gets per key during this operation
	injected []faultremote.Fault  // faults injected during this operation
	kinds    map[faultremote.Kind]int64
}

var _ remote.Backend = (*view)(nil)

func (v *view) String() string       { return "sim://" + replicaName(v.node) }
func (v *view) Stats() *remote.Stats { return v.w.meter.Stats() }

// begin starts an operation: plan nil means no faults.
func (v *view) begin(plan *faultPlan) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plan, v.seq, v.seqMeta, v.reads, v.injected = plan, nil, nil, map[string]int{}, nil
	if plan != nil {
		v.seq = faultremote.New(v.w.meter, rand.New(rand.NewPCG(plan.seed, 0xfa17)), v.options(plan.rates, true))
		v.seqMeta = faultremote.New(v.w.meter, rand.New(rand.NewPCG(plan.seed, 0x3e7a)), v.options(plan.rates, false))
	}
}

// end returns the faults injected during the operation, sorted.
func (v *view) end() []faultremote.Fault {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := v.injected
	v.plan, v.seq, v.seqMeta, v.injected = nil, nil, nil, nil
	sort.Slice(out, func(i, j int) bool { return faultLess(out[i], out[j]) })
	return out
}

func faultLess(a, b faultremote.Fault) bool {
	if a.Op != b.Op {
		return a.Op < b.Op
	}
	if a.Key != b.Key {
		return a.Key < b.Key
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Offset < b.Offset
}

func (v *view) setCut(on bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.cut = on
}

func (v *view) isCut() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cut
}

func (v *view) options(f Faults, sequential bool) faultremote.Options {
	o := faultremote.Options{
		ErrorRate:       faultremote.EveryOp(f.Errors),
		AmbiguousRate:   f.Ambiguous,
		TornReadRate:    f.TornReads,
		CorruptReadRate: f.CorruptReads,
		Sleep:           func(context.Context, time.Duration) error { return nil },
		OnFault:         v.record,
	}
	if sequential {
		// Late duplicates of the create-only writes of log segments only:
		// the same bytes under the same key again, as a store that
		// mishandles a delayed retry of a create would. Registry objects
		// are left out: a replayed registration would revert the object
		// past later swaps, which no real store does with a create (a
		// rewrite with the same bytes is covered by
		// TestRegistryRewrittenWithItsOwnBytes).
		o.LateDuplicateRate = f.LateDuplicates
		o.LateDuplicateOps = []faultremote.Op{faultremote.OpPutIfAbsent}
		o.LateDuplicateMaxDelay = 3
	}
	return o
}

func (v *view) record(f faultremote.Fault) {
	if f.Kind == faultremote.KindLatency {
		return
	}
	v.mu.Lock()
	v.injected = append(v.injected, f)
	v.mu.Unlock()
}

// route returns the backend a call on key goes to, or the partition
// error.
func (v *view) route(key string) (remote.Backend, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.eng != nil && v.eng.dead.Load():
		return nil, errDead
	case v.cut:
		return nil, errPartition
	case v.seq != nil && strings.HasPrefix(key, remote.LogPrefix):
		return v.seq, nil
	case v.seqMeta != nil:
		return v.seqMeta, nil
	}
	return v.w.meter, nil
}

func (v *view) Get(ctx context.Context, key string) (remote.Object, error) {
	v.mu.Lock()
	if v.eng != nil && v.eng.dead.Load() {
		v.mu.Unlock()
		return remote.Object{}, errDead
	}
	if v.cut {
		v.mu.Unlock()
		return remote.Object{}, errPartition
	}
	plan := v.plan
	var n int
	if plan != nil {
		n = v.reads[key]
		v.reads[key] = n + 1
	}
	v.mu.Unlock()
	ctx = context.WithoutCancel(ctx) // see the type's doc
	if plan == nil {
		return v.w.meter.Get(ctx, key)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", seedKey(key), n)
	rates := plan.rates
	if strings.HasPrefix(key, remote.ReplicasPrefix) || sealremote.IsKeyName(key) {
		// (So does a key object of a Sealed run: an age-wrapped key is
		// random bytes too.)
		// A registry body holds a random nonce (crypto/rand, in package
		// replica): whether a damaged copy still decodes would depend on
		// it, and the run would not repeat. Registry reads fail instead.
		rates.Errors += rates.TornReads + rates.CorruptReads
		rates.TornReads, rates.CorruptReads = 0, 0
	}
	fr := faultremote.New(v.w.meter, rand.New(rand.NewPCG(plan.seed, h.Sum64())), v.options(rates, false))
	return fr.Get(ctx, key)
}

func (v *view) Put(ctx context.Context, key string, data []byte) (string, error) {
	b, err := v.route(key)
	if err != nil {
		return "", err
	}
	return b.Put(ctx, key, data)
}

func (v *view) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	b, err := v.route(key)
	if err != nil {
		return "", err
	}
	return b.PutIfAbsent(ctx, key, data)
}

func (v *view) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	b, err := v.route(key)
	if err != nil {
		return "", err
	}
	return b.PutIfMatch(ctx, key, data, etag)
}

func (v *view) Delete(ctx context.Context, key string) error {
	b, err := v.route(key)
	if err != nil {
		return err
	}
	return b.Delete(ctx, key)
}

func (v *view) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	b, err := v.route(prefix)
	if err != nil {
		return func(yield func(remote.Info, error) bool) { yield(remote.Info{}, err) }
	}
	return b.List(ctx, prefix, startAfter)
}

// describeFaults renders the faults of one operation for the trace:
// deterministic, counted by operation and kind.
func describeFaults(fs []faultremote.Fault) string {
	if len(fs) == 0 {
		return ""
	}
	type k struct {
		op   faultremote.Op
		kind faultremote.Kind
	}
	counts := map[k]int{}
	var order []k
	for _, f := range fs {
		kk := k{f.Op, f.Kind}
		if counts[kk] == 0 {
			order = append(order, kk)
		}
		counts[kk]++
	}
	sort.Slice(order, func(i, j int) bool {
		if order[i].op != order[j].op {
			return order[i].op < order[j].op
		}
		return order[i].kind < order[j].kind
	})
	parts := make([]string, len(order))
	for i, kk := range order {
		parts[i] = fmt.Sprintf("%s %s", kk.op, kk.kind)
		if c := counts[kk]; c > 1 {
			parts[i] += fmt.Sprintf(" x%d", c)
		}
	}
	return "faults[" + strings.Join(parts, ", ") + "]"
}

// seedKey is the name a Get's faults are seeded by: the object's key, with
// the random nonce of a snapshot part's name left out
// (snap/<P>/part-<nonce>-NNNN; package replica draws it from crypto/rand),
// so that the same run draws the same faults.
func seedKey(key string) string {
	if i := strings.Index(key, "-r-"); i > 0 && sealremote.IsKeyName(key) {
		return key[:i+2] // a wrapped key's name holds the random device key's hash
	}
	if !strings.HasPrefix(key, remote.SnapPrefix) {
		return key
	}
	i := strings.Index(key, "/part-")
	if i < 0 {
		return key
	}
	rest := key[i+len("/part-"):]
	if j := strings.LastIndexByte(rest, '-'); j >= 0 {
		return key[:i] + "/part-" + rest[j+1:]
	}
	return key
}
