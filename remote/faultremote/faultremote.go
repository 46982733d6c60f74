// Package faultremote wraps any [remote.Backend] and injects the faults a
// real object store shows, deterministically, for the simulator and for
// tests of the sync layer:
//
//   - errors (500 internal error, 503 slow down, timeout) returned instead
//     of performing a request, at a rate per operation;
//   - latency before each request, through an injectable Sleep so the
//     simulator can use logical time;
//   - ambiguous writes: the write is applied to the inner backend, but the
//     caller gets an error, as when a response is lost;
//   - torn and corrupt reads: Get returns the data truncated, or with one
//     bit flipped, and a nil error (the sync layer's checksums must catch
//     it);
//   - late duplicate writes: a write that succeeded is applied again, as an
//     unconditional Put of the same bytes, a few operations later, as when
//     a delayed retry of the request finally arrives;
//   - a server that ignores conditional writes (Options.IgnoreIfNoneMatch,
//     Options.IgnoreIfMatch): create-only and compare-and-swap puts
//     overwrite like plain puts, which remote.ProbeConditional must refuse.
//
// Every injected error wraps [remote.ErrTransient] and [ErrInjected] and
// names its kind. The faults are a function of the seed of the rand.Rand
// given to New and the sequence of calls: the same seed and the same calls
// in the same order give the same faults. (Concurrent callers make the
// order, and so the faults, nondeterministic.) Each call draws the same
// number of random values whatever the options, so turning one kind of
// fault on or off does not move the others.
//
// Calls that fail the wrapper's own checks (a cancelled context, a bad key
// or prefix) return at once, draw nothing and inject nothing.
package faultremote

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// ErrInjected is wrapped by every error this package injects, besides
// remote.ErrTransient, so tests can tell injected faults from real ones.
var ErrInjected = errors.New("faultremote: injected fault")

// Op names a Backend operation.
type Op uint8

// The operations.
const (
	OpGet Op = iota
	OpPut
	OpPutIfAbsent
	OpPutIfMatch
	OpDelete
	OpList
)

var opNames = [...]string{"get", "put", "put-if-absent", "put-if-match", "delete", "list"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", o)
}

func (o Op) isWrite() bool { return o >= OpPut && o <= OpDelete }

// Kind is a kind of injected fault.
type Kind uint8

// The kinds of faults. The first three are the kinds of injected errors.
const (
	KindInternal      Kind = iota + 1 // HTTP 500 internal error
	KindSlowDown                      // HTTP 503 slow down (throttling)
	KindTimeout                       // the request timed out
	KindAmbiguous                     // the write was applied, but the caller got an error
	KindTornRead                      // Get returned truncated data
	KindCorruptRead                   // Get returned data with a flipped bit
	KindLateDuplicate                 // a past write was applied again
	KindLatency                       // the call was delayed
)

