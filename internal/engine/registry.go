package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/remote/segment"
	"github.com/ebreplica/ebreplica/store"
)

// FormatVersion is the store format this build writes and reads.
const FormatVersion = format.FormatVersion

// DefaultSegmentCap is the raw size at which a push starts a new segment.
const DefaultSegmentCap = format.DefaultSegmentCap

// Sync errors.
var (
	ErrNoRemote = errors.New("replica: no remote backend configured")
	// ErrCloned: another directory publishes under this replica id (a copied
	// replica directory or a restored backup). Run reidentify.
	ErrCloned = errors.New("replica: another directory is using this replica id (a copied replica directory or restored backup): run `ebreplica reidentify`")
	// ErrDuplicateID: init found a registry object for the new id.
	ErrDuplicateID = errors.New("replica: replica id already registered on the remote")
	// ErrNewerFormat: the remote store was made by a newer format version.
	ErrNewerFormat = format.ErrNewerFormat
	// ErrPolicyMismatch: the store manifest names other policies.
	ErrPolicyMismatch = errors.New("replica: remote store uses other merge policies")
	// ErrForeignRemote: the remote holds something that is not an ebreplica store.
	ErrForeignRemote = format.ErrForeignRemote
	// ErrGap: a log position above the prune floor is missing (damage).
	ErrGap = errors.New("replica: log position missing")
	// ErrRetired: this replica was retired by the others (rebase needed).
	ErrRetired = errors.New("replica: this replica was retired by its peers")
)

// regState is the local record of the registry object (m/registry).
type regState struct {
	Registered   bool   `json:"registered"`
	ETag         string `json:"etag"`
	Seq          uint64 `json:"seq"`
	Nonce        string `json:"nonce"`
	PendingSeq   uint64 `json:"pending_seq,omitempty"`
	PendingNonce string `json:"pending_nonce,omitempty"`
	// Prior holds earlier pending nonces of this directory that may have
	// landed (a crash left them pending): a body carrying one was written
	// here, but finding it proves nothing to this call (see swapRegistry).
	Prior []string `json:"prior,omitempty"`
	// Ack and At are the ack of the last registry write and when it was
	// made (this replica's wall clock, ms): pulls refresh the registry at
	// a bounded rate from them.
	Ack uint64 `json:"ack,omitempty"`
	At  int64  `json:"at,omitempty"`
}

// retiredETag stands for the ETag of a registration that was retired
// before this replica learnt its real ETag: no object has it, so the next
// swap fails and reads the retirement back.
const retiredETag = "ebreplica-retired-registration"

// maxPrior bounds regState.Prior (each entry is one crash between a
// pending registry write and its outcome).
const maxPrior = 8

// writes is what the protocol's rules read of this directory's writes.
func (rs *regState) writes() protocol.Writes {
	return protocol.Writes{Nonce: rs.Nonce, ETag: rs.ETag, PendingNonce: rs.PendingNonce, Prior: rs.Prior}
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Engine) loadJSON(name string, v any) (bool, error) {
	b, err := r.meta(name)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%w: m/%s: %v", store.ErrCorrupt, name, err)
	}
	return true, nil
}

func (r *Engine) saveJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return r.st.UpdateSync(ctx, func(tx *store.Tx) error {
		tx.SetMeta(name, b)
		return nil
	})
}

