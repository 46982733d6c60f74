package replica

// Verify: the fsck of a store.
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
//   - nothing else is there.
//
// Severity. A Problem is damage or something this build cannot vouch for;
// the report is OK only without problems (the CLI exits 1 otherwise):
//
//	corrupt  an object that fails to parse or verify
//	missing  an object the layout requires (a log position, a listed part, store.json)
//	foreign  an object that is not ours: a name outside the layout, or a
//	         snapshot of another store. ebreplica never writes such names, so
//	         one means the prefix is shared or a writer is broken
//	version  an object made by a newer format version (upgrade to check it)
//
// A Warning is not damage:
//
//	orphan        snapshot parts no index lists: a compactor writing now, or
//	              one that crashed (compact --prune removes them once old and
//	              covered by a snapshot)
//	unregistered  a segment whose origin has no registry object
//
// Info lists what earlier repairs left: quarantine/ copies and the
// placeholder segments that replaced them.
//
// Repair (VerifyOptions.Repair) handles corrupt log segments only: each is
// copied, bytes unchanged, to quarantine/log-<pos>-<unix nanos>-<nonce>
// (create-only), then overwritten in place by compare-and-swap on the ETag
// it had when read with a small valid placeholder segment — no records, the
// all-zero origin (no replica's id, so no puller takes it for its own), and
// a note naming the quarantined copy. Pulls then go on past it; nothing else
// changes. Its records are gone from the log: replicas that applied the
// segment before the damage still hold them, and `push --all` on one of
// them (ideally its origin) publishes them again. A missing position cannot
// be repaired so (there is nothing to swap): `compact` on a replica that
// applied it writes a snapshot that covers it (replicas below rebase onto
// it). Nor can snapshots (a newer snapshot from `compact` supersedes a
// damaged one), registries (their owner fences on them) or the manifest:
// each problem says what to do.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"golang.org/x/sync/errgroup"
)

// Problem kinds (Problem.Kind).
const (
	KindCorrupt      = "corrupt"
	KindMissing      = "missing"
	KindForeign      = "foreign"
	KindVersion      = "version"
	KindOrphan       = "orphan"
	KindUnregistered = "unregistered"
	KindQuarantine   = "quarantine"
	KindPlaceholder  = "placeholder"
)

// placeholderNote starts the note of a repair placeholder segment.
const placeholderNote = "quarantined to "

// verifyWindow bounds the objects Verify fetches concurrently.
const verifyWindow = 8

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// Repair quarantines each corrupt log segment and replaces it in place
	// with a valid placeholder (see the package documentation).
	Repair bool
	// Now names quarantine copies (time.Now when nil).
	Now func() time.Time
}