var kindNames = [...]string{"", "500 internal error", "503 slow down", "timeout", "ambiguous write",
	"torn read", "corrupt read", "late duplicate write", "latency"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Rates are probabilities in [0, 1], one per operation.
type Rates struct {
	Get, Put, PutIfAbsent, PutIfMatch, Delete, List float64
}

// EveryOp returns Rates with p for every operation.
func EveryOp(p float64) Rates { return Rates{p, p, p, p, p, p} }

func (r Rates) of(op Op) float64 {
	return [...]float64{r.Get, r.Put, r.PutIfAbsent, r.PutIfMatch, r.Delete, r.List}[op]
}

// Options configures the faults. The zero value injects nothing.
type Options struct {
	// ErrorRate is the probability, per operation, that a call fails with
	// an injected error without reaching the inner backend. An injected
	// List error ends the listing, either before it starts or after up to
	// 1,000 objects, like a failed page request.
	ErrorRate Rates
	// ErrorKinds are the kinds of injected errors, chosen uniformly; only
	// KindInternal, KindSlowDown and KindTimeout are allowed. Default: all
	// three.
	ErrorKinds []Kind
	// LatencyMin and LatencyMax: every call first sleeps a duration drawn
	// uniformly from [LatencyMin, LatencyMax] (none if LatencyMax is 0).
	LatencyMin, LatencyMax time.Duration
	// Sleep waits for d or until ctx is done, returning ctx's error in that
	// case. Default: a timer on the wall clock. The simulator passes its
	// logical clock; tests pass a recorder.
	Sleep func(ctx context.Context, d time.Duration) error
	// AmbiguousRate is the probability that a write (Put, PutIfAbsent,
	// PutIfMatch, Delete) is applied to the inner backend but returns an
	// injected error. A write the inner backend refused returns its own
	// error.
	AmbiguousRate float64
	// TornReadRate and CorruptReadRate are the probabilities that a
	// successful Get of a non-empty object returns the data truncated, or
	// with one bit flipped, and a nil error. Their sum must be at most 1.
	TornReadRate, CorruptReadRate float64
	// LateDuplicateRate is the probability that a successful write of an
	// operation in LateDuplicateOps is applied again later, as an
	// unconditional Put of the same bytes, at the start of a call 1 to
	// LateDuplicateMaxDelay calls later (whatever that call is).
	LateDuplicateRate float64
	// LateDuplicateOps are the operations whose writes may come back.
	// Default: only OpPut. A duplicate of a conditional write is applied
	// unconditionally, which a real store never does (a retried If-Match
	// or If-None-Match request is checked again), so add OpPutIfAbsent or
	// OpPutIfMatch only to model a store that mishandles retries. Only
	// OpPut, OpPutIfAbsent and OpPutIfMatch are allowed.
	LateDuplicateOps []Op
	// LateDuplicateMaxDelay is the largest delay of a late duplicate, in
	// calls. Default 10.
	LateDuplicateMaxDelay int
	// IgnoreIfNoneMatch and IgnoreIfMatch model a server that ignores the
	// condition of a create-only write (If-None-Match: *), or of a
	// compare-and-swap write (If-Match): PutIfAbsent, or PutIfMatch, is
	// passed on to the inner backend as a plain Put, so it always succeeds
	// and overwrites. This is a property of the modelled server, not a
	// fault: it holds whether injection is enabled or not (SetEnabled and
	// Heal leave it), draws no random numbers and is not reported to
	// OnFault; the other faults apply to such a call as to any other.
	IgnoreIfNoneMatch, IgnoreIfMatch bool
	// OnFault, if set, is called for every injected fault, in the calling
	// goroutine, without locks held.
	OnFault func(Fault)
}

// Fault describes one injected fault, for traces.
type Fault struct {
	Seq  int64 // the number of the call (1 for the first call made while enabled)
	Op   Op
	Key  string // the key, or the List prefix
	Kind Kind
	// Delay is the latency injected (KindLatency); Offset is where a torn
	// read was cut or which byte was corrupted; Of is the late duplicate's
	// original call number.
	Delay  time.Duration
	Offset int
	Of     int64
}

func (f Fault) String() string {
	s := fmt.Sprintf("#%d %s %q: %s", f.Seq, f.Op, f.Key, f.Kind)
	switch f.Kind {
	case KindLatency:
		s += " " + f.Delay.String()
	case KindTornRead, KindCorruptRead:
		s += fmt.Sprintf(" at %d", f.Offset)
	case KindLateDuplicate:
		s += fmt.Sprintf(" of #%d", f.Of)
	}
	return s
}

// Counts are the numbers of injected faults by kind.
type Counts struct {
	Internal, SlowDown, Timeout      int64
	Ambiguous, TornRead, CorruptRead int64
	LateDuplicate, Latency           int64
	Slept                            time.Duration // total injected latency
}

// Errors returns the number of injected errors of the three error kinds.
func (c Counts) Errors() int64 { return c.Internal + c.SlowDown + c.Timeout }

func (c *Counts) add(f Fault) {
	switch f.Kind {
	case KindInternal:
		c.Internal++
	case KindSlowDown:
		c.SlowDown++
	case KindTimeout:
		c.Timeout++
	case KindAmbiguous:
		c.Ambiguous++
	case KindTornRead:
		c.TornRead++
	case KindCorruptRead:
		c.CorruptRead++
	case KindLateDuplicate:
		c.LateDuplicate++
	case KindLatency:
		c.Latency++
		c.Slept += f.Delay
	}
}

// validate fills in defaults and checks the options; the one place that
// does so.
func (o Options) validate() (Options, error) {
	rate := func(name string, p float64) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("faultremote: %s %v outside [0, 1]", name, p)
		}
		return nil
	}
	for op := OpGet; op <= OpList; op++ {
		if err := rate("ErrorRate."+op.String(), o.ErrorRate.of(op)); err != nil {
			return o, err
		}
	}
	for _, r := range []struct {
		name string
		p    float64
	}{
		{"AmbiguousRate", o.AmbiguousRate}, {"TornReadRate", o.TornReadRate},
		{"CorruptReadRate", o.CorruptReadRate}, {"LateDuplicateRate", o.LateDuplicateRate},
		{"TornReadRate+CorruptReadRate", o.TornReadRate + o.CorruptReadRate},
	} {
		if err := rate(r.name, r.p); err != nil {
			return o, err
		}
	}
	if len(o.ErrorKinds) == 0 {
		o.ErrorKinds = []Kind{KindInternal, KindSlowDown, KindTimeout}
	}
	o.ErrorKinds = slices.Clone(o.ErrorKinds)
	for _, k := range o.ErrorKinds {
		if k < KindInternal || k > KindTimeout {
			return o, fmt.Errorf("faultremote: ErrorKinds: %v is not an error kind", k)
		}
	}
	if o.LatencyMin < 0 || o.LatencyMax < o.LatencyMin {
		return o, fmt.Errorf("faultremote: bad latency range [%v, %v]", o.LatencyMin, o.LatencyMax)
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if len(o.LateDuplicateOps) == 0 {
		o.LateDuplicateOps = []Op{OpPut}
	}
	o.LateDuplicateOps = slices.Clone(o.LateDuplicateOps)
	for _, op := range o.LateDuplicateOps {
		if op != OpPut && op != OpPutIfAbsent && op != OpPutIfMatch {
			return o, fmt.Errorf("faultremote: LateDuplicateOps: %v cannot be duplicated", op)
		}
	}
	if o.LateDuplicateMaxDelay < 0 {
		return o, fmt.Errorf("faultremote: negative LateDuplicateMaxDelay %d", o.LateDuplicateMaxDelay)
	}
	if o.LateDuplicateMaxDelay == 0 {
		o.LateDuplicateMaxDelay = 10
	}
	return o, nil
}