// manifest returns the store manifest, reading it from the remote (and
// creating it when createIfMissing) on first use, then from the local copy.
func (r *Engine) ensureManifest(ctx context.Context) (m Manifest, created bool, err error) {
	if ok, err := r.loadJSON("manifest", &m); err != nil || ok {
		return m, false, err
	}
	b := r.opts.Backend
	want := Manifest{
		Format: FormatVersion, RemoteID: newNonce(), Policies: r.opts.Policies.Names(),
		SegmentCap: r.opts.SegmentCap, Codec: r.opts.Codec, Created: time.Now().UTC(),
	}
	keysBefore := false // keys/ was there already (seal.go): not our store, or not this call's
	if r.opts.Encrypt { // seal.go: the keys first, then the manifest naming them
		want.Format, want.Encryption = format.EncryptedFormat, &format.Encryption{Scheme: sealremote.Scheme}
		if want.RemoteID, keysBefore, err = r.createKeys(ctx, want.RemoteID); err != nil {
			return m, false, err
		}
	} else if r.opts.Keys != nil {
		if err := r.checkStoreExists(ctx); err != nil {
			return m, false, err
		}
	}
	data, _ := json.MarshalIndent(want, "", "  ")
	for attempt := 0; ; attempt++ {
		_, err = b.PutIfAbsent(ctx, remote.ManifestKey, data)
		if err == nil {
			m, created = want, true
			break
		}
		if ctx.Err() != nil {
			return m, false, err
		}
		if !errors.Is(err, remote.ErrExists) && !errors.Is(err, remote.ErrTransient) {
			return m, false, fmt.Errorf("replica: create %s on %s: %w", remote.ManifestKey, b, err)
		}
		obj, gerr := readStable(ctx, b, remote.ManifestKey)
		if errors.Is(gerr, remote.ErrNotExist) {
			if attempt < 3 {
				continue // the create did not land: try again
			}
			return m, false, fmt.Errorf("replica: create %s on %s: %w", remote.ManifestKey, b, err)
		}
		if gerr != nil {
			return m, false, fmt.Errorf("replica: read %s on %s: %w", remote.ManifestKey, b, gerr)
		}
		if err := json.Unmarshal(obj.Data, &m); err != nil || m.RemoteID == "" {
			if attempt < 3 {
				continue // a torn read; look again before calling it foreign
			}
			return m, false, fmt.Errorf("%w: %s on %s", ErrForeignRemote, remote.ManifestKey, b)
		}
		created = m.RemoteID == want.RemoteID && !keysBefore // our own ambiguous create
		break
	}
	if m.Newer() {
		return m, false, fmt.Errorf("%w: store format %d, this build supports %d", ErrNewerFormat, m.Format, FormatVersion)
	}
	if m.Format < 1 {
		return m, false, fmt.Errorf("%w: format %d", ErrForeignRemote, m.Format)
	}
	if _, err := segment.ParseCodec(m.Codec); err != nil {
		return m, false, fmt.Errorf("%w: %v", ErrForeignRemote, err)
	}
	if m.SegmentCap <= 0 {
		m.SegmentCap = DefaultSegmentCap
	}
	if !created {
		if err := r.checkPolicies(m.Policies); err != nil {
			return m, false, err
		}
	}
	return m, created, r.saveJSON(ctx, "manifest", m)
}

// checkPolicies compares the manifest's policy names with ours.
func (r *Engine) checkPolicies(remoteNames map[string]string) error {
	ours := r.opts.Policies.Names()
	norm := func(m map[string]string) map[string]string {
		out := maps.Clone(m)
		if out == nil {
			out = map[string]string{}
		}
		if _, ok := out[""]; !ok {
			out[""] = "lww"
		}
		return out
	}
	a, b := norm(ours), norm(remoteNames)
	if !maps.Equal(a, b) {
		return fmt.Errorf("%w: store has %v, this replica has %v", ErrPolicyMismatch, b, a)
	}
	return nil
}

// Connect binds the replica to its remote: it reads (or, for the first
// replica of a store, creates) the store manifest, checks format and
// policies, and registers this replica id create-only. It is idempotent
// and costs no request once done. It reports whether this call created the
// store.
func (r *Engine) Connect(ctx context.Context) (createdStore bool, err error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	return r.connectLocked(ctx)
}

func (r *Engine) connectLocked(ctx context.Context) (bool, error) {
	if r.opts.Backend == nil {
		return false, ErrNoRemote
	}
	if r.manifest != nil {
		return false, nil
	}
	if err := r.probeIfDue(ctx); err != nil { // see probe.go
		return false, err
	}
	m, created, err := r.ensureManifest(ctx)
	if err == nil {
		err = r.bindSeal(ctx, m) // seal.go
	}
	if err != nil {
		return false, err
	}
	var rs regState
	if _, err := r.loadJSON("registry", &rs); err != nil {
		return false, err
	}
	if !rs.Registered {
		if err := r.register(ctx, &rs); err != nil {
			return false, err
		}
	}
	r.manifest = &m
	r.reg = rs
	return created, nil
}

func (r *Engine) registryBody(seq uint64, nonce string, ack uint64) []byte {
	capped, _ := r.st.Clock().SkewStats()
	body := RegistryBody{Format: FormatVersion, ReplicaID: r.ID().String(), Seq: seq, Nonce: nonce,
		Ack: ack, SkewCapped: capped, Wall: r.now().UTC()}
	return format.EncodeRegistry(body)
}

