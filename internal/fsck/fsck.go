// Package fsck is the fsck of a store: Verify.
//
// Verify lists every object under the backend and checks each against the
// bucket layout (see package remote):
//
//   - store.json parses, names a store id, a supported format and codec;
//   - replicas/<id>.json parses, its replica_id matches its name;
//   - log/<pos> decodes and verifies (segment.Decode); its origin is a
//     registered replica;
//   - no log position is missing above the prune floor: positions at or
//     below the newest snapshot may have been pruned; above it, every
//     position up to the highest one listed or acknowledged by a replica
//     must be there;
//   - snap/<P>/index parses, names P and this store, and every part it lists
//     is there with the listed size and SHA-256 and decodes
//     (segment.DecodePart) with the listed record count;
//   - every record of every segment and snapshot part reads under its key's
//     policy (merge.Read): a counter or set key must hold a state that
//     policy decodes. The policies are VerifyOptions.Policies, else the
//     built-in ones the manifest names (keys under a user policy are then
//     not checked, and Info says so);
//   - nothing else is there.
//
// VerifyWith a local store (Env.Local; the engine's Replica.Verify) also
// reads every record of that store under its policy (the store's records,
// not the remote's).
//
// One read is never a verdict. A read that fails verification may be the
// network's or the store's damage in transit (a torn or bit-flipped
// response), not the object's, so the object is read again, up to maxReads
// times in all: it is damaged only when two reads return the same bytes
// and both fail. A later read that verifies makes the object healthy (a
// warning says a read was damaged); reads that all fail and all differ
// make it unstable: reported, and never repaired.
//
// Severity. A Problem is damage or something this build cannot vouch for;
// the report is OK only without problems (the CLI exits 1 otherwise):
//
//	corrupt     an object that fails to parse or verify, the same bytes
//	            read twice (or a local record that does not decode)
//	unreadable  a record that decodes but that its key's policy cannot read
//	            (a counter or set key holding bytes that are not its CRDT
//	            state): reads and updates of the key fail wherever the
//	            record was applied. ebreplica never writes one: a writer is
//	            broken
//	unstable    reads of an object that each fail verification and all
//	            differ: this run cannot tell damage from a faulty read, and
//	            changes nothing (run verify again)
//	missing     an object the layout requires (a log position, a listed part, store.json)
//	foreign     an object that is not ours: a name outside the layout, or a
//	            snapshot of another store. ebreplica never writes such names, so
//	            one means the prefix is shared or a writer is broken
//	version     an object made by a newer format version (upgrade to check it)
//
// A Warning is not damage:
//
//	orphan        snapshot parts no index lists: a compactor writing now, or
//	              one that crashed (compact --prune removes them once old and
//	              covered by a snapshot)
//	unregistered  a segment whose origin has no registry object
//	unstable      a read of the object failed verification and a later read
//	              of the same version verified: the store or the network
//	              damaged a read, the object is fine
//
// Info lists what earlier repairs left (quarantine/ copies and the
// placeholder segments that replaced them), probe- scratch objects of
// conditional-write probes (a connect running now, or a clean-up that
// failed), and what was not checked (unchecked: keys under a policy this
// verify does not have).
//
// Repair (VerifyOptions.Repair) handles corrupt log segments only: each is
// copied, bytes unchanged, to quarantine/log-<pos>-<unix nanos>-<nonce>
// (create-only), then overwritten in place by compare-and-swap on the ETag
// of the read whose bytes were quarantined (the second of two identical
// reads) with a small valid placeholder segment — no records, the
// all-zero origin (no replica's id, so no puller takes it for its own), and
// a note naming the quarantined copy. Pulls then go on past it; nothing else
// changes. Its records are gone from the log: replicas that applied the
// segment before the damage still hold them, and `push --all` on one of
// them (ideally its origin) publishes them again. A missing position cannot
// be repaired so (there is nothing to swap): `compact` on a replica that
// applied it writes a snapshot that covers it (replicas below rebase onto
// it). Nor can snapshots (a newer snapshot from `compact` supersedes a
// damaged one), registries (their owner fences on them), the manifest, or
// unreadable records (the segment verifies; its other records are good):
// each problem says what to do.
//
// Memory. Segments and snapshot parts are read and decoded by at most
// verifyWindow goroutines at once, and each drops its object before it
// takes the next; a re-read keeps only a hash of the earlier reads. Each
// decode holds the decode memory budget (Env.Budget, shared with the
// engine's pulls; remote/segment) while it runs.
//
// Verify reads the bucket through packages remote (the names),
// remote/format (the JSON bodies) and remote/segment (the binary ones) only:
// it does not import the sync engine, so what it accepts is what the
// format says, not what one engine happens to do.
package fsck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
	"golang.org/x/sync/errgroup"
)

// Problem kinds (Problem.Kind).
const (
	KindCorrupt      = "corrupt"
	KindUnreadable   = "unreadable"
	KindUnstable     = "unstable"
	KindMissing      = "missing"
	KindForeign      = "foreign"
	KindVersion      = "version"
	KindOrphan       = "orphan"
	KindUnregistered = "unregistered"
	KindQuarantine   = "quarantine"
	KindProbe        = "probe"
	KindPlaceholder  = "placeholder"
	KindUnchecked    = "unchecked"
)

// LocalObject prefixes the Problem.Object of a finding about the local
// store: "local:" and the key.
const LocalObject = "local:"