// sleep is the default Options.Sleep.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backend injects faults into the calls it passes to an inner Backend. All
// methods are safe for concurrent use.
type Backend struct {
	inner remote.Backend
	opts  Options

	mu      sync.Mutex
	rng     *rand.Rand
	enabled bool
	seq     int64
	pending []duplicate
	counts  Counts
}

// duplicate is a write waiting to come back.
type duplicate struct {
	due, of int64
	key     string
	data    []byte
}

var _ remote.Backend = (*Backend)(nil)

// New wraps inner. All randomness comes from rng, which the Backend uses
// under its own lock and nobody else should use. New panics if inner or
// rng is nil or opts are invalid: those are programming errors. Faults are
// enabled.
func New(inner remote.Backend, rng *rand.Rand, opts Options) *Backend {
	if inner == nil || rng == nil {
		panic("faultremote: New with a nil inner backend or rng")
	}
	opts, err := opts.validate()
	if err != nil {
		panic(err)
	}
	return &Backend{inner: inner, opts: opts, rng: rng, enabled: true}
}

// Inner returns the wrapped backend.
func (b *Backend) Inner() remote.Backend { return b.inner }

// String names the inner backend, marked as faulty.
func (b *Backend) String() string { return "faulty " + b.inner.String() }

// Stats returns the inner backend's counters, so they count the requests
// that really reached it: injected errors do not count, ambiguous writes
// and late duplicates do.
func (b *Backend) Stats() *remote.Stats { return b.inner.Stats() }

// SetEnabled turns fault injection on or off. While off, calls pass
// straight through, draw no random numbers and pending late duplicates
// wait.
func (b *Backend) SetEnabled(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enabled = on
}

// Heal turns fault injection off and drops pending late duplicates.
func (b *Backend) Heal() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.enabled = false
	b.pending = nil
}

// Faults returns the numbers of faults injected so far.
func (b *Backend) Faults() Counts {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.counts
}