func (r *Engine) now() time.Time {
	if r.opts.Wall != nil {
		return r.opts.Wall()
	}
	return time.Now()
}

// register creates replicas/<id>.json create-only.
func (r *Engine) register(ctx context.Context, rs *regState) error {
	b := r.opts.Backend
	key := remote.RegistryKey(r.ID())
	if rs.PendingNonce == "" {
		rs.PendingSeq, rs.PendingNonce = 1, newNonce()
		if err := r.saveJSON(ctx, "registry", rs); err != nil {
			return err
		}
	}
	// A create answered ok is dated from before its request (see
	// swapCall.sent); one adopted after an error from its body's Wall.
	at := r.now().UnixMilli()
	etag, err := b.PutIfAbsent(ctx, key, r.registryBody(rs.PendingSeq, rs.PendingNonce, 0))
	foreign := 0
	for attempt := 0; err != nil; attempt++ {
		if ctx.Err() != nil {
			return err
		}
		obj, gerr := b.Get(ctx, key)
		if gerr != nil {
			return fmt.Errorf("replica: register %s on %s: %w (read-back: %w)", key, b, err, gerr)
		}
		body, jerr := format.DecodeRegistry(obj.Data)
		if jerr == nil && body.Retired && body.RetiredNonce == rs.PendingNonce {
			// Our registration landed (a crash or an ambiguous answer hid
			// it) and was retired since. Registered, with an ETag no swap
			// can match: the next swap reads the object back, finds it
			// retired, and the replica rebases (only a rebase clears it).
			*rs = regState{Registered: true, ETag: retiredETag, Seq: rs.PendingSeq, Nonce: rs.PendingNonce,
				At: r.rules.AdoptedAt(time.Time{}, r.now())}
			return r.saveJSON(ctx, "registry", rs)
		}
		if jerr != nil || body.Nonce != rs.PendingNonce {
			// A verdict needs two reads that decode and name another
			// writer: a torn or corrupt read is no verdict.
			if jerr == nil {
				foreign++
			}
			if foreign < 2 && attempt < 6 {
				continue
			}
			if foreign < 2 {
				return fmt.Errorf("replica: register %s on %s: %w (read-back does not decode)", key, b, err)
			}
			return fmt.Errorf("%w: %s", ErrDuplicateID, key)
		}
		// Our own create (an ambiguous answer, or one a crash hid, perhaps
		// long ago): the registry is as old as that write, not this call
		// (AdoptedAt; kill sweep seed 11932).
		etag, err = obj.ETag, nil
		at = r.rules.AdoptedAt(body.Wall, r.now())
	}
	*rs = regState{Registered: true, ETag: etag, Seq: rs.PendingSeq, Nonce: rs.PendingNonce, At: at}
	return r.saveJSON(ctx, "registry", rs)
}

// swapRegistry rewrites this replica's registry object by compare-and-swap
// on the ETag last written (fencing). A crash or an ambiguous error never
// gives a false verdict: {seq, nonce} are persisted as pending first, and
// on a failed or ambiguous swap the object is read back.
//
// Absence rules 1 and 2 (DESIGN.md): the read-back checks "retired" before
// anything else, so a replica retired after its own write landed is still
// retired; and only a write made by this call is a fence. A pending write
// inherited from a crash (or copied with the directory) that is found to
// have landed is adopted for its ETag and followed by a fresh
// compare-and-swap with a new nonce, so of two copies of a directory only
// one can win. An inherited pending nonce is never sent again: it moves to
// Prior and a fresh one replaces it before the first request.
func (r *Engine) swapRegistry(ctx context.Context, ack uint64) error {
	b := r.opts.Backend
	rs := &r.reg
	sw := swapCall{key: remote.RegistryKey(r.ID()), ack: ack}
	if rs.PendingNonce != "" {
		sw.made = r.rules.FenceNonce(rs.PendingNonce) // none: absence rule 2
	}
	for attempt := 0; ; attempt++ {
		if sw.made == "" || rs.PendingNonce == "" {
			if err := r.newPending(ctx); err != nil {
				return err
			}
			sw.made = rs.PendingNonce
		}
		if sw.sent == 0 {
			sw.sent = r.now().UnixMilli()
		}
		etag, err := b.PutIfMatch(ctx, sw.key, r.registryBody(rs.PendingSeq, rs.PendingNonce, ack), rs.ETag)
		if err == nil {
			if err := r.step("registry:swapped"); err != nil {
				return err
			}
			return r.landedAt(ctx, etag, ack, sw.sent)
		}
		if ctx.Err() != nil {
			return err
		}
		obj, gerr := b.Get(ctx, sw.key)
		if gerr != nil {
			if errors.Is(gerr, remote.ErrNotExist) {
				return fmt.Errorf("%w: %s vanished from %s", ErrCloned, sw.key, b)
			}
			return fmt.Errorf("replica: registry swap on %s: %w (read-back: %w)", b, err, gerr)
		}
		body, jerr := format.DecodeRegistry(obj.Data)
		if jerr != nil {
			if attempt < 3 {
				continue // a torn read is no verdict
			}
			return fmt.Errorf("replica: %s on %s is not a registry object: %v", sw.key, b, jerr)
		}
		if again, err := r.judgeSwap(ctx, &sw, attempt, obj, body, err); !again {
			return err
		}
	}
}

