// Package remotetest is the conformance suite every [remote.Backend]
// driver passes, in the style of gocloud.dev's drivertest.
//
// A driver's test calls RunConformance with a constructor that returns a
// fresh, empty backend per call:
//
//	func TestConformance(t *testing.T) {
//		remotetest.RunConformance(t, func(t *testing.T) remote.Backend {
//			return memremote.New(t.Name())
//		})
//	}
//
// The suite checks the contract documented on remote.Backend, plus these
// details the interface leaves to the suite:
//   - Stats: every request that reaches the store counts one, whether it
//     succeeds or loses (Get of a missing key, a losing conditional put, a
//     Delete of a missing key); BytesOut counts Put bodies sent (for a
//     losing conditional put 0 or the body length are both accepted);
//     BytesIn counts Get bodies received; a List counts one per page, so a
//     small listing (even an empty one) counts exactly 1. A bad key or a
//     cancelled context counts nothing.
//   - PutIfMatch on a missing key returns an error wrapping
//     ErrPrecondition (it may also wrap ErrNotExist); an empty etag never
//     matches.
//     A wrapper that stores larger bodies than it is given (sealremote)
//     says by how much with a method Overhead(name string) int64, and
//     BytesIn/BytesOut count that much more.
//   - List pages hold at most 1,000 objects, so 1,100 objects need at least
//     two List requests, and breaking out of the loop after the first
//     object fetches no second page.
//   - remote.ProbeConditional accepts the backend, in four PUTs and one
//     DELETE, and leaves no object behind.
//   - A backend may accept fewer bytes per key than remote.MaxKeyLen, by a
//     method MaxKeyLen() int: S3 limits an object's whole name, the store
//     prefix included, to 1,024 bytes, so an S3 driver under a prefix has
//     less room. The longest key it states works; one byte more fails with
//     ErrInvalidKey and sends nothing.
//
// The suite keeps to the limits of real S3 services, not to the leniency of
// one server: object names of at most 1,024 bytes, the driver's prefix
// included (AWS S3 and MinIO refuse longer names; versitygw accepts them);
// "/"-separated parts of at most 255 bytes (servers that keep objects as
// files, MinIO and versitygw, refuse longer ones: a file name); list pages
// of at most 1,000 keys; create-only and compare-and-swap puts as AWS S3
// has them (If-None-Match: * and If-Match), and read-after-write
// consistency (a Get or List right after a write sees it).
//
// Objects whose name is the "folder" of another (a and a/b) are not tested:
// ebreplica never creates them. Neither are keys differing only in case, so
// that a directory driver passes on case-insensitive filesystems.
package remotetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/ebreplica/ebreplica/remote"
)

// Rounds is the number of rounds of each race test, and Racers the number
// of goroutines racing per round.
const (
	Rounds = 20
	Racers = 16
)

// RunConformance runs the conformance suite as subtests of t. Each call of
// newBackend must return a new, empty backend; the suite does not close or
// clean it (use t.Cleanup in newBackend).
func RunConformance(t *testing.T, newBackend func(t *testing.T) remote.Backend) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, be remote.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotRetained", testNotRetained},
		{"GetMissing", testGetMissing},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"Names", testNames},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"PutIfMatch", testPutIfMatch},
		{"PutIfMatchRace", testPutIfMatchRace},
		{"Cancelled", testCancelled},
		{"InvalidKey", testInvalidKey},
		{"Stats", testStats},
		{"String", testString},
		{"ProbeConditional", testProbeConditional},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newBackend(t))
		})
	}
}