// Pending returns the number of late duplicates not yet applied.
func (b *Backend) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// plan is what one call injects, drawn up front under the lock.
type plan struct {
	seq      int64
	fail     Kind // 0: no injected error
	latency  time.Duration
	ambig    bool
	damage   Kind    // KindTornRead, KindCorruptRead or 0
	pos      float64 // in [0, 1): where to tear or corrupt, or where a List fails
	bit      uint8
	late     bool
	delay    int
	due      []duplicate
	disabled bool
}

// draw plans a call of op. It always draws the same random numbers.
func (b *Backend) draw(op Op) plan {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return plan{disabled: true}
	}
	b.seq++
	o := &b.opts
	r := b.rng
	// Exactly eight 64-bit draws (Float64 takes one; IntN could take more).
	rFail, rKind, rLat, rAmbig, rDamage, rPos, rLate, rExtra :=
		r.Float64(), r.Uint64(), r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Float64(), r.Uint64()
	p := plan{seq: b.seq, pos: rPos}
	if rFail < o.ErrorRate.of(op) {
		p.fail = o.ErrorKinds[rKind%uint64(len(o.ErrorKinds))]
	}
	if o.LatencyMax > 0 {
		p.latency = o.LatencyMin + time.Duration(rLat*float64(o.LatencyMax-o.LatencyMin))
	}
	p.ambig = op.isWrite() && p.fail == 0 && rAmbig < o.AmbiguousRate
	if op == OpGet {
		switch {
		case rDamage < o.TornReadRate:
			p.damage = KindTornRead
		case rDamage < o.TornReadRate+o.CorruptReadRate:
			p.damage = KindCorruptRead
		}
	}
	p.bit = uint8(rExtra % 8)
	if p.fail == 0 && rLate < o.LateDuplicateRate && slices.Contains(o.LateDuplicateOps, op) {
		p.late = true
		p.delay = 1 + int((rExtra>>8)%uint64(o.LateDuplicateMaxDelay))
	}
	// Take the duplicates now due, in the order they were scheduled.
	keep := b.pending[:0]
	for _, d := range b.pending {
		if d.due <= b.seq {
			p.due = append(p.due, d)
		} else {
			keep = append(keep, d)
		}
	}
	clear(b.pending[len(keep):])
	b.pending = keep
	return p
}

// record counts f and reports it.
func (b *Backend) record(f Fault) {
	b.mu.Lock()
	b.counts.add(f)
	b.mu.Unlock()
	if b.opts.OnFault != nil {
		b.opts.OnFault(f)
	}
}

// schedule remembers a successful write to apply again later.
func (b *Backend) schedule(p plan, key string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.enabled {
		return
	}
	b.pending = append(b.pending, duplicate{due: p.seq + int64(p.delay), of: p.seq, key: key, data: slices.Clone(data)})
}

// before runs the common start of a call that drew plan p: late
// duplicates due, latency, and the injected error if any.
func (b *Backend) before(ctx context.Context, p plan, op Op, key string) error {
	for _, d := range p.due {
		// A request from the past: the caller's cancellation does not
		// reach it, and its outcome is nobody's business.
		_, _ = b.inner.Put(context.WithoutCancel(ctx), d.key, d.data)
		b.record(Fault{Seq: p.seq, Op: OpPut, Key: d.key, Kind: KindLateDuplicate, Of: d.of})
	}
	if p.latency > 0 {
		b.record(Fault{Seq: p.seq, Op: op, Key: key, Kind: KindLatency, Delay: p.latency})
		if err := b.opts.Sleep(ctx, p.latency); err != nil {
			return fmt.Errorf("faultremote: %s %q: %w", op, key, err)
		}
	}
	if p.fail != 0 {
		return b.inject(p, op, key, p.fail)
	}
	return nil
}

// inject records a fault of kind k and returns its error.
func (b *Backend) inject(p plan, op Op, key string, k Kind) error {
	b.record(Fault{Seq: p.seq, Op: op, Key: key, Kind: k})
	what := "injected " + k.String()
	if k == KindAmbiguous {
		what += " (the write was applied)"
	}
	return fmt.Errorf("faultremote: %s %q: %s: %w: %w", op, key, what, ErrInjected, remote.ErrTransient)
}