// swapCall is the state of one swapRegistry call.
type swapCall struct {
	key       string
	ack       uint64
	made      string // the pending nonce this call created: only it can fence
	confirmed bool   // a foreign body was read once already
	// sent is this replica's wall clock (ms) before the call's first
	// request: no write of this call landed earlier, so the registry's
	// age is judged from it (registryDue), not from when the answer was
	// recorded, which a pause can put long after the write.
	sent int64
}

// newPending moves an inherited pending nonce to Prior (it is never sent
// again) and persists a fresh pending {seq, nonce} before any request.
func (r *Engine) newPending(ctx context.Context) error {
	rs := &r.reg
	if rs.PendingNonce != "" {
		rs.Prior = append(rs.Prior, rs.PendingNonce)
		if len(rs.Prior) > maxPrior {
			rs.Prior = rs.Prior[len(rs.Prior)-maxPrior:]
		}
	}
	rs.PendingSeq, rs.PendingNonce = max(rs.Seq, rs.PendingSeq)+1, newNonce()
	return r.saveJSON(ctx, "registry", rs)
}

// judgeSwap judges the registry body read back after a failed or
// ambiguous swap (putErr): again to swap once more, else done with err.
func (r *Engine) judgeSwap(ctx context.Context, sw *swapCall, attempt int, obj remote.Object, body RegistryBody, putErr error) (again bool, err error) {
	b, rs := r.opts.Backend, &r.reg
	switch r.rules.JudgeSwap(protocol.SwapRead{Retired: body.Retired, Nonce: body.Nonce, ETag: obj.ETag}, rs.writes(), sw.made) {
	case protocol.SwapRetired:
		// Retired is sticky: even our own write, retired afterwards, is
		// retired. Only a rebase clears it (rebase checks that the retired
		// body was ours).
		return false, fmt.Errorf("%w (%s)", ErrRetired, sw.key)
	case protocol.SwapLanded:
		// This call's write landed (an ambiguous answer): a fence.
		if err := r.landedAt(ctx, obj.ETag, body.Ack, sw.sent); err != nil {
			return false, err
		}
		return sw.ack != body.Ack && attempt == 0, nil // else write the current ack too
	case protocol.SwapAdoptAny:
		// An old rule's (the simulator's): any pending write of ours found
		// landed is adopted as this call's own, retired or not.
		return false, r.landedAt(ctx, obj.ETag, body.Ack, sw.sent)
	case protocol.SwapAdoptPrior:
		// A write left pending by a crash (or copied with this directory)
		// landed: adopt its ETag, then swap again with this call's fresh
		// nonce. A copy that adopted the same write loses that swap.
		rs.ETag, rs.Seq, rs.Nonce, rs.Prior = obj.ETag, body.Seq, body.Nonce, nil
		if err := r.saveJSON(ctx, "registry", rs); err != nil {
			return false, err
		}
		if attempt > 4 {
			return false, fmt.Errorf("replica: registry swap on %s: %w", b, putErr)
		}
		return true, nil
	case protocol.SwapAdoptETag:
		// Our last body under a new ETag (a restored or copied bucket, a
		// store that re-applied a delayed write): nobody swapped since our
		// last write, so adopt the ETag and try again.
		rs.ETag = obj.ETag
		if err := r.saveJSON(ctx, "registry", rs); err != nil {
			return false, err
		}
		if attempt > 2 {
			return false, fmt.Errorf("replica: registry swap on %s: %w", b, putErr)
		}
		return true, nil
	case protocol.SwapUnchanged:
		// Unchanged: the swap did not land. Try again once.
		if attempt > 0 {
			return false, fmt.Errorf("replica: registry swap on %s: %w", b, putErr)
		}
		return true, nil
	default: // protocol.SwapForeign
		// Confirm on a second read before the verdict: a torn read must
		// not stop a replica that was not copied.
		if !sw.confirmed {
			sw.confirmed = true
			return true, nil
		}
		return false, fmt.Errorf("%w: %s holds seq %d written by another directory", ErrCloned, sw.key, body.Seq)
	}
}