// Problem is one finding of Verify, about one object.
type Problem struct {
	Object  string `json:"object"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Object + ": " + p.Kind + ": " + p.Message }

// VerifyReport is the result of Verify. Problems are damage (OK is false
// when there is any); Warnings and Info are not. With Repair, the problems
// repaired move from Problems to Repaired. Every list is sorted by object.
type VerifyReport struct {
	OK        bool      `json:"ok"`
	Objects   int       `json:"objects"`   // objects listed
	Segments  int       `json:"segments"`  // log segments checked
	Snapshots int       `json:"snapshots"` // snapshot indexes checked
	Problems  []Problem `json:"problems"`
	Warnings  []Problem `json:"warnings"`
	Repaired  []Problem `json:"repaired"`
	Info      []Problem `json:"info"`
}

// Verify checks every object of the store on the replica's remote (see
// the package-level Verify). It does not connect first, so it also works on
// a store whose manifest is damaged.
func (r *Replica) Verify(ctx context.Context, o VerifyOptions) (VerifyReport, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if r.opts.Backend == nil {
		return VerifyReport{}, ErrNoRemote
	}
	if o.Now == nil {
		o.Now = r.now
	}
	return Verify(ctx, r.opts.Backend, o)
}

// Verify checks every object of the store on b and, with o.Repair,
// repairs corrupt log segments (see the package documentation for the
// checks, their severity and what repair does). It is safe to run while
// replicas sync and compact. The error is for a verification that could not
// run (the remote failed); damage is reported in the VerifyReport.
func Verify(ctx context.Context, b remote.Backend, o VerifyOptions) (VerifyReport, error) {
	if b == nil {
		return VerifyReport{}, ErrNoRemote
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &verifier{b: b, o: o, regs: map[string]bool{}, acks: map[string]uint64{}, parts: map[string]remote.Info{}, used: map[string]bool{}}
	if err := v.run(ctx); err != nil {
		return VerifyReport{}, err
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
	b   remote.Backend
	o   VerifyOptions
	rep VerifyReport

	mu sync.Mutex // guards rep's lists while checks run concurrently

	regs     map[string]bool        // registry object names seen
	acks     map[string]uint64      // replica id -> ack, read before listing the log
	maxAck   uint64                 // the highest of acks
	manifest *Manifest              // nil when missing or unreadable
	logs     []uint64               // listed log positions, ascending
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

func (v *verifier) listErr(prefix string, err error) error {
	return fmt.Errorf("replica: verify: list %q on %s: %w", prefix, v.b, err)
}

func (v *verifier) getErr(key string, err error) error {
	return fmt.Errorf("replica: verify: read %s on %s: %w", key, v.b, err)
}

func (v *verifier) run(ctx context.Context) error {
	// Registries first: an ack read now names positions that existed
	// before the log is listed below, so a missing one is damage, not a
	// push that landed after the listing.
	for info, err := range v.b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return v.listErr(remote.ReplicasPrefix, err)
		}
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
		*manifest = true
	case strings.HasPrefix(key, remote.ReplicasPrefix):
		if !v.regs[key] {
			return v.checkRegistry(ctx, key, false) // registered since the first listing
		}
	case strings.HasPrefix(key, remote.LogPrefix):
		if p, ok := remote.ParseLogKey(key); ok && p > 0 {
			v.logs = append(v.logs, p)
			return nil
		}
		v.problem(key, KindForeign, "not an ebreplica object: log segments are named log/<20-digit position from 1>")
	case strings.HasPrefix(key, remote.SnapPrefix):
		p, rest, ok := parseSnapKey(key)
		switch {
		case ok && rest == "index" && key == SnapKey(p):
			v.indexes = append(v.indexes, p)
		case ok && isPartName(rest) && strings.HasPrefix(key, snapDir(p)):
			v.parts[key] = info
		default:
			v.problem(key, KindForeign, "not an ebreplica object: snapshots are snap/<20-digit position>/index and snap/<position>/part-<nonce>-<n>")
		}
	case strings.HasPrefix(key, remote.QuarantinePref):
		v.info(key, KindQuarantine, "a copy of an object that failed verification, kept by an earlier repair (%d bytes)", info.Size)
	default:
		v.problem(key, KindForeign, "not an ebreplica object: this prefix should hold only an ebreplica store")
	}
	return nil
}

func snapDir(p uint64) string { return fmt.Sprintf("%s%020d/", remote.SnapPrefix, p) }

// isPartName reports whether rest is part-<hex nonce>-<4+ digits>.
func isPartName(rest string) bool {
	s, ok := strings.CutPrefix(rest, "part-")
	i := strings.LastIndexByte(s, '-')
	if !ok || i <= 0 {
		return false
	}
	nonce, n := s[:i], s[i+1:]
	isHex := func(r rune) bool { return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' }
	isDigit := func(r rune) bool { return r >= '0' && r <= '9' }
	return len(n) >= 4 && strings.IndexFunc(nonce, func(r rune) bool { return !isHex(r) }) < 0 &&
		strings.IndexFunc(n, func(r rune) bool { return !isDigit(r) }) < 0
}

// checkRegistry checks replicas/<id>.json; first is true for the registry
// pass made before the log is listed (only those acks count).
func (v *verifier) checkRegistry(ctx context.Context, key string, first bool) error {
	name, _ := strings.CutPrefix(key, remote.ReplicasPrefix)
	idText, okName := strings.CutSuffix(name, ".json")
	id, err := clock.ParseReplicaID(idText)
	if !okName || err != nil || remote.RegistryKey(id) != key {
		if !first {
			v.problem(key, KindForeign, "not an ebreplica object: registries are replicas/<replica id>.json")
		}
		return nil
	}
	v.regs[key] = true
	obj, err := v.b.Get(ctx, key)
	if errors.Is(err, remote.ErrNotExist) {
		delete(v.regs, key)
		return nil
	}
	if err != nil {
		return v.getErr(key, err)
	}
	var body RegistryBody
	switch err := json.Unmarshal(obj.Data, &body); {
	case err != nil:
		v.problem(key, KindCorrupt, "not a registry object (%v): compaction and that replica's pushes fail until it is restored", err)
	case body.Format > FormatVersion:
		v.problem(key, KindVersion, "registry format %d, this build reads up to %d: upgrade ebreplica", body.Format, FormatVersion)
	case body.Format < 1:
		v.problem(key, KindCorrupt, "registry format %d", body.Format)
	case body.ReplicaID != id.String():
		v.problem(key, KindCorrupt, "replica_id %q does not match the object's name", body.ReplicaID)
	case body.Seq == 0 || body.Nonce == "":
		v.problem(key, KindCorrupt, "registry without seq or nonce")
	default:
		if first {
			v.acks[body.ReplicaID] = body.Ack
			v.maxAck = max(v.maxAck, body.Ack)
		}
	}
	return nil
}

func (v *verifier) checkManifest(ctx context.Context, listed bool) error {
	const key = remote.ManifestKey
	if !listed {
		v.problem(key, KindMissing, "no store manifest: %s holds no ebreplica store (or its manifest was deleted)", v.b)
		return nil
	}
	obj, err := v.b.Get(ctx, key)
	if errors.Is(err, remote.ErrNotExist) {
		v.problem(key, KindMissing, "the store manifest vanished while verifying")
		return nil
	}
	if err != nil {
		return v.getErr(key, err)
	}
	var m Manifest
	if err := json.Unmarshal(obj.Data, &m); err != nil || m.StoreID == "" {
		why := "no store_id"
		if err != nil {
			why = err.Error()
		}
		v.problem(key, KindCorrupt, "not an ebreplica store manifest (%s)", why)
		return nil
	}
	switch _, cerr := segment.ParseCodec(m.Codec); {
	case m.Format > FormatVersion:
		v.problem(key, KindVersion, "store format %d, this build supports %d: upgrade ebreplica", m.Format, FormatVersion)
	case m.Format < 1:
		v.problem(key, KindCorrupt, "store format %d", m.Format)
	case cerr != nil:
		v.problem(key, KindCorrupt, "%v", cerr)
	case m.SegmentCap < 0:
		v.problem(key, KindCorrupt, "segment_cap %d", m.SegmentCap)
	}
	v.manifest = &m
	return nil
}

// segCheck is the verdict on one log segment.
type segCheck struct {
	pos    uint64
	gone   bool // vanished since the listing (pruned)
	err    error
	origin clock.ReplicaID
	note   string
	etag   string
	data   []byte // kept for repair
}

func (v *verifier) checkLog(ctx context.Context) error {
	// In windows, so memory stays bounded however long the log is.
	const window = 16 * verifyWindow
	for start := 0; start < len(v.logs); start += window {
		win := v.logs[start:min(start+window, len(v.logs))]
		checks := make([]segCheck, len(win))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(verifyWindow)
		for i, p := range win {
			g.Go(func() error {
				c, err := v.fetchSegment(gctx, p)
				checks[i] = c
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, c := range checks {
			if err := v.judgeSegment(ctx, c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (v *verifier) fetchSegment(ctx context.Context, p uint64) (segCheck, error) {
	key := remote.LogKey(p)
	c := segCheck{pos: p}
	obj, err := v.b.Get(ctx, key)
	switch {
	case errors.Is(err, remote.ErrNotExist):
		c.gone = true
	case err != nil:
		return c, v.getErr(key, err)
	default:
		h, derr := segment.Decode(key, obj.Data)
		if derr != nil {
			c.err, c.etag = derr, obj.ETag
			if v.o.Repair {
				c.data = obj.Data
			}
		} else {
			c.origin, c.note = h.Origin, h.Note
		}
	}
	return c, nil
}

func (v *verifier) judgeSegment(ctx context.Context, c segCheck) error {
	key := remote.LogKey(c.pos)
	switch {
	case c.gone:
		return nil // pruned since the listing
	case errors.Is(c.err, segment.ErrVersion):
		v.problem(key, KindVersion, "%s: pulls by this build stop here; upgrade ebreplica", segErr(c.err, key))
	case c.err != nil && v.o.Repair:
		if err := v.repair(ctx, c); err != nil {
			return err
		}
	case c.err != nil:
		v.problem(key, KindCorrupt, "%s: pulls stop here; `verify --repair` quarantines it and puts a placeholder in its place", segErr(c.err, key))
	case c.origin.IsZero() && strings.HasPrefix(c.note, placeholderNote):
		v.info(key, KindPlaceholder, "placeholder for a segment that failed verification (%s)", c.note)
	case !v.regs[remote.RegistryKey(c.origin)]:
		v.warn(key, KindUnregistered, "origin %s is not registered (no %s)", c.origin, remote.RegistryKey(c.origin))
	}
	v.rep.Segments++
	return nil
}

// segErr is a codec error without what the problem says already: the
// object's name and "segment: corrupt".
func segErr(err error, name string) string {
	s := strings.Replace(err.Error(), name+": ", "", 1)
	return strings.TrimPrefix(s, segment.ErrCorrupt.Error()+": ")
}

// repair quarantines a corrupt segment and puts a placeholder in its place.
func (v *verifier) repair(ctx context.Context, c segCheck) error {
	key := remote.LogKey(c.pos)
	why := segErr(c.err, key)
	fail := func(format string, a ...any) {
		v.problem(key, KindCorrupt, "%s; not repaired: %s", why, fmt.Sprintf(format, a...))
	}
	qkey := fmt.Sprintf("%slog-%020d-%d-%s", remote.QuarantinePref, c.pos, v.o.Now().UnixNano(), newNonce()[:6])
	if _, err := v.b.PutIfAbsent(ctx, qkey, c.data); err != nil {
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
	_, err = v.b.PutIfMatch(ctx, key, ph, c.etag)
	if err != nil && !errors.Is(err, remote.ErrPrecondition) && ctx.Err() == nil {
		// An ambiguous answer: look at what is there now.
		if obj, gerr := v.b.Get(ctx, key); gerr == nil && bytes.Equal(obj.Data, ph) {
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

func (v *verifier) checkSnapshot(ctx context.Context, p uint64) error {
	key := SnapKey(p)
	obj, err := v.b.Get(ctx, key)
	if errors.Is(err, remote.ErrNotExist) {
		// Pruned since the listing; its parts are no orphans.
		for name := range v.parts {
			if strings.HasPrefix(name, snapDir(p)) {
				v.used[name] = true
			}
		}
		return nil
	}
	if err != nil {
		return v.getErr(key, err)
	}
	v.rep.Snapshots++
	const hint = "this snapshot cannot be loaded: run `ebreplica compact` on a healthy replica to write a newer one"
	var idx SnapIndex
	if err := json.Unmarshal(obj.Data, &idx); err != nil {
		v.problem(key, KindCorrupt, "not a snapshot index (%v); %s", err, hint)
		return nil
	}
	// Its parts are accounted for even when the index is bad otherwise.
	for _, pi := range idx.Parts {
		v.used[pi.Name] = true
	}
	if idx.Format > FormatVersion {
		v.problem(key, KindVersion, "snapshot format %d, this build reads up to %d: upgrade ebreplica", idx.Format, FormatVersion)
		return nil
	}
	switch _, gerr := vectorFromJSON(idx.G); {
	case idx.Format < 1:
		v.problem(key, KindCorrupt, "snapshot format %d; %s", idx.Format, hint)
		return nil
	case idx.Position != p:
		v.problem(key, KindCorrupt, "index says position %d; %s", idx.Position, hint)
		return nil
	case v.manifest != nil && idx.StoreID != v.manifest.StoreID:
		v.problem(key, KindForeign, "snapshot of store %q, this is store %q", idx.StoreID, v.manifest.StoreID)
		return nil
	case gerr != nil:
		v.problem(key, KindCorrupt, "bad g: %v; %s", gerr, hint)
		return nil
	case len(idx.Parts) == 0:
		v.problem(key, KindCorrupt, "index lists no parts; %s", hint)
		return nil
	}
	var records int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyWindow)
	var indexGone bool
	var goneOnce sync.Once
	for _, pi := range idx.Parts {
		records += int64(pi.Records)
		g.Go(func() error {
			if !strings.HasPrefix(pi.Name, snapDir(p)+"part-") {
				v.problem(key, KindCorrupt, "lists %q, outside its snapshot; %s", pi.Name, hint)
				return nil
			}
			info, listed := v.parts[pi.Name]
			var data []byte
			if listed {
				obj, err := v.b.Get(gctx, pi.Name)
				switch {
				case errors.Is(err, remote.ErrNotExist):
					listed = false
				case err != nil:
					return v.getErr(pi.Name, err)
				default:
					data = obj.Data
				}
			}
			if !listed {
				// Pruned with its index since the listing, or really lost.
				goneOnce.Do(func() {
					_, err := v.b.Get(gctx, key)
					indexGone = errors.Is(err, remote.ErrNotExist)
				})
				if !indexGone {
					v.problem(pi.Name, KindMissing, "listed by %s but missing; %s", key, hint)
				}
				return nil
			}
			sum := sha256.Sum256(data)
			switch {
			case info.Size != int64(len(data)) || pi.Size != int64(len(data)):
				v.problem(pi.Name, KindCorrupt, "%d bytes, %s lists %d; %s", len(data), key, pi.Size, hint)
			case hex.EncodeToString(sum[:]) != pi.SHA256:
				v.problem(pi.Name, KindCorrupt, "checksum does not match %s; %s", key, hint)
			default:
				s, err := segment.DecodePart(pi.Name, data)
				switch {
				case errors.Is(err, segment.ErrVersion):
					v.problem(pi.Name, KindVersion, "%s", segErr(err, pi.Name))
				case err != nil:
					v.problem(pi.Name, KindCorrupt, "%s; %s", segErr(err, pi.Name), hint)
				case s.Count != pi.Records:
					v.problem(pi.Name, KindCorrupt, "%d records, %s lists %d; %s", s.Count, key, pi.Records, hint)
				case s.Base != p:
					v.problem(pi.Name, KindCorrupt, "part of position %d in the snapshot at %d; %s", s.Base, p, hint)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if records != idx.Records && !indexGone {
		v.problem(key, KindCorrupt, "index says %d records, its parts list %d; %s", idx.Records, records, hint)
	}
	return nil
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