// Content returns n deterministic pseudo-random bytes for seed.
func Content(seed uint64, n int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

// --- helpers ---

func mustPut(t *testing.T, be remote.Backend, key string, data []byte) string {
	t.Helper()
	etag, err := be.Put(t.Context(), key, data)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if etag == "" {
		t.Fatalf("Put(%q) returned an empty ETag", key)
	}
	return etag
}

func mustGet(t *testing.T, be remote.Backend, key string) remote.Object {
	t.Helper()
	obj, err := be.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return obj
}

// checkObject fails unless key holds want with ETag etag.
func checkObject(t *testing.T, be remote.Backend, key string, want []byte, etag string) {
	t.Helper()
	obj := mustGet(t, be, key)
	if !bytes.Equal(obj.Data, want) {
		t.Fatalf("Get(%q) = %d bytes %.16q, want %d bytes %.16q", key, len(obj.Data), obj.Data, len(want), want)
	}
	if obj.ETag != etag {
		t.Fatalf("Get(%q).ETag = %s, want %s", key, obj.ETag, etag)
	}
}

func checkMissing(t *testing.T, be remote.Backend, key string) {
	t.Helper()
	if obj, err := be.Get(t.Context(), key); !errors.Is(err, remote.ErrNotExist) {
		t.Fatalf("Get(%q) = %d bytes, %v; want ErrNotExist", key, len(obj.Data), err)
	}
}

// listAll collects a whole listing.
func listAll(t *testing.T, be remote.Backend, prefix, startAfter string) []remote.Info {
	t.Helper()
	var out []remote.Info
	for info, err := range be.List(t.Context(), prefix, startAfter) {
		if err != nil {
			t.Fatalf("List(%q, %q): %v", prefix, startAfter, err)
		}
		out = append(out, info)
	}
	return out
}

func keysOf(infos []remote.Info) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

// putAll stores objects concurrently (a few at a time, to keep slow drivers
// fast) and returns their ETags.
func putAll(t *testing.T, be remote.Backend, objs map[string][]byte) map[string]string {
	t.Helper()
	var mu sync.Mutex
	etags := make(map[string]string, len(objs))
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(8)
	for k, v := range objs {
		g.Go(func() error {
			etag, err := be.Put(ctx, k, v)
			if err != nil {
				return fmt.Errorf("Put(%q): %w", k, err)
			}
			mu.Lock()
			etags[k] = etag
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return etags
}

// delta runs fn and returns how the counters moved.
func delta(be remote.Backend, fn func()) remote.Counts {
	before := be.Stats().Snapshot()
	fn()
	return be.Stats().Snapshot().Sub(before)
}

// --- tests ---

func testRoundTrip(t *testing.T, be remote.Backend) {
	for _, tc := range []struct {
		name string
		size int
	}{{"empty", 0}, {"small", 100}, {"large", 5 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			key := "roundtrip/" + tc.name
			data := Content(1, tc.size)
			etag := mustPut(t, be, key, data)
			checkObject(t, be, key, data, etag)
			checkObject(t, be, key, data, etag) // stable
			infos := listAll(t, be, key, "")
			if len(infos) != 1 || infos[0].Key != key {
				t.Fatalf("List(%q) = %q, want just the key", key, keysOf(infos))
			}
			if infos[0].Size != int64(tc.size) || infos[0].ETag != etag {
				t.Errorf("List(%q) = size %d etag %s, want %d %s", key, infos[0].Size, infos[0].ETag, tc.size, etag)
			}
		})
	}
}

func testNotRetained(t *testing.T, be remote.Backend) {
	data := []byte("original content")
	want := slices.Clone(data)
	etag := mustPut(t, be, "retain/put", data)
	clear(data)
	checkObject(t, be, "retain/put", want, etag)

	obj := mustGet(t, be, "retain/put")
	clear(obj.Data)
	checkObject(t, be, "retain/put", want, etag)

	data = slices.Clone(want)
	etag, err := be.PutIfAbsent(t.Context(), "retain/absent", data)
	if err != nil {
		t.Fatal(err)
	}
	clear(data)
	checkObject(t, be, "retain/absent", want, etag)

	data = []byte("replaced content")
	want = slices.Clone(data)
	etag, err = be.PutIfMatch(t.Context(), "retain/absent", data, etag)
	if err != nil {
		t.Fatal(err)
	}
	clear(data)
	checkObject(t, be, "retain/absent", want, etag)
}

func testGetMissing(t *testing.T, be remote.Backend) {
	checkMissing(t, be, "missing")
	checkMissing(t, be, "missing/deeper/key")
	mustPut(t, be, "present/x", []byte("x"))
	checkMissing(t, be, "present/y")
	checkMissing(t, be, "present/x/under") // a file's "folder" does not exist
}

func testOverwrite(t *testing.T, be remote.Backend) {
	e1 := mustPut(t, be, "over/k", []byte("first version"))
	e2 := mustPut(t, be, "over/k", []byte("second, longer version"))
	if e1 == e2 {
		t.Errorf("overwrite with different content kept ETag %s", e1)
	}
	checkObject(t, be, "over/k", []byte("second, longer version"), e2)
	infos := listAll(t, be, "over/", "")
	if len(infos) != 1 || infos[0].Size != int64(len("second, longer version")) || infos[0].ETag != e2 {
		t.Errorf("List after overwrite = %+v", infos)
	}
	e3 := mustPut(t, be, "over/k", nil)
	checkObject(t, be, "over/k", []byte{}, e3)
}

func testDelete(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	mustPut(t, be, "del/a/b", []byte("doomed"))
	mustPut(t, be, "del/keep", []byte("kept"))
	if err := be.Delete(ctx, "del/a/b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, be, "del/a/b")
	if err := be.Delete(ctx, "del/a/b"); err != nil {
		t.Fatalf("Delete of a deleted key: %v", err)
	}
	if err := be.Delete(ctx, "del/never/existed"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if got := keysOf(listAll(t, be, "del/", "")); !slices.Equal(got, []string{"del/keep"}) {
		t.Fatalf("List after Delete = %q, want [del/keep]", got)
	}
	// The key can be created again, create-only.
	etag, err := be.PutIfAbsent(ctx, "del/a/b", []byte("reborn"))
	if err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	checkObject(t, be, "del/a/b", []byte("reborn"), etag)
	// A key whose old "folder" was emptied by a delete works too.
	if err := be.Delete(ctx, "del/a/b"); err != nil {
		t.Fatal(err)
	}
	etag = mustPut(t, be, "del/a/c", []byte("sibling"))
	checkObject(t, be, "del/a/c", []byte("sibling"), etag)
}

func testNames(t *testing.T, be remote.Backend) {
	names := []string{
		"names/with space/x y",
		"names/unicode/\u00e9\u00fc\u4e16\u754c",
		"names/punct/a+b=c&d",
		"names/punct/100%25%",
		"names/punct/q?x#y",
		"names/punct/~tilde!'()*@$,;:",
		"names/" + strings.Repeat("long", 40),
		"names/.hidden",
		"names/a..b",
	}
	objs := make(map[string][]byte)
	for i, k := range names {
		objs[k] = []byte(fmt.Sprintf("content %d", i))
	}
	etags := putAll(t, be, objs)
	for _, k := range names {
		checkObject(t, be, k, objs[k], etags[k])
	}
	want := slices.Sorted(slices.Values(names))
	if got := keysOf(listAll(t, be, "names/", "")); !slices.Equal(got, want) {
		t.Fatalf("List = %q\nwant %q", got, want)
	}
}

// listKeys are chosen so that a naive directory walk gets the byte order
// wrong: '-' < '.' < '/' < '0'.
var listKeys = []string{
	"a-b", "a.b", "a/b", "a/c/d", "a/c0", "a0", "aB", "a_c", "ac", "a~",
	"ba", "b/x/y/z", "c\u00e9", "z/x/y",
}

func testList(t *testing.T, be remote.Backend) {
	objs := make(map[string][]byte)
	for i, k := range listKeys {
		objs[k] = Content(uint64(i), i*3)
	}
	etags := putAll(t, be, objs)
	sorted := slices.Sorted(slices.Values(listKeys))

	all := listAll(t, be, "", "")
	if got := keysOf(all); !slices.Equal(got, sorted) {
		t.Fatalf("List all = %q\nwant (byte order) %q", got, sorted)
	}
	for _, info := range all {
		if info.Size != int64(len(objs[info.Key])) || info.ETag != etags[info.Key] {
			t.Errorf("List: %q size %d etag %s, want %d %s", info.Key, info.Size, info.ETag, len(objs[info.Key]), etags[info.Key])
		}
	}

	cases := []struct{ prefix, startAfter string }{
		{"a", ""}, {"a/", ""}, {"a/c", ""}, {"a/c/", ""}, {"a.", ""}, {"b", ""},
		{"b/x/", ""}, {"z/x/y", ""}, {"nomatch", ""}, {"zz", ""}, {"c", ""},
		{"", "a"}, {"", "a/"}, {"", "a/b"}, {"", "a/c"}, {"", "a/c/d"}, {"", "a0"},
		{"", "b"}, {"", "b/"}, {"", "a.b/zzz"}, {"", "z/x/y"}, {"", "zzz"}, {"", "\u00ff"},
		{"a", "a."}, {"a", "a/b"}, {"a/", "a/b"}, {"a/", "a/c/e"}, {"a/", "a/zz"},
		{"a", "0"}, {"b", "a"}, {"a/", "b"}, {"b/", "b/x/y"},
	}
	for _, c := range cases {
		var want []string
		for _, k := range sorted {
			if strings.HasPrefix(k, c.prefix) && k > c.startAfter {
				want = append(want, k)
			}
		}
		got := keysOf(listAll(t, be, c.prefix, c.startAfter))
		if !slices.Equal(got, want) {
			t.Errorf("List(prefix %q, startAfter %q) = %q, want %q", c.prefix, c.startAfter, got, want)
		}
	}
}

func testListPaging(t *testing.T, be remote.Backend) {
	const n = 1100
	objs := make(map[string][]byte, n)
	var want []string
	for i := range n {
		k := fmt.Sprintf("page/%02d/%04d", i/100, i)
		objs[k] = []byte(k)
		want = append(want, k)
	}
	mustPut(t, be, "pagf", []byte("after the prefix"))
	mustPut(t, be, "pag", []byte("before the prefix"))
	putAll(t, be, objs)

	var got []string
	d := delta(be, func() { got = keysOf(listAll(t, be, "page/", "")) })
	if !slices.Equal(got, want) {
		t.Fatalf("List of %d keys returned %d keys (first diff near %d)", n, len(got), firstDiff(got, want))
	}
	if d.List < 2 {
		t.Errorf("listing %d keys counted %d List requests, want at least 2 (pages of at most 1000)", n, d.List)
	}

	// startAfter deep in the second page.
	got = keysOf(listAll(t, be, "page/", want[1049]))
	if !slices.Equal(got, want[1050:]) {
		t.Errorf("List after %q returned %d keys, want %d", want[1049], len(got), n-1050)
	}

	// Breaking out early fetches no more pages.
	d = delta(be, func() {
		for info, err := range be.List(t.Context(), "page/", "") {
			if err != nil {
				t.Fatal(err)
			}
			if info.Key != want[0] {
				t.Errorf("first key %q, want %q", info.Key, want[0])
			}
			break
		}
	})
	if d.List != 1 {
		t.Errorf("breaking after the first key counted %d List requests, want 1", d.List)
	}

	// Cancelling mid-listing ends it with the context's error.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	count := 0
	var lastErr error
	for _, err := range be.List(ctx, "page/", "") {
		if err != nil {
			lastErr = err
			break
		}
		count++
		cancel()
	}
	if !errors.Is(lastErr, context.Canceled) || count >= n {
		t.Errorf("List cancelled after the first key: %d keys, error %v; want fewer than %d keys and context.Canceled", count, lastErr, n)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func testPutIfAbsent(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	etag, err := be.PutIfAbsent(ctx, "cas/new", []byte("first"))
	if err != nil {
		t.Fatalf("PutIfAbsent of a new key: %v", err)
	}
	if etag == "" {
		t.Fatal("PutIfAbsent returned an empty ETag")
	}
	checkObject(t, be, "cas/new", []byte("first"), etag)
	if _, err := be.PutIfAbsent(ctx, "cas/new", []byte("second")); !errors.Is(err, remote.ErrExists) {
		t.Fatalf("second PutIfAbsent = %v, want ErrExists", err)
	}
	checkObject(t, be, "cas/new", []byte("first"), etag)
	// Same content loses too.
	if _, err := be.PutIfAbsent(ctx, "cas/new", []byte("first")); !errors.Is(err, remote.ErrExists) {
		t.Fatalf("PutIfAbsent with the same content = %v, want ErrExists", err)
	}
	// Over an object written by plain Put.
	e := mustPut(t, be, "cas/put", []byte("plain"))
	if _, err := be.PutIfAbsent(ctx, "cas/put", []byte("other")); !errors.Is(err, remote.ErrExists) {
		t.Fatalf("PutIfAbsent over Put = %v, want ErrExists", err)
	}
	checkObject(t, be, "cas/put", []byte("plain"), e)
	// Empty content.
	etag, err = be.PutIfAbsent(ctx, "cas/empty", nil)
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, be, "cas/empty", []byte{}, etag)
}

// race runs fn(i) for Racers goroutines released at once and returns their
// results.
func race[T any](fn func(i int) T) []T {
	out := make([]T, Racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range Racers {
		wg.Go(func() {
			<-start
			out[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

type putResult struct {
	etag string
	err  error
}

// oneWinner checks that exactly one racer won and every other lost with
// want, and returns the winner.
func oneWinner(t *testing.T, round int, res []putResult, want error) int {
	t.Helper()
	winner := -1
	for i, r := range res {
		switch {
		case r.err == nil:
			if winner >= 0 {
				t.Fatalf("round %d: racers %d and %d both won", round, winner, i)
			}
			winner = i
		case !errors.Is(r.err, want):
			t.Fatalf("round %d: racer %d: %v, want %v", round, i, r.err, want)
		}
	}
	if winner < 0 {
		t.Fatalf("round %d: no racer won", round)
	}
	return winner
}

func racerData(round, i int) []byte {
	return []byte(fmt.Sprintf("round %d racer %d", round, i))
}

func testPutIfAbsentRace(t *testing.T, be remote.Backend) {
	for round := range Rounds {
		key := fmt.Sprintf("race/absent/%d", round)
		res := race(func(i int) putResult {
			etag, err := be.PutIfAbsent(t.Context(), key, racerData(round, i))
			return putResult{etag, err}
		})
		w := oneWinner(t, round, res, remote.ErrExists)
		checkObject(t, be, key, racerData(round, w), res[w].etag)
	}
}

func testPutIfMatch(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	e1 := mustPut(t, be, "cas/k", []byte("v1"))
	e2, err := be.PutIfMatch(ctx, "cas/k", []byte("v2"), e1)
	if err != nil {
		t.Fatalf("PutIfMatch with the current ETag: %v", err)
	}
	if e2 == "" || e2 == e1 {
		t.Fatalf("PutIfMatch returned ETag %q (old %q)", e2, e1)
	}
	checkObject(t, be, "cas/k", []byte("v2"), e2)

	for _, bad := range []struct{ name, etag string }{
		{"stale", e1}, {"garbage", `"0123456789abcdef"`}, {"empty", ""}, {"unquoted", strings.Trim(e2, `"`) + "x"},
	} {
		if _, err := be.PutIfMatch(ctx, "cas/k", []byte("v3"), bad.etag); !errors.Is(err, remote.ErrPrecondition) {
			t.Fatalf("PutIfMatch with %s ETag %q = %v, want ErrPrecondition", bad.name, bad.etag, err)
		}
		checkObject(t, be, "cas/k", []byte("v2"), e2)
	}

	// Chain a few swaps, including to empty content and back.
	etag := e2
	for i, data := range [][]byte{nil, []byte("v4"), Content(7, 70000), []byte("v6")} {
		etag, err = be.PutIfMatch(ctx, "cas/k", data, etag)
		if err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
		if data == nil {
			data = []byte{}
		}
		checkObject(t, be, "cas/k", data, etag)
	}

	// A missing key never matches.
	_, err = be.PutIfMatch(ctx, "cas/missing", []byte("x"), e1)
	if !errors.Is(err, remote.ErrPrecondition) {
		t.Fatalf("PutIfMatch on a missing key = %v, want ErrPrecondition", err)
	}
	checkMissing(t, be, "cas/missing")
	// Nor a deleted one, even with its last ETag.
	if err := be.Delete(ctx, "cas/k"); err != nil {
		t.Fatal(err)
	}
	if _, err := be.PutIfMatch(ctx, "cas/k", []byte("zombie"), etag); !errors.Is(err, remote.ErrPrecondition) {
		t.Fatalf("PutIfMatch on a deleted key = %v, want ErrPrecondition", err)
	}
	checkMissing(t, be, "cas/k")
}

func testPutIfMatchRace(t *testing.T, be remote.Backend) {
	key := "race/match"
	etag := mustPut(t, be, key, []byte("start"))
	for round := range Rounds {
		res := race(func(i int) putResult {
			e, err := be.PutIfMatch(t.Context(), key, racerData(round, i), etag)
			return putResult{e, err}
		})
		w := oneWinner(t, round, res, remote.ErrPrecondition)
		checkObject(t, be, key, racerData(round, w), res[w].etag)
		etag = res[w].etag
	}
}

func testCancelled(t *testing.T, be remote.Backend) {
	etag := mustPut(t, be, "cancel/exists", []byte("kept"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", what, err)
		}
	}
	d := delta(be, func() {
		_, err := be.Get(ctx, "cancel/exists")
		check("Get", err)
		_, err = be.Put(ctx, "cancel/new", []byte("x"))
		check("Put", err)
		_, err = be.Put(ctx, "cancel/exists", []byte("x"))
		check("Put over", err)
		_, err = be.PutIfAbsent(ctx, "cancel/new", []byte("x"))
		check("PutIfAbsent", err)
		_, err = be.PutIfMatch(ctx, "cancel/exists", []byte("x"), etag)
		check("PutIfMatch", err)
		check("Delete", be.Delete(ctx, "cancel/exists"))
		n := 0
		for info, err := range be.List(ctx, "", "") {
			n++
			if err == nil {
				t.Errorf("List with a cancelled context yielded %q", info.Key)
				continue
			}
			check("List", err)
		}
		if n != 1 {
			t.Errorf("List with a cancelled context yielded %d pairs, want 1 error", n)
		}
	})
	if d != (remote.Counts{}) {
		t.Errorf("cancelled calls moved the counters: %+v", d)
	}
	checkObject(t, be, "cancel/exists", []byte("kept"), etag)
	checkMissing(t, be, "cancel/new")
}

// keyLimiter is a backend that accepts fewer bytes per key than
// remote.MaxKeyLen (an S3 driver under a prefix).
type keyLimiter interface {
	// MaxKeyLen returns the longest key the backend accepts, in bytes.
	MaxKeyLen() int
}

// MaxKeyLen returns the longest key be accepts: remote.MaxKeyLen, or less
// when be says so with a method MaxKeyLen() int.
func MaxKeyLen(be remote.Backend) int {
	if l, ok := be.(keyLimiter); ok {
		return min(l.MaxKeyLen(), remote.MaxKeyLen)
	}
	return remote.MaxKeyLen
}

// LongKey returns a valid key of n bytes made of parts of at most 100 bytes
// between slashes, starting with start (which must not end with "/").
func LongKey(start string, n int) string {
	var sb strings.Builder
	sb.WriteString(start)
	for sb.Len() < n {
		part := min(100, n-sb.Len()-1)
		if part < 1 { // one byte left: grow the last part
			sb.WriteByte('k')
			continue
		}
		sb.WriteByte('/')
		sb.WriteString(strings.Repeat("k", part))
	}
	return sb.String()
}

// BadKeys are object names every driver rejects with ErrInvalidKey.
var BadKeys = []string{
	"", "/", "/a", "a/", "a//b", ".", "..", "./a", "a/.", "a/./b", "../a", "a/..", "a/../b",
	"a\\b", "a\x00b", "a\nb", "a\tb", "\x7f", "a\x1fb", "bad\xffutf8", "bad\xc3", "rep\ufffdlacement",
	strings.Repeat("k", remote.MaxKeyLen+1),
}

func testInvalidKey(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	limit := MaxKeyLen(be)
	if limit < 100 {
		t.Fatalf("MaxKeyLen = %d: a backend with so little room is of no use", limit)
	}
	bad := BadKeys
	if limit < remote.MaxKeyLen {
		// One byte over the backend's own limit, the longest under it.
		bad = append(slices.Clip(bad), LongKey("over", limit+1))
	}
	d := delta(be, func() {
		for _, key := range bad {
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, remote.ErrInvalidKey) {
					t.Errorf("%s(%.40q) = %v, want ErrInvalidKey", what, key, err)
				}
			}
			_, err := be.Get(ctx, key)
			check("Get", err)
			_, err = be.Put(ctx, key, []byte("x"))
			check("Put", err)
			_, err = be.PutIfAbsent(ctx, key, []byte("x"))
			check("PutIfAbsent", err)
			_, err = be.PutIfMatch(ctx, key, []byte("x"), `"etag"`)
			check("PutIfMatch", err)
			check("Delete", be.Delete(ctx, key))
			if key == "" || remote.ValidatePrefix(key) == nil {
				continue // "" and "a/" are fine prefixes
			}
			n := 0
			for info, err := range be.List(ctx, key, "") {
				n++
				if err == nil {
					t.Errorf("List(%.40q) yielded %q", key, info.Key)
					continue
				}
				check("List", err)
			}
			if n != 1 {
				t.Errorf("List(%.40q) yielded %d pairs, want 1 error", key, n)
			}
		}
	})
	if d != (remote.Counts{}) {
		t.Errorf("bad keys moved the counters: %+v", d)
	}
	if got := listAll(t, be, "", ""); len(got) != 0 {
		t.Errorf("bad keys stored objects: %q", keysOf(got))
	}
	// The longest valid key works.
	long := LongKey("long", limit)
	if remote.ValidateKey(long) != nil || len(long) != limit {
		t.Fatalf("test bug: %d-byte key %q invalid", len(long), long)
	}
	etag := mustPut(t, be, long, []byte("long"))
	checkObject(t, be, long, []byte("long"), etag)
	if got := keysOf(listAll(t, be, "long/", "")); !slices.Equal(got, []string{long}) {
		t.Fatalf("List of the longest key = %q", got)
	}
}

func testStats(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	want := func(what string, got, want remote.Counts) {
		t.Helper()
		if got != want {
			t.Errorf("%s moved the counters by %+v, want %+v", what, got, want)
		}
	}
	// losing checks a losing conditional put: one Put, and BytesOut either
	// 0 or the body length.
	losing := func(what string, got remote.Counts, n int64) {
		t.Helper()
		if got.BytesOut == n {
			got.BytesOut = 0
		}
		want(what, got, remote.Counts{Put: 1})
	}
	// A wrapper that stores bodies larger than given (sealremote) counts
	// the bytes on the wire and says how many more (Overhead).
	var over int64
	if o, ok := be.(interface{ Overhead(name string) int64 }); ok {
		over = o.Overhead("stats/a")
	}
	var etag string
	var err error
	want("Put", delta(be, func() { etag = mustPut(t, be, "stats/a", make([]byte, 10)) }), remote.Counts{Put: 1, BytesOut: 10 + over})
	want("Get", delta(be, func() { mustGet(t, be, "stats/a") }), remote.Counts{Get: 1, BytesIn: 10 + over})
	want("Get missing", delta(be, func() { checkMissing(t, be, "stats/missing") }), remote.Counts{Get: 1})
	want("PutIfAbsent", delta(be, func() {
		_, err = be.PutIfAbsent(ctx, "stats/b", make([]byte, 5))
	}), remote.Counts{Put: 1, BytesOut: 5 + over})
	if err != nil {
		t.Fatal(err)
	}
	losing("losing PutIfAbsent", delta(be, func() {
		_, err = be.PutIfAbsent(ctx, "stats/b", make([]byte, 5))
	}), 5+over)
	if !errors.Is(err, remote.ErrExists) {
		t.Fatal(err)
	}
	want("PutIfMatch", delta(be, func() {
		_, err = be.PutIfMatch(ctx, "stats/a", make([]byte, 7), etag)
	}), remote.Counts{Put: 1, BytesOut: 7 + over})
	if err != nil {
		t.Fatal(err)
	}
	losing("losing PutIfMatch", delta(be, func() {
		_, err = be.PutIfMatch(ctx, "stats/a", make([]byte, 7), etag)
	}), 7+over)
	if !errors.Is(err, remote.ErrPrecondition) {
		t.Fatal(err)
	}
	want("small List", delta(be, func() {
		if n := len(listAll(t, be, "stats/", "")); n != 2 {
			t.Errorf("List found %d objects, want 2", n)
		}
	}), remote.Counts{List: 1})
	want("empty List", delta(be, func() { listAll(t, be, "nothing/", "") }), remote.Counts{List: 1})
	want("Delete", delta(be, func() {
		if err := be.Delete(ctx, "stats/a"); err != nil {
			t.Fatal(err)
		}
	}), remote.Counts{Delete: 1})
	want("Delete missing", delta(be, func() {
		if err := be.Delete(ctx, "stats/a"); err != nil {
			t.Fatal(err)
		}
	}), remote.Counts{Delete: 1})
	if c := be.Stats().Snapshot(); c.Requests() != c.Put+c.Get+c.List+c.Delete || c.Put < 5 {
		t.Errorf("Snapshot = %+v", c)
	}
}

func testString(t *testing.T, be remote.Backend) {
	if be.String() == "" {
		t.Error("String() is empty")
	}
}

// testProbeConditional: the probe that init and connect run accepts every
// conforming backend (a real S3 server included) and cleans up after itself.
func testProbeConditional(t *testing.T, be remote.Backend) {
	ctx := t.Context()
	var err error
	d := delta(be, func() { err = remote.ProbeConditional(ctx, be) })
	if err != nil {
		t.Fatalf("ProbeConditional refused a conforming backend: %v", err)
	}
	if d.Put != 4 || d.Delete != 1 || d.Get != 0 || d.List != 0 {
		t.Errorf("ProbeConditional made %+v, want 4 puts and 1 delete", d)
	}
	if left := keysOf(listAll(t, be, "", "")); len(left) != 0 {
		t.Errorf("ProbeConditional left %q behind", left)
	}
}

// RunBenchmarks runs benchmarks of the basic operations as sub-benchmarks
// of b; newBackend returns a fresh, empty backend per sub-benchmark.
func RunBenchmarks(b *testing.B, newBackend func(b *testing.B) remote.Backend) {
	data := Content(1, 4<<10)
	b.Run("Put4K", func(b *testing.B) {
		be := newBackend(b)
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			if _, err := be.Put(b.Context(), fmt.Sprintf("bench/%d", i%1000), data); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Get4K", func(b *testing.B) {
		be := newBackend(b)
		if _, err := be.Put(b.Context(), "bench/get", data); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := be.Get(b.Context(), "bench/get"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutIfAbsent4K", func(b *testing.B) {
		be := newBackend(b)
		b.SetBytes(int64(len(data)))
		i := 0
		for b.Loop() {
			if _, err := be.PutIfAbsent(b.Context(), fmt.Sprintf("bench/%d", i), data); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("PutIfMatch4K", func(b *testing.B) {
		be := newBackend(b)
		etag, err := be.Put(b.Context(), "bench/cas", data)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if etag, err = be.PutIfMatch(b.Context(), "bench/cas", data, etag); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List1000", func(b *testing.B) {
		be := newBackend(b)
		for i := range 1000 {
			if _, err := be.Put(b.Context(), fmt.Sprintf("bench/%04d", i), data[:10]); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			n := 0
			for _, err := range be.List(b.Context(), "bench/", "") {
				if err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != 1000 {
				b.Fatalf("listed %d objects, want 1000", n)
			}
		}
	})
}

// RunThroughput runs PUT and GET of 1 KiB and 1 MiB objects at concurrency 1
// and 32 against the backend newBackend returns, as sub-benchmarks named
// Put/1KiB/c1 and so on, reporting ops/s and MB/s (payload bytes).
func RunThroughput(b *testing.B, newBackend func(b *testing.B) remote.Backend) {
	for _, op := range []string{"Put", "Get"} {
		for _, size := range []int{1 << 10, 1 << 20} {
			for _, conc := range []int{1, 32} {
				name := fmt.Sprintf("%s/%dKiB/c%d", op, size>>10, conc)
				if size >= 1<<20 {
					name = fmt.Sprintf("%s/%dMiB/c%d", op, size>>20, conc)
				}
				b.Run(name, func(b *testing.B) {
					be := newBackend(b)
					ctx := b.Context()
					data := Content(uint64(size), size)
					// GET reads one object per worker, PUT overwrites a
					// rotating set of 64 keys per worker.
					fn := func(worker, i int) error {
						_, err := be.Put(ctx, fmt.Sprintf("bench/%02d/%02d", worker, i%64), data)
						return err
					}
					if op == "Get" {
						for w := range conc {
							if _, err := be.Put(ctx, fmt.Sprintf("bench/%02d", w), data); err != nil {
								b.Fatal(err)
							}
						}
						fn = func(worker, _ int) error {
							obj, err := be.Get(ctx, fmt.Sprintf("bench/%02d", worker))
							if err == nil && len(obj.Data) != size {
								err = fmt.Errorf("got %d bytes, want %d", len(obj.Data), size)
							}
							return err
						}
					}
					throughputWorkers(b, conc, size, fn)
				})
			}
		}
	}
}

// throughputWorkers runs b.N calls of fn spread over conc goroutines and reports
// the throughput.
func throughputWorkers(b *testing.B, conc, size int, fn func(worker, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range conc {
		wg.Go(func() {
			for i := 0; ; i++ {
				if next.Add(1) > int64(b.N) {
					return
				}
				if err := fn(w, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/secs, "ops/s")
	b.ReportMetric(float64(b.N)*float64(size)/1e6/secs, "MB/s")
}