// landed records a registry write of this replica's that is known to hold
// the object now (ETag etag, publishing ack).
func (r *Engine) landed(ctx context.Context, etag string, ack uint64) error {
	return r.landedAt(ctx, etag, ack, r.now().UnixMilli())
}

// landedAt is landed for a write sent at wall-clock time at (ms): the
// registry's age counts from then.
func (r *Engine) landedAt(ctx context.Context, etag string, ack uint64, at int64) error {
	rs := &r.reg
	*rs = regState{Registered: true, ETag: etag, Seq: rs.PendingSeq, Nonce: rs.PendingNonce,
		Ack: ack, At: at}
	return r.saveJSON(ctx, "registry", rs)
}

// checkRegistry reads this replica's registry object after a segment's
// create and before the push commits it (absence rule 3). A pruner frees a
// log position only after reading this registry retired, and retired is
// sticky, so a create that landed in a freed position is always noticed
// here: ErrRetired, and the outbox is kept. A body written by another
// directory gives ErrCloned (after a second read).
func (r *Engine) checkRegistry(ctx context.Context) error {
	body, _, err := r.readRegistry(ctx, func(b RegistryBody) bool {
		return protocol.JudgeCommit(bodyProto(b), r.reg.writes()) != protocol.CommitForeign
	})
	if err == nil && protocol.JudgeCommit(bodyProto(body), r.reg.writes()) == protocol.CommitRetired {
		err = fmt.Errorf("%w (%s)", ErrRetired, remote.RegistryKey(r.ID()))
	}
	return err
}

// ownRegistry reads this replica's registry object and checks that this
// directory wrote it (or that it is the retirement of a body it wrote):
// else another directory publishes under this id, ErrCloned.
func (r *Engine) ownRegistry(ctx context.Context) (RegistryBody, string, error) {
	return r.readRegistry(ctx, func(b RegistryBody) bool { return r.rules.OwnsBody(r.reg.writes(), bodyProto(b)) })
}

// readRegistry reads this replica's registry object until a read decodes
// and is accepted. A read that does not decode is no verdict (read again,
// up to four reads); ErrCloned needs two decoded reads that are not
// accepted (another directory wrote it), or the object gone.
func (r *Engine) readRegistry(ctx context.Context, accept func(RegistryBody) bool) (RegistryBody, string, error) {
	b := r.opts.Backend
	key := remote.RegistryKey(r.ID())
	var body RegistryBody
	var last error
	foreign := 0
	for range 4 {
		obj, err := b.Get(ctx, key)
		if errors.Is(err, remote.ErrNotExist) {
			return body, "", fmt.Errorf("%w: %s vanished from %s", ErrCloned, key, b)
		}
		if err != nil {
			return body, "", fmt.Errorf("replica: read %s on %s: %w", key, b, err)
		}
		if body, err = format.DecodeRegistry(obj.Data); err != nil {
			last = fmt.Errorf("replica: %s on %s is not a registry object: %v", key, b, err)
			continue
		}
		if accept(body) {
			return body, obj.ETag, nil
		}
		last = fmt.Errorf("%w: %s holds seq %d written by another directory", ErrCloned, key, body.Seq)
		if foreign++; foreign >= 2 {
			return body, "", last
		}
	}
	return body, "", last
}

// readStable reads an object that carries no checksum of its own until
// two reads agree (see format.ReadStable).
func readStable(ctx context.Context, b remote.Backend, key string) (remote.Object, error) {
	return format.ReadStable(ctx, b, key)
}

type regInfo struct {
	body RegistryBody
	info remote.Info
	etag string
}

// proto is what the protocol's rules read of a registry.
func (g regInfo) proto() protocol.Registry {
	p := bodyProto(g.body)
	p.Modified = g.info.LastModified
	return p
}