// placeholderNote starts the note of a repair placeholder segment.
const placeholderNote = "quarantined to "

// verifyWindow bounds the objects Verify fetches and decodes concurrently.
const verifyWindow = 8

// maxReads bounds the reads of an object that fails verification; it is
// damaged only when two of them return the same bytes.
const maxReads = 4

// maxKeysNamed bounds the keys one finding names.
const maxKeysNamed = 5

// maxLocalProblems bounds the local records reported one by one.
const maxLocalProblems = 20

// chunk bounds the records read from a segment at once (the engine's
// apply chunk).
const chunk = 2000

// defaultBudget is the decode budget of a Verify given none.
var defaultBudget = segment.NewBudget(256 << 20)

// ErrNoRemote: Verify was given no backend.
var ErrNoRemote = errors.New("fsck: no remote backend")

// Options configures Verify.
type Options struct {
	// Repair quarantines each corrupt log segment and replaces it in place
	// with a valid placeholder (see the package documentation).
	Repair bool
	// Now names quarantine copies (time.Now when nil).
	Now func() time.Time
	// Policies reads the records (nil: the built-in policies the manifest
	// names; the engine's Replica.Verify passes the replica's).
	Policies *merge.Registry
	// Progress, when set, is told the bytes of log segments checked so
	// far, of the total listed (called from several goroutines, one at a
	// time).
	Progress func(done, total int64)
}