// check is the wrapper's own preamble: ctx and the key.
func check(ctx context.Context, op Op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("faultremote: %s %q: %w", op, key, err)
	}
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("faultremote: %s: %w", op, err)
	}
	return nil
}

// Get passes the call on, maybe failing it, or tearing or corrupting the
// data it returns.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := check(ctx, OpGet, key); err != nil {
		return remote.Object{}, err
	}
	p := b.draw(OpGet)
	if p.disabled {
		return b.inner.Get(ctx, key)
	}
	if err := b.before(ctx, p, OpGet, key); err != nil {
		return remote.Object{}, err
	}
	obj, err := b.inner.Get(ctx, key)
	if err != nil || len(obj.Data) == 0 || p.damage == 0 {
		return obj, err
	}
	i := int(p.pos * float64(len(obj.Data)))
	if p.damage == KindTornRead {
		obj.Data = obj.Data[:i]
	} else {
		obj.Data[i] ^= 1 << p.bit
	}
	b.record(Fault{Seq: p.seq, Op: OpGet, Key: key, Kind: p.damage, Offset: i})
	return obj, nil
}

// write runs a write op through the plan: injected error, ambiguous
// outcome, late duplicate.
func (b *Backend) write(ctx context.Context, op Op, key string, data []byte, do func() (string, error)) (string, error) {
	if err := check(ctx, op, key); err != nil {
		return "", err
	}
	p := b.draw(op)
	if p.disabled {
		return do()
	}
	if err := b.before(ctx, p, op, key); err != nil {
		return "", err
	}
	etag, err := do()
	if err != nil {
		return "", err
	}
	if p.late {
		b.schedule(p, key, data)
	}
	if p.ambig {
		return "", b.inject(p, op, key, KindAmbiguous)
	}
	return etag, nil
}

// Put passes the call on, maybe failing it before or after applying it.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	return b.write(ctx, OpPut, key, data, func() (string, error) { return b.inner.Put(ctx, key, data) })
}

// PutIfAbsent passes the call on, maybe failing it before or after
// applying it; with IgnoreIfNoneMatch, as a plain Put.
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	return b.write(ctx, OpPutIfAbsent, key, data, func() (string, error) {
		if b.opts.IgnoreIfNoneMatch {
			return b.inner.Put(ctx, key, data)
		}
		return b.inner.PutIfAbsent(ctx, key, data)
	})
}

// PutIfMatch passes the call on, maybe failing it before or after
// applying it; with IgnoreIfMatch, as a plain Put.
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	return b.write(ctx, OpPutIfMatch, key, data, func() (string, error) {
		if b.opts.IgnoreIfMatch {
			return b.inner.Put(ctx, key, data)
		}
		return b.inner.PutIfMatch(ctx, key, data, etag)
	})
}

// Delete passes the call on, maybe failing it before or after applying it.
func (b *Backend) Delete(ctx context.Context, key string) error {
	_, err := b.write(ctx, OpDelete, key, nil, func() (string, error) { return "", b.inner.Delete(ctx, key) })
	return err
}

// listFailSpan bounds how many objects an injected List error lets through.
const listFailSpan = 1000

// List passes the call on, maybe ending the listing with an injected
// error.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(remote.Info{}, fmt.Errorf("faultremote: list %q: %w", prefix, err))
			return
		}
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("faultremote: list: %w", err))
			return
		}
		p := b.draw(OpList)
		if p.disabled {
			b.inner.List(ctx, prefix, startAfter)(yield)
			return
		}
		fail := p.fail
		p.fail = 0 // injected below, at its position
		if err := b.before(ctx, p, OpList, prefix); err != nil {
			yield(remote.Info{}, err)
			return
		}
		failAt := -1 // never
		if fail != 0 {
			failAt = 0 // half the time before the first object
			if p.pos >= 0.5 {
				failAt = 1 + int((p.pos-0.5)*2*listFailSpan)
			}
		}
		n := 0
		if failAt != 0 {
			for info, err := range b.inner.List(ctx, prefix, startAfter) {
				if !yield(info, err) || err != nil {
					return
				}
				if n++; n == failAt {
					break
				}
			}
		}
		if fail != 0 {
			yield(remote.Info{}, b.inject(p, OpList, prefix, fail))
		}
	}
}