func bodyProto(b RegistryBody) protocol.Registry {
	return protocol.Registry{ID: b.ReplicaID, Seq: b.Seq, Nonce: b.Nonce, Ack: b.Ack,
		Retired: b.Retired, RetiredNonce: b.RetiredNonce}
}

func protoRegs(regs []regInfo) []protocol.Registry {
	out := make([]protocol.Registry, len(regs))
	for i, g := range regs {
		out[i] = g.proto()
	}
	return out
}

// readRegistries lists and reads every registry object. A listing that
// misses a registry must not make its ack be ignored (a higher minimum ack
// would let collection and pruning outrun that replica), so it is
// conservative: every replica id this directory has seen registered before
// (m/peer/<id>) must be found again, by the listing or by a direct read;
// one that cannot be read stops the compaction with an error. New ids are
// remembered.
func (r *Engine) readRegistries(ctx context.Context) ([]regInfo, error) {
	b := r.opts.Backend
	var out []regInfo
	seen := map[string]bool{}
	read := func(info remote.Info) error {
		obj, err := b.Get(ctx, info.Key)
		if err != nil {
			return err
		}
		body, err := format.DecodeRegistry(obj.Data)
		if err != nil {
			return fmt.Errorf("replica: %s on %s is not a registry object: %w", info.Key, b, err)
		}
		info.LastModified = obj.LastModified
		out = append(out, regInfo{body: body, info: info, etag: obj.ETag})
		// Remember the id the object is named by, once it parses.
		name := strings.TrimSuffix(strings.TrimPrefix(info.Key, remote.ReplicasPrefix), ".json")
		if id, err := clock.ParseReplicaID(name); err == nil {
			seen[id.String()] = true
		}
		return nil
	}
	for info, err := range b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return nil, fmt.Errorf("replica: list %s on %s: %w", remote.ReplicasPrefix, b, err)
		}
		if err := read(info); errors.Is(err, remote.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("replica: read %s on %s: %w", info.Key, b, err)
		}
	}
	known, err := r.knownPeers()
	if err != nil {
		return nil, err
	}
	for _, id := range known {
		if seen[id] {
			continue
		}
		key := remote.ReplicasPrefix + id + ".json"
		if err := read(remote.Info{Key: key}); err != nil {
			return nil, fmt.Errorf("replica: registry %s of a known replica is missing from the listing of %s and cannot be read (%w): its ack cannot be counted, so nothing is collected or pruned", key, b, err)
		}
	}
	if err := r.rememberPeers(ctx, known, seen); err != nil {
		return nil, err
	}
	return out, nil
}

// knownPeers lists the replica ids this directory has seen registered
// (m/peer/<id>).
func (r *Engine) knownPeers() ([]string, error) {
	var known []string
	err := r.st.View(func(v *store.View) error {
		return v.MetaScan("peer/", func(name string, _ []byte) (bool, error) {
			known = append(known, strings.TrimPrefix(name, "peer/"))
			return true, nil
		})
	})
	return known, wrapClosed(err)
}

// rememberPeers records the ids of seen that are not known yet.
func (r *Engine) rememberPeers(ctx context.Context, known []string, seen map[string]bool) error {
	var fresh []string
	for id := range seen {
		if !slices.Contains(known, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return wrapClosed(r.st.Update(ctx, func(tx *store.Tx) error {
		for _, id := range fresh {
			tx.SetMeta("peer/"+id, []byte{1})
		}
		return nil
	}))
}

// ackNow is this replica's ack: the cursor lowered to staged bases.
func (r *Engine) ackNow() (uint64, error) {
	st, err := r.loadStaged()
	if err != nil {
		return 0, err
	}
	in := protocol.AckInput{Cursor: r.cursor(), LastOwnPush: r.lastOwn()}
	for _, s := range st {
		in.StagedBases = append(in.StagedBases, s.Base)
	}
	return r.rules.Ack(in), nil
}

// lastOwn is the highest position of this replica's own pushes.
func (r *Engine) lastOwn() uint64 {
	var last uint64
	_ = r.st.View(func(v *store.View) error {
		return v.MetaScan("own/", func(name string, _ []byte) (bool, error) {
			var p uint64
			if _, err := fmt.Sscanf(name, "own/%d", &p); err == nil {
				last = max(last, p)
			}
			return true, nil
		})
	})
	return last
}