// Problem is one finding of Verify, about one object.
type Problem struct {
	Object  string `json:"object"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Object + ": " + p.Kind + ": " + p.Message }

// Report is the result of Verify. Problems are damage (OK is false
// when there is any); Warnings and Info are not. With Repair, the problems
// repaired move from Problems to Repaired. Every list is sorted by object.
type Report struct {
	OK           bool      `json:"ok"`
	Objects      int       `json:"objects"`       // objects listed
	Segments     int       `json:"segments"`      // log segments checked
	Snapshots    int       `json:"snapshots"`     // snapshot indexes checked
	LocalRecords int       `json:"local_records"` // local records checked (Env.Local)
	Problems     []Problem `json:"problems"`
	Warnings     []Problem `json:"warnings"`
	Repaired     []Problem `json:"repaired"`
	Info         []Problem `json:"info"`
}

// Env is what a caller that also syncs the store shares with Verify.
type Env struct {
	// Local, when set, is a replica's store: its records are read under
	// their policies too (findings name LocalObject+key), after the remote's.
	Local *store.Store
	// Closed, when set, replaces store.ErrClosed in the error of a Local
	// store closed meanwhile (the caller's own sentinel).
	Closed error
	// Budget bounds the memory that decodes hold (nil: one of this
	// package's, shared by every Verify given none).
	Budget *segment.Budget
}

// Verify checks every object of the store on b and, with o.Repair,
// repairs corrupt log segments (see the package documentation for the
// checks, their severity and what repair does). It is safe to run while
// replicas sync and compact. The error is for a verification that could not
// run (the remote failed); damage is reported in the Report.
func Verify(ctx context.Context, b remote.Backend, o Options) (Report, error) {
	return VerifyWith(ctx, b, o, Env{})
}

// VerifyWith is Verify with what env shares: a local store to check too,
// and a decode budget.
func VerifyWith(ctx context.Context, b remote.Backend, o Options, env Env) (Report, error) {
	if b == nil {
		return Report{}, ErrNoRemote
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if env.Budget == nil {
		env.Budget = defaultBudget
	}
	v := &verifier{b: b, o: o, env: env, regs: map[string]bool{}, acks: map[string]uint64{}, parts: map[string]remote.Info{}, used: map[string]bool{}, sizes: map[string]int64{}}
	v.seal, _ = b.(*sealremote.Backend)
	if err := v.run(ctx); err != nil {
		return Report{}, err
	}
	if env.Local != nil {
		if err := v.checkLocal(env.Local); err != nil {
			return Report{}, err
		}
	}
	rep := v.rep
	for _, l := range []*[]Problem{&rep.Problems, &rep.Warnings, &rep.Repaired, &rep.Info} {
		if *l == nil {
			*l = []Problem{}
		}
		slices.SortFunc(*l, cmpProblem)
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

func cmpProblem(a, b Problem) int {
	if c := strings.Compare(a.Object, b.Object); c != 0 {
		return c
	}
	if c := strings.Compare(a.Kind, b.Kind); c != 0 {
		return c
	}
	return strings.Compare(a.Message, b.Message)
}

type verifier struct {
	b remote.Backend
	// seal is b when the store is read through its seal (an encrypted
	// store): objects are read as stored and opened here, so that a body
	// that fails to open is judged like one that fails to decode.
	seal *sealremote.Backend
	o    Options
	env  Env
	rep  Report

	mu       sync.Mutex // guards rep while checks run concurrently
	repairMu sync.Mutex // one repair at a time (o.Now need not be safe for concurrent use)

	regs     map[string]bool        // registry object names seen
	acks     map[string]uint64      // replica id -> ack, read before listing the log
	maxAck   uint64                 // the highest of acks
	manifest *format.Manifest       // nil when missing or unreadable
	policies *merge.Registry        // nil: records are not checked
	logs     []uint64               // listed log positions, ascending
	logSizes []int64                // their listed sizes
	sizes    map[string]int64       // listed sizes of the manifest, registries and indexes
	indexes  []uint64               // listed snapshot index positions, ascending
	parts    map[string]remote.Info // listed snapshot parts
	used     map[string]bool        // parts some index lists
}

func (v *verifier) add(list *[]Problem, object, kind, format string, a ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	*list = append(*list, Problem{Object: object, Kind: kind, Message: fmt.Sprintf(format, a...)})
}

func (v *verifier) problem(object, kind, format string, a ...any) {
	v.add(&v.rep.Problems, object, kind, format, a...)
}

func (v *verifier) warn(object, kind, format string, a ...any) {
	v.add(&v.rep.Warnings, object, kind, format, a...)
}

func (v *verifier) info(object, kind, format string, a ...any) {
	v.add(&v.rep.Info, object, kind, format, a...)
}

func (v *verifier) count(n *int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	*n++
}

func (v *verifier) listErr(prefix string, err error) error {
	return fmt.Errorf("replica: verify: list %q on %s: %w", prefix, v.b, err)
}

func (v *verifier) getErr(key string, err error) error {
	return fmt.Errorf("replica: verify: read %s on %s: %w", key, v.b, err)
}

// flaw is a judge's verdict on bytes that fail verification: the kind and
// message of the problem they make.
type flaw struct{ kind, msg string }

func (f *flaw) Error() string { return f.msg }

func flawf(kind, format string, a ...any) *flaw {
	return &flaw{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// judged is what readJudged makes of an object.
type judged[T any] struct {
	obj  remote.Object // the last read
	val  T             // the judge's value for obj.Data
	err  error         // the judge's verdict on obj.Data: nil when it verified
	gone bool          // not there (pruned or deleted)
	// unstable: maxReads reads and no verdict: each failed and no two
	// were the same (or, read twice, no two were the same). err is the
	// last one's verdict, and obj must not be acted on.
	unstable bool
	// short: two reads returned the same failing bytes, but not the
	// listed number: reads cut short the same way (or it changed since
	// the listing); obj must not be acted on.
	short  bool
	listed int64 // the listed size
	// transit is the verdict on a read that failed when a later read of
	// the same version (the same ETag) verified: that read was damaged.
	transit error
}

// Reading modes of readJudged.
const (
	readOnce  = false // a read that verifies is the verdict
	readTwice = true  // only bytes read twice are (for objects without a checksum)
)

// readJudged reads key, of size bytes when listed, and judges its bytes
// (nil error: they verify). A read that fails is followed by another, up to
// maxReads in all. The verdict is the first read that verifies (with
// twice, the first that verifies and repeats an earlier read); otherwise
// the object is damaged only when two reads return the same bytes, as many
// as listed (obj is then the later of them), and unstable when none do.
// Only hashes of the earlier reads are kept.
func readJudged[T any](ctx context.Context, v *verifier, key string, size int64, twice bool, judge func([]byte) (T, error)) (judged[T], error) {
	var out judged[T]
	var sums [][sha256.Size]byte
	var first error
	var firstETag string
	for range maxReads {
		obj, raw, err := v.read(ctx, key)
		if errors.Is(err, remote.ErrNotExist) {
			return judged[T]{gone: true}, nil
		}
		if err != nil && !errors.Is(err, sealremote.ErrTampered) {
			return judged[T]{}, v.getErr(key, err)
		}
		out.obj = obj
		if err != nil {
			var zero T
			out.val, out.err = zero, err
		} else {
			out.val, out.err = judge(obj.Data)
		}
		sum := sha256.Sum256(raw)
		again := slices.Contains(sums, sum)
		switch {
		case out.err == nil && (again || !twice):
			if first != nil && obj.ETag == firstETag {
				out.transit = first
			}
			return out, nil
		case out.err != nil && first == nil:
			first, firstETag = out.err, obj.ETag
		}
		if again && out.err != nil {
			// The same failing bytes twice: the object's own, unless the
			// listing says it holds more.
			out.short, out.listed = int64(len(raw))-v.overhead(key) != size, size
			return out, nil
		}
		sums = append(sums, sum)
	}
	out.unstable = true
	return out, nil
}

// read reads key: obj holds the plaintext (the stored bytes when they do
// not open: the error then wraps sealremote.ErrTampered), raw the bytes as
// stored.
func (v *verifier) read(ctx context.Context, key string) (obj remote.Object, raw []byte, err error) {
	if v.seal == nil {
		obj, err = v.b.Get(ctx, key)
		return obj, obj.Data, err
	}
	obj, err = v.seal.GetSealed(ctx, key)
	if err != nil {
		return obj, nil, err
	}
	raw = obj.Data
	data, err := v.seal.Unseal(ctx, key, raw)
	if err == nil {
		obj.Data = data
	}
	return obj, raw, err
}

// overhead is the bytes sealing adds to the stored body of key.
func (v *verifier) overhead(key string) int64 {
	if v.seal == nil {
		return 0
	}
	return v.seal.Overhead(key)
}

// unstable returns the problem an object makes when its reads cannot be
// judged (j.unstable or j.short).
func unstable[T any](key string, j judged[T]) (string, bool) {
	switch {
	case j.unstable && j.err == nil:
		return fmt.Sprintf("%d reads returned different bytes, none twice: "+
			"the store or the network damages reads of it, so this run cannot tell whether the object is damaged; nothing was changed: run verify again",
			maxReads), true
	case j.unstable:
		return fmt.Sprintf("%d reads returned different bytes and none verifies (the last: %s): "+
			"the store or the network damages reads of it, so this run cannot tell whether the object is damaged; nothing was changed: run verify again",
			maxReads, flawMsg(key, j.err)), true
	case j.short:
		return fmt.Sprintf("two reads returned the same %d bytes, which fail verification (%s), but the listing says %d: "+
			"reads are cut short the same way, or it changed since the listing; nothing was changed: run verify again",
			len(j.obj.Data), flawMsg(key, j.err), j.listed), true
	}
	return "", false
}

// reportRead reports what the reads of an object may show besides the
// judge's verdict: reads that cannot be judged (a problem; true: nothing
// else to say) and a read damaged in transit (a warning).
func reportRead[T any](v *verifier, key string, j judged[T]) bool {
	if msg, ok := unstable(key, j); ok {
		v.problem(key, KindUnstable, "%s", msg)
		return true
	}
	if j.transit != nil {
		v.warn(key, KindUnstable, "a read failed verification (%s) and a later read of the same version verified: "+
			"the store or the network damaged that read; the object is fine", flawMsg(key, j.transit))
	}
	return false
}

// flawMsg is a verdict's message without the object's name.
func flawMsg(key string, err error) string {
	var f *flaw
	if errors.As(err, &f) {
		return f.msg
	}
	return segErr(err, key)
}

func (v *verifier) run(ctx context.Context) error {
	// Registries first: an ack read now names positions that existed
	// before the log is listed below, so a missing one is damage, not a
	// push that landed after the listing.
	for info, err := range v.b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return v.listErr(remote.ReplicasPrefix, err)
		}
		v.sizes[info.Key] = info.Size
		if err := v.checkRegistry(ctx, info.Key, true); err != nil {
			return err
		}
	}
	var manifest bool
	for info, err := range v.b.List(ctx, "", "") {
		if err != nil {
			return v.listErr("", err)
		}
		v.rep.Objects++
		if err := v.classify(ctx, info, &manifest); err != nil {
			return err
		}
	}
	if err := v.checkManifest(ctx, manifest); err != nil {
		return err
	}
	v.choosePolicies()
	if err := v.checkSnapshots(ctx); err != nil {
		return err
	}
	if err := v.checkLog(ctx); err != nil {
		return err
	}
	v.checkGaps()
	v.checkOrphans()
	return nil
}

// classify sorts one listed object into the layout, or reports it.
func (v *verifier) classify(ctx context.Context, info remote.Info, manifest *bool) error {
	key := info.Key
	switch {
	case key == remote.ManifestKey:
		v.sizes[key] = info.Size
		*manifest = true
	case strings.HasPrefix(key, remote.ReplicasPrefix):
		if !v.regs[key] {
			v.sizes[key] = info.Size
			return v.checkRegistry(ctx, key, false) // registered since the first listing
		}
	case strings.HasPrefix(key, remote.LogPrefix):
		if p, ok := remote.ParseLogKey(key); ok && p > 0 {
			v.logs = append(v.logs, p)
			v.logSizes = append(v.logSizes, info.Size)
			return nil
		}
		v.problem(key, KindForeign, "not an ebreplica object: log segments are named log/<20-digit position from 1>")
	case strings.HasPrefix(key, remote.SnapPrefix):
		p, rest, ok := remote.ParseSnapKey(key)
		switch {
		case ok && rest == "index" && key == remote.SnapKey(p):
			v.indexes = append(v.indexes, p)
			v.sizes[key] = info.Size
		case ok && remote.IsPartName(rest) && strings.HasPrefix(key, remote.SnapDir(p)):
			v.parts[key] = info
		default:
			v.problem(key, KindForeign, "not an ebreplica object: snapshots are snap/<20-digit position>/index and snap/<position>/part-<nonce>-<n>")
		}
	case strings.HasPrefix(key, remote.QuarantinePref):
		v.info(key, KindQuarantine, "a copy of an object that failed verification, kept by an earlier repair (%d bytes)", info.Size)
	case sealremote.IsKeyName(key) && v.seal != nil:
		// A wrapped data key or an epoch marker of an encrypted store:
		// the seal checked the ones this device holds when it opened.
	case strings.HasPrefix(key, remote.ProbePrefix):
		v.info(key, KindProbe, "the scratch object of a conditional-write probe (a connect running now, or one whose clean-up failed); safe to delete")
	default:
		v.problem(key, KindForeign, "not an ebreplica object: this prefix should hold only an ebreplica store")
	}
	return nil
}

// checkRegistry checks replicas/<id>.json; first is true for the registry
// pass made before the log is listed (only those acks count).
func (v *verifier) checkRegistry(ctx context.Context, key string, first bool) error {
	id, ok := remote.ParseRegistryKey(key)
	if !ok {
		if !first {
			v.problem(key, KindForeign, "not an ebreplica object: registries are replicas/<replica id>.json")
		}
		return nil
	}
	v.regs[key] = true
	j, err := readJudged(ctx, v, key, v.sizes[key], readOnce, func(data []byte) (format.RegistryBody, error) {
		body, err := format.DecodeRegistry(data)
		switch {
		case err != nil:
			return body, flawf(KindCorrupt, "not a registry object (%v): compaction and that replica's pushes fail until it is restored", err)
		case body.Format > format.FormatVersion:
			return body, flawf(KindVersion, "registry format %d, this build reads up to %d: upgrade ebreplica", body.Format, format.FormatVersion)
		case body.Format < 1:
			return body, flawf(KindCorrupt, "registry format %d", body.Format)
		case body.ReplicaID != id.String():
			return body, flawf(KindCorrupt, "replica_id %q does not match the object's name", body.ReplicaID)
		case body.Seq == 0 || body.Nonce == "":
			return body, flawf(KindCorrupt, "registry without seq or nonce")
		}
		return body, nil
	})
	switch {
	case err != nil:
		return err
	case j.gone:
		delete(v.regs, key)
	case reportRead(v, key, j):
	case j.err != nil:
		v.reportFlaw(key, j.err)
	case first:
		v.acks[j.val.ReplicaID] = j.val.Ack
		v.maxAck = max(v.maxAck, j.val.Ack)
	}
	return nil
}

func (v *verifier) reportFlaw(key string, err error) {
	var f *flaw
	if errors.As(err, &f) {
		v.problem(key, f.kind, "%s", f.msg)
		return
	}
	v.problem(key, KindCorrupt, "%s", segErr(err, key))
}

func (v *verifier) checkManifest(ctx context.Context, listed bool) error {
	const key = remote.ManifestKey
	if !listed {
		v.problem(key, KindMissing, "no store manifest: %s holds no ebreplica store (or its manifest was deleted)", v.b)
		return nil
	}
	j, err := readJudged(ctx, v, key, v.sizes[key], readOnce, func(data []byte) (*format.Manifest, error) {
		var m format.Manifest
		if err := json.Unmarshal(data, &m); err != nil || m.RemoteID == "" {
			why := "no store_id"
			if err != nil {
				why = err.Error()
			}
			return nil, flawf(KindCorrupt, "not an ebreplica store manifest (%s)", why)
		}
		switch _, cerr := segment.ParseCodec(m.Codec); {
		case m.Newer():
			return &m, flawf(KindVersion, "store format %d, this build supports %d: upgrade ebreplica", m.Format, format.FormatVersion)
		case m.Format < 1:
			return &m, flawf(KindCorrupt, "store format %d", m.Format)
		case cerr != nil:
			return &m, flawf(KindCorrupt, "%v", cerr)
		case m.SegmentCap < 0:
			return &m, flawf(KindCorrupt, "segment_cap %d", m.SegmentCap)
		}
		return &m, nil
	})
	switch {
	case err != nil:
		return err
	case j.gone:
		v.problem(key, KindMissing, "the store manifest vanished while verifying")
		return nil
	case reportRead(v, key, j):
		return nil
	case j.err != nil:
		v.reportFlaw(key, j.err)
	}
	v.manifest = j.val
	return nil
}

// unchecked stands for a policy this verify does not have: the records
// under its prefix are not read.
type unchecked struct{ name string }

func (u unchecked) Name() string { return u.name }

func (unchecked) Resolve(string, []merge.Version) (merge.Result, error) {
	return merge.Result{Winner: -1}, nil
}

// choosePolicies sets the policies records are read with.
func (v *verifier) choosePolicies() {
	if v.o.Policies != nil {
		v.policies = v.o.Policies
		return
	}
	if v.manifest == nil {
		return // reported: nothing says how to read the records
	}
	reg := merge.NewRegistry()
	for _, prefix := range slices.Sorted(maps.Keys(v.manifest.Policies)) {
		name := v.manifest.Policies[prefix]
		p, ok := merge.Builtin(name)
		if !ok {
			p = unchecked{name}
			v.info(remote.ManifestKey, KindUnchecked, "records under prefix %q (policy %q) were not read: this verify does not have that policy "+
				"(verify in a replica directory that registers it does)", prefix, name)
		}
		reg.Set(prefix, p)
	}
	v.policies = reg
}

// readRecord reads one record under its key's policy; false when this
// verify cannot (no policies, or a policy it does not have).
func (v *verifier) readRecord(key string, r merge.Record) (bool, error) {
	if v.policies == nil {
		return false, nil
	}
	p := v.policies.For(key)
	if _, ok := p.(unchecked); ok {
		return false, nil
	}
	_, err := merge.Read(p, key, r)
	return true, err
}

// checkRecords reports the records of object that their policies cannot
// read, in one problem.
// badRecords is what the records of one object gave under their policies.
type badRecords struct {
	count int      // records that failed
	keys  []string // the first maxKeysNamed of their keys
	first error
}

// streamRecords opens a segment or snapshot part under the store's decode
// limits and the process-wide decode budget, and reads its records as a
// stream of chunks under their policies: verify never holds a whole
// decoded segment.
func (v *verifier) streamRecords(ctx context.Context, name string, data []byte, part bool) (segment.Header, badRecords, error) {
	limit := int64(format.DefaultSegmentCap)
	if v.manifest != nil && v.manifest.SegmentCap > 0 {
		limit = int64(v.manifest.SegmentCap)
	}
	if part {
		limit = max(limit, format.MaxPartSize)
	}
	dec := segment.Decoder{MaxRaw: limit + 2*format.DefaultMaxValueSize + 1<<20, Budget: v.env.Budget}
	open := dec.Open
	if part {
		open = dec.OpenPart
	}
	var bad badRecords
	rd, err := open(ctx, name, data)
	if err != nil {
		return segment.Header{}, bad, err
	}
	defer rd.Close()
	for {
		es, err := rd.Next(chunk)
		if errors.Is(err, io.EOF) {
			return rd.Header(), bad, nil
		}
		if err != nil {
			return rd.Header(), bad, err
		}
		for _, e := range es {
			if _, err := v.readRecord(e.Key, e.Record); err != nil {
				bad.count++
				if len(bad.keys) < maxKeysNamed {
					bad.keys = append(bad.keys, e.Key)
				}
				if bad.first == nil {
					bad.first = err
				}
			}
		}
	}
}

func (v *verifier) checkRecords(object string, bad badRecords, fix string) {
	keys, first := bad.keys, bad.first
	if bad.count == 0 {
		return
	}
	named := make([]string, 0, maxKeysNamed)
	for _, k := range keys[:min(len(keys), maxKeysNamed)] {
		named = append(named, fmt.Sprintf("%q", k))
	}
	more := ""
	if bad.count > len(keys) {
		more = fmt.Sprintf(" and %d more", bad.count-len(keys))
	}
	v.problem(object, KindUnreadable, "%d record(s) that their policy cannot read, key(s) %s%s (%v): reads and updates of them fail "+
		"on every replica that applied them; ebreplica never writes such state, so a writer is broken; %s",
		bad.count, strings.Join(named, ", "), more, first, fix)
}

// checkLocal reads every record of the local store under its policy.
func (v *verifier) checkLocal(st *store.Store) error {
	if v.policies == nil {
		v.policies = st.Policies()
	}
	var bad int
	last := ""
	err := st.View(func(view *store.View) error {
		return view.Records("", "", func(key string, s store.Stored) (bool, error) {
			last = key
			v.rep.LocalRecords++
			if _, err := v.readRecord(key, s.Record); err != nil {
				if bad++; bad <= maxLocalProblems {
					v.problem(LocalObject+key, KindUnreadable, "%v: reads and updates of this key fail here", err)
				}
			}
			return true, nil
		})
	})
	if bad > maxLocalProblems {
		v.problem(LocalObject, KindUnreadable, "%d more local records that their policy cannot read", bad-maxLocalProblems)
	}
	if errors.Is(err, store.ErrCorrupt) {
		// The store stops at a record it cannot decode; the ones after
		// it are not checked.
		after := "after the first key"
		if last != "" {
			after = fmt.Sprintf("after %q", last)
		}
		v.problem(LocalObject, KindCorrupt, "%v (the first record %s); the records after it were not checked", err, after)
		return nil
	}
	if err != nil {
		if v.env.Closed != nil && errors.Is(err, store.ErrClosed) {
			err = v.env.Closed
		}
		return fmt.Errorf("replica: verify: local store: %w", err)
	}
	return nil
}

func (v *verifier) checkLog(ctx context.Context) error {
	// At most verifyWindow segments are in memory at once, however long
	// the log is: g.Go waits for a free slot.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyWindow)
	var mu sync.Mutex
	var total, done int64
	for _, n := range v.logSizes {
		total += n
	}
	for i, p := range v.logs {
		g.Go(func() error {
			err := v.checkSegment(gctx, p, v.logSizes[i])
			if v.o.Progress != nil {
				mu.Lock()
				done += v.logSizes[i]
				v.o.Progress(done, total)
				mu.Unlock()
			}
			return err
		})
	}
	return g.Wait()
}

// segVerdict is a segment that verified: its header and what its records
// gave, or of a newer format.
type segVerdict struct {
	seg     *segment.Header
	bad     badRecords
	version error
}

func (v *verifier) checkSegment(ctx context.Context, p uint64, size int64) error {
	key := remote.LogKey(p)
	j, err := readJudged(ctx, v, key, size, readOnce, func(data []byte) (segVerdict, error) {
		h, bad, err := v.streamRecords(ctx, key, data, false)
		if errors.Is(err, segment.ErrVersion) {
			// Checked after the checksum: a newer writer, not damage.
			return segVerdict{version: err}, nil
		}
		return segVerdict{seg: &h, bad: bad}, err
	})
	if err != nil || j.gone {
		return err // gone: pruned since the listing
	}
	defer v.count(&v.rep.Segments)
	if reportRead(v, key, j) {
		return nil
	}
	switch h := j.val.seg; {
	case j.err != nil && v.o.Repair:
		return v.repair(ctx, p, j.obj, segErr(j.err, key))
	case j.err != nil:
		v.problem(key, KindCorrupt, "%s: pulls stop here; `verify --repair` quarantines it and puts a placeholder in its place", segErr(j.err, key))
	case j.val.version != nil:
		v.problem(key, KindVersion, "%s: pulls by this build stop here; upgrade ebreplica", segErr(j.val.version, key))
	case h.Origin.IsZero() && strings.HasPrefix(h.Note, placeholderNote):
		v.info(key, KindPlaceholder, "placeholder for a segment that failed verification (%s)", h.Note)
	default:
		if !v.regs[remote.RegistryKey(h.Origin)] {
			v.warn(key, KindUnregistered, "origin %s is not registered (no %s)", h.Origin, remote.RegistryKey(h.Origin))
		}
		v.checkRecords(key, j.val.bad, "verify --repair leaves the segment: it verifies, and its other records are good")
	}
	return nil
}

// segErr is a codec error without what the problem says already: the
// object's name and "segment: corrupt".
func segErr(err error, name string) string {
	s := strings.Replace(err.Error(), name+": ", "", 1)
	return strings.TrimPrefix(s, segment.ErrCorrupt.Error()+": ")
}

// repair quarantines a corrupt segment, whose bytes obj holds as two reads
// returned them, and puts a placeholder in its place by compare-and-swap
// on obj's ETag.
func (v *verifier) repair(ctx context.Context, pos uint64, obj remote.Object, why string) error {
	v.repairMu.Lock()
	defer v.repairMu.Unlock()
	key := remote.LogKey(pos)
	fail := func(format string, a ...any) {
		v.problem(key, KindCorrupt, "%s; not repaired: %s", why, fmt.Sprintf(format, a...))
	}
	qkey := remote.QuarantineLogKey(pos, v.o.Now().UnixNano(), newNonce()[:6])
	if _, err := v.b.PutIfAbsent(ctx, qkey, obj.Data); err != nil {
		if errors.Is(err, remote.ErrExists) {
			fail("%s already exists; run verify --repair again", qkey)
			return nil
		}
		return fmt.Errorf("replica: verify: quarantine %s to %s on %s: %w", key, qkey, v.b, err)
	}
	ph, err := segment.Encode(segment.Header{Note: placeholderNote + qkey}, segment.Raw, nil)
	if err != nil {
		return err
	}
	_, err = v.b.PutIfMatch(ctx, key, ph, obj.ETag)
	if err != nil && !errors.Is(err, remote.ErrPrecondition) && ctx.Err() == nil {
		// An ambiguous answer: look at what is there now.
		if now, gerr := v.b.Get(ctx, key); gerr == nil && bytes.Equal(now.Data, ph) {
			err = nil
		}
	}
	if errors.Is(err, remote.ErrPrecondition) {
		// Someone else replaced it meanwhile: our copy is not what is
		// there now, so it goes.
		_ = v.b.Delete(ctx, qkey)
		fail("it changed while verifying; run verify again")
		return nil
	}
	if err != nil {
		return fmt.Errorf("replica: verify: replace %s on %s (its bytes are in %s): %w", key, v.b, qkey, err)
	}
	v.add(&v.rep.Repaired, key, KindCorrupt, "%s; quarantined to %s and replaced by a placeholder, so pulls go on; "+
		"its records are gone from the log: replicas that applied it before still hold them, run `ebreplica push --all` on one (ideally its origin)", why, qkey)
	return nil
}

// checkGaps reports log positions missing above the prune floor (the
// newest snapshot), up to the highest position listed or acknowledged.
func (v *verifier) checkGaps() {
	var floor uint64
	if n := len(v.indexes); n > 0 {
		floor = slices.Max(v.indexes)
	}
	tip := v.maxAck
	if n := len(v.logs); n > 0 {
		tip = max(tip, v.logs[n-1])
	}
	where := "there is no snapshot, so nothing may have been pruned"
	if len(v.indexes) > 0 {
		where = fmt.Sprintf("the newest snapshot is at %d", floor)
	}
	report := func(from, to uint64) {
		what := remote.LogKey(from) + " is missing"
		if to > from {
			what = fmt.Sprintf("%s to %s are missing (%d positions)", remote.LogKey(from), remote.LogKey(to), to-from+1)
		}
		var past []string
		for id, ack := range v.acks {
			if ack >= to {
				past = append(past, id)
			}
		}
		slices.Sort(past)
		fix := "no replica acknowledges having applied it: one that did (ideally its origin) can publish its records again with " +
			"`ebreplica push --all` and cover the gap with `ebreplica compact`; if none did, pulls cannot pass it"
		if len(past) > 0 {
			fix = fmt.Sprintf("replica(s) %s applied it: run `ebreplica compact` on one, its snapshot covers the gap and replicas below it rebase onto it",
				strings.Join(past, ", "))
		}
		v.problem(remote.LogKey(from), KindMissing, "%s above the prune floor (%s): pulls stop there; %s", what, where, fix)
	}
	next := floor + 1
	for _, p := range v.logs {
		if p < next {
			continue
		}
		if p > next {
			report(next, p-1)
		}
		next = p + 1
	}
	if tip >= next {
		report(next, tip) // acknowledged, yet gone
	}
}

func (v *verifier) checkSnapshots(ctx context.Context) error {
	for _, p := range v.indexes {
		if err := v.checkSnapshot(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// snapHint ends the problems of a snapshot that cannot be loaded.
const snapHint = "this snapshot cannot be loaded: run `ebreplica compact` on a healthy replica to write a newer one"

// judgeIndex checks a snapshot index at position p.
func (v *verifier) judgeIndex(p uint64, data []byte) (*format.SnapIndex, error) {
	var idx format.SnapIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, flawf(KindCorrupt, "not a snapshot index (%v); %s", err, snapHint)
	}
	var records int64
	for _, pi := range idx.Parts {
		records += int64(pi.Records)
	}
	// A bad index still names its parts: they are no orphans.
	switch _, gerr := format.VectorFromJSON(idx.G); {
	case idx.Format > format.FormatVersion:
		return &idx, flawf(KindVersion, "snapshot format %d, this build reads up to %d: upgrade ebreplica", idx.Format, format.FormatVersion)
	case idx.Format < 1:
		return &idx, flawf(KindCorrupt, "snapshot format %d; %s", idx.Format, snapHint)
	case idx.Position != p:
		return &idx, flawf(KindCorrupt, "index says position %d; %s", idx.Position, snapHint)
	case v.manifest != nil && idx.RemoteID != v.manifest.RemoteID:
		return &idx, flawf(KindForeign, "snapshot of store %q, this is store %q", idx.RemoteID, v.manifest.RemoteID)
	case gerr != nil:
		return &idx, flawf(KindCorrupt, "bad g: %v; %s", gerr, snapHint)
	case len(idx.Parts) == 0:
		return &idx, flawf(KindCorrupt, "index lists no parts; %s", snapHint)
	case records != idx.Records:
		return &idx, flawf(KindCorrupt, "index says %d records, its parts list %d; %s", idx.Records, records, snapHint)
	}
	return &idx, nil
}

func (v *verifier) checkSnapshot(ctx context.Context, p uint64) error {
	key := remote.SnapKey(p)
	// The index has no checksum of its own, so it is read until two reads
	// agree: a damaged read that still parses would make healthy parts
	// look damaged.
	ij, err := readJudged(ctx, v, key, v.sizes[key], readTwice, func(data []byte) (*format.SnapIndex, error) { return v.judgeIndex(p, data) })
	switch {
	case err != nil:
		return err
	case ij.gone:
		// Pruned since the listing; its parts are no orphans.
		for name := range v.parts {
			if strings.HasPrefix(name, remote.SnapDir(p)) {
				v.used[name] = true
			}
		}
		return nil
	}
	v.rep.Snapshots++
	if ij.val != nil { // even a bad index accounts for its parts
		for _, pi := range ij.val.Parts {
			v.used[pi.Name] = true
		}
	}
	if reportRead(v, key, ij) {
		return nil
	}
	if ij.err != nil {
		v.reportFlaw(key, ij.err)
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyWindow)
	var indexGone bool
	var goneOnce sync.Once
	for _, pi := range ij.val.Parts {
		g.Go(func() error {
			if !strings.HasPrefix(pi.Name, remote.PartPrefix(p)) {
				v.problem(key, KindCorrupt, "lists %q, outside its snapshot; %s", pi.Name, snapHint)
				return nil
			}
			info, listed := v.parts[pi.Name]
			if listed {
				gone, err := v.checkPart(gctx, key, p, pi, info)
				if err != nil {
					return err
				}
				listed = !gone
			}
			if !listed {
				// Pruned with its index since the listing, or really lost.
				goneOnce.Do(func() {
					_, err := v.b.Get(gctx, key)
					indexGone = errors.Is(err, remote.ErrNotExist)
				})
				if !indexGone {
					v.problem(pi.Name, KindMissing, "listed by %s but missing; %s", key, snapHint)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// partVerdict is a snapshot part that verified: decoded, or of a newer
// format.
type partVerdict struct {
	bad     badRecords
	version error
}

// checkPart checks one part listed by the index of the snapshot at p
// (key); gone reports that it is not there.
func (v *verifier) checkPart(ctx context.Context, key string, p uint64, pi format.PartInfo, info remote.Info) (gone bool, err error) {
	j, err := readJudged(ctx, v, pi.Name, info.Size, readOnce, func(data []byte) (partVerdict, error) {
		sum := sha256.Sum256(data)
		switch {
		case info.Size != int64(len(data)) || pi.Size != int64(len(data)):
			return partVerdict{}, flawf(KindCorrupt, "%d bytes, %s lists %d; %s", len(data), key, pi.Size, snapHint)
		case hex.EncodeToString(sum[:]) != pi.SHA256:
			return partVerdict{}, flawf(KindCorrupt, "checksum does not match %s; %s", key, snapHint)
		}
		s, bad, err := v.streamRecords(ctx, pi.Name, data, true)
		switch {
		case errors.Is(err, segment.ErrVersion):
			return partVerdict{version: err}, nil
		case err != nil:
			return partVerdict{}, flawf(KindCorrupt, "%s; %s", segErr(err, pi.Name), snapHint)
		case s.Count != pi.Records:
			return partVerdict{}, flawf(KindCorrupt, "%d records, %s lists %d; %s", s.Count, key, pi.Records, snapHint)
		case s.Base != p:
			return partVerdict{}, flawf(KindCorrupt, "part of position %d in the snapshot at %d; %s", s.Base, p, snapHint)
		}
		return partVerdict{bad: bad}, nil
	})
	switch {
	case err != nil:
		return false, err
	case j.gone:
		return true, nil
	}
	if reportRead(v, pi.Name, j) {
		return false, nil
	}
	switch {
	case j.err != nil:
		v.reportFlaw(pi.Name, j.err)
	case j.val.version != nil:
		v.problem(pi.Name, KindVersion, "%s", segErr(j.val.version, pi.Name))
	default:
		v.checkRecords(pi.Name, j.val.bad, "replicas that bootstrap from this snapshot get them too")
	}
	return false, nil
}

// checkOrphans reports the parts no index lists, one warning per
// compactor's set of parts.
func (v *verifier) checkOrphans() {
	groups := map[string][]string{}
	for name := range v.parts {
		if v.used[name] {
			continue
		}
		set := name[:strings.LastIndexByte(name, '-')+1]
		groups[set] = append(groups[set], name)
	}
	for set, names := range groups {
		slices.Sort(names)
		v.warn(names[0], KindOrphan, "%d snapshot part(s) %s* listed by no index: a compactor writing now, or one that crashed "+
			"(`compact --prune` removes them once old, when a snapshot at or above their position exists)", len(names), set)
	}
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
