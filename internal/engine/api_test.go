package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/store"
)

// snapshot is everything a rejected write must leave unchanged.
type snapshot struct {
	len, pending int64
	counter      uint64
	marks        []string
	versions     map[string]string
}

func takeSnapshot(t *testing.T, r *engine.Engine, keys ...string) snapshot {
	t.Helper()
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{len: r.Len(), pending: st.Pending, counter: st.Counter, versions: map[string]string{}}
	for p, err := range r.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		s.marks = append(s.marks, fmt.Sprintf("%s:%v", p.Key, p.Deleted))
	}
	for _, k := range keys {
		vs, err := r.Versions(k)
		if errors.Is(err, engine.ErrNotFound) {
			s.versions[k] = "not found"
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s.versions[k] = fmt.Sprintf("%+v", vs)
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	return s.len == o.len && s.pending == o.pending && s.counter == o.counter &&
		slices.Equal(s.marks, o.marks) && fmt.Sprint(s.versions) == fmt.Sprint(o.versions)
}

// checkCounts compares Len and Pending with full scans of the store.
func checkCounts(t *testing.T, r *engine.Engine) {
	t.Helper()
	var live, marks int64
	err := r.Store().View(func(v *store.View) error {
		var err error
		if live, err = v.CountLive(); err != nil {
			return err
		}
		return v.OutboxMarks("", func(string, uint64) (bool, error) { marks++; return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != live {
		t.Errorf("Len %d, recount %d", r.Len(), live)
	}
	if r.Store().OutboxLen() != marks {
		t.Errorf("Pending %d, marks %d", r.Store().OutboxLen(), marks)
	}
	var n int64
	for _, err := range r.Scan("") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != live {
		t.Errorf("Scan yields %d keys, recount %d", n, live)
	}
}

func TestKeyAndValueLimits(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, &engine.Options{MaxValueSize: 16})
	if err := r.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := r.Put(ctx, "gone", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	watched := []string{"k", "gone", "new"}
	before := takeSnapshot(t, r, watched...)
	long := strings.Repeat("a", engine.MaxKeyLen+1)
	badKeys := map[string]string{"empty": "", "1025 bytes": long, "invalid UTF-8": "bad\xff\xfe"}
	for name, key := range badKeys {
		t.Run(name, func(t *testing.T) {
			check := func(op string, err error, want error) {
				t.Helper()
				if !errors.Is(err, want) {
					t.Errorf("%s: %v, want %v", op, err, want)
				}
				if after := takeSnapshot(t, r, watched...); !after.equal(before) {
					t.Errorf("%s changed state:\n%+v\n%+v", op, before, after)
				}
			}
			check("Put", r.Put(ctx, key, []byte("v")), engine.ErrInvalidKey)
			check("Delete", r.Delete(ctx, key), engine.ErrInvalidKey)
			_, err := r.Get(key)
			check("Get", err, engine.ErrInvalidKey)
			_, err = r.Versions(key)
			check("Versions", err, engine.ErrInvalidKey)
			check("Batch put", r.Batch(ctx, func(b *engine.Batch) error {
				b.Put("new", []byte("ok"))
				b.Put(key, []byte("v"))
				b.Put("k", []byte("changed"))
				return nil
			}), engine.ErrInvalidKey)
			check("Batch delete", r.Batch(ctx, func(b *engine.Batch) error {
				b.Delete("k")
				b.Delete(key)
				return nil
			}), engine.ErrInvalidKey)
		})
	}
	t.Run("value too large", func(t *testing.T) {
		big := make([]byte, 17)
		for _, key := range []string{"k", "new"} {
			if err := r.Put(ctx, key, big); !errors.Is(err, engine.ErrValueTooLarge) {
				t.Errorf("Put %s: %v", key, err)
			}
		}
		err := r.Batch(ctx, func(b *engine.Batch) error {
			b.Put("new", []byte("ok"))
			b.Delete("k")
			b.Put("k", big)
			return nil
		})
		if !errors.Is(err, engine.ErrValueTooLarge) {
			t.Errorf("Batch: %v", err)
		}
		if after := takeSnapshot(t, r, watched...); !after.equal(before) {
			t.Errorf("oversized value changed state:\n%+v\n%+v", before, after)
		}
	})
	t.Run("at the limits", func(t *testing.T) {
		okKeys := []string{strings.Repeat("b", engine.MaxKeyLen), strings.Repeat("é", engine.MaxKeyLen/2), "ключ", "a b\x00c"}
		for _, key := range okKeys {
			if err := r.Put(ctx, key, make([]byte, 16)); err != nil {
				t.Errorf("Put at the limits (key of %d bytes): %v", len(key), err)
			}
			if v, err := r.Get(key); err != nil || len(v) != 16 {
				t.Errorf("Get: %d bytes, %v", len(v), err)
			}
		}
		if r.Len() != before.len+int64(len(okKeys)) {
			t.Errorf("Len %d", r.Len())
		}
	})
	if err := engine.ValidateKey(long[:engine.MaxKeyLen]); err != nil {
		t.Error(err)
	}
	checkCounts(t, r)
}

func TestBatch(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, nil)
	if err := r.Put(ctx, "keep", []byte("1")); err != nil {
		t.Fatal(err)
	}
	t.Run("callback error writes nothing", func(t *testing.T) {
		before := takeSnapshot(t, r, "keep", "b1")
		boom := errors.New("boom")
		err := r.Batch(ctx, func(b *engine.Batch) error {
			b.Put("b1", []byte("x"))
			b.Delete("keep")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Batch: %v", err)
		}
		if after := takeSnapshot(t, r, "keep", "b1"); !after.equal(before) {
			t.Errorf("failed batch changed state:\n%+v\n%+v", before, after)
		}
	})
	t.Run("valid batch lands fully in one commit", func(t *testing.T) {
		commits := r.Store().Commits()
		err := r.Batch(ctx, func(b *engine.Batch) error {
			for i := range 100 {
				b.Put(fmt.Sprintf("b/%03d", i), []byte(fmt.Sprint(i)))
			}
			b.Delete("keep")
			b.Put("twice", []byte("first"))
			b.Put("twice", []byte("second")) // later operations win
			b.Put("put-then-delete", []byte("x"))
			b.Delete("put-then-delete")
			if b.Len() != 105 {
				return fmt.Errorf("Len %d", b.Len())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := r.Store().Commits() - commits; n != 1 {
			t.Errorf("%d commits for one batch", n)
		}
		for i := range 100 {
			if v, err := r.Get(fmt.Sprintf("b/%03d", i)); err != nil || string(v) != fmt.Sprint(i) {
				t.Fatalf("b/%03d = %q %v", i, v, err)
			}
		}
		if v, err := r.Get("twice"); err != nil || string(v) != "second" {
			t.Errorf("twice = %q %v", v, err)
		}
		for _, k := range []string{"keep", "put-then-delete"} {
			if _, err := r.Get(k); !errors.Is(err, engine.ErrNotFound) {
				t.Errorf("%s: %v", k, err)
			}
		}
		if r.Len() != 101 {
			t.Errorf("Len %d, want 101", r.Len())
		}
		checkCounts(t, r)
	})
	t.Run("delete of a non-live key is a no-op", func(t *testing.T) {
		before := takeSnapshot(t, r, "keep", "never")
		err := r.Batch(ctx, func(b *engine.Batch) error {
			b.Delete("never") // no record
			b.Delete("keep")  // a tombstone
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if after := takeSnapshot(t, r, "keep", "never"); !after.equal(before) {
			t.Errorf("no-op deletes changed state:\n%+v\n%+v", before, after)
		}
		// Mixed with a real write, only the real write lands.
		err = r.Batch(ctx, func(b *engine.Batch) error {
			b.Delete("never")
			b.Put("real", []byte("r"))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Versions("never"); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("no-op delete created a record: %v", err)
		}
		if st, _ := r.Status(); st.Counter != before.counter+1 {
			t.Errorf("counter %d, want %d", st.Counter, before.counter+1)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		before := takeSnapshot(t, r)
		if err := r.Batch(ctx, func(*engine.Batch) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if after := takeSnapshot(t, r); !after.equal(before) {
			t.Errorf("empty batch changed state")
		}
	})
	checkCounts(t, r)
}

func TestScan(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, nil)
	keys := []string{"user/bob", "user/alice", "user/carol", "users", "user", "admin/root", "zeta", "user/dave"}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for _, k := range keys {
		if err := r.Put(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete(ctx, "user/carol"); err != nil {
		t.Fatal(err)
	}
	scan := func(seq func(func(engine.Item, error) bool)) string {
		var out []string
		for it, err := range seq {
			if err != nil {
				t.Fatal(err)
			}
			if string(it.Value) != "v:"+it.Key || it.NumVersions != 1 || it.Conflict {
				t.Errorf("item %+v", it)
			}
			out = append(out, it.Key)
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct{ prefix, start, want string }{
		{"", "", "admin/root user user/alice user/bob user/dave users zeta"},
		{"user/", "", "user/alice user/bob user/dave"},
		{"user", "", "user user/alice user/bob user/dave users"},
		{"user/", "user/b", "user/bob user/dave"},
		{"user/", "user/bob", "user/bob user/dave"},
		{"user/", "user/c", "user/dave"},
		{"user/", "a", "user/alice user/bob user/dave"}, // start before the prefix
		{"user/", "v", ""},
		{"nothing", "", ""},
	} {
		if got := scan(r.ScanFrom(c.prefix, c.start)); got != c.want {
			t.Errorf("ScanFrom(%q, %q) = %q, want %q", c.prefix, c.start, got, c.want)
		}
	}
	// Early break: the iterator stops cleanly (a yield after break would panic).
	var got []string
	for it, err := range r.Scan("") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, it.Key)
		if len(got) == 3 {
			break
		}
	}
	if strings.Join(got, " ") != "admin/root user user/alice" {
		t.Errorf("early break: %v", got)
	}
	// Writing while iterating is allowed; the scan reads one snapshot.
	n := 0
	for it, err := range r.Scan("user/") {
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Put(ctx, it.Key+"/child", []byte("v:"+it.Key+"/child")); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("scan while writing yielded %d keys", n)
	}
	checkCounts(t, r)
}

func TestPendingAndStatus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := engine.Init(dir, "s3://bucket/prefix", &engine.Options{Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Keys != 0 || st.Pending != 0 || st.Counter != 0 {
		t.Errorf("fresh status %+v", st)
	}
	for _, k := range []string{"c", "a", "b"} {
		if err := r.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Put(ctx, "a", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	var pend []string
	for p, err := range r.Pending() {
		if err != nil {
			t.Fatal(err)
		}
		pend = append(pend, fmt.Sprintf("%s:%v", p.Key, p.Deleted))
	}
	if strings.Join(pend, " ") != "a:false b:true c:false" {
		t.Errorf("Pending = %v", pend)
	}
	for p, err := range r.Pending() {
		if err != nil || p.Key != "a" {
			t.Errorf("first pending %v %v", p, err)
		}
		break
	}
	st, err = r.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ReplicaID != r.ID().String() || st.RemoteURL != "s3://bucket/prefix" || r.RemoteURL() != st.RemoteURL ||
		st.Dir != dir || r.Dir() != dir || st.Keys != 2 || st.Pending != 3 || st.Counter != 5 ||
		st.Durability != "relaxed" || st.Commits < 5 || st.HLC == "" || st.LastPush != nil ||
		st.LastPull != nil || st.Cursor != 0 || st.SkewCapped != 0 {
		t.Errorf("status %+v", st)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Error(err)
	}
	checkCounts(t, r)
}

func TestOpenWithoutReplica(t *testing.T) {
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	if _, err := engine.Open(missing, nil); !errors.Is(err, engine.ErrNotInitialized) {
		t.Fatalf("Open of a missing dir: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created the directory: %v", err)
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, other} {
		before := listTree(t, dir)
		if _, err := engine.Open(dir, nil); !errors.Is(err, engine.ErrNotInitialized) {
			t.Errorf("Open(%s): %v", dir, err)
		}
		if after := listTree(t, dir); after != before {
			t.Errorf("Open changed %s: %q -> %q", dir, before, after)
		}
	}
	// Opening an initialised replica works and finds its data.
	dir := filepath.Join(base, "ok")
	r, err := engine.Init(dir, "mem://x", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	if err := r.Put(context.Background(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	r.Close()
	r, err = engine.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := r.Get("k"); err != nil || string(v) != "v" || r.ID() != id || r.RemoteURL() != "mem://x" || r.Len() != 1 {
		t.Errorf("reopened: %q %v id %v remote %q len %d", v, err, r.ID(), r.RemoteURL(), r.Len())
	}
}

func listTree(t *testing.T, dir string) string {
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s:%d:%v", p, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

func TestInitExisting(t *testing.T) {
	dir := t.TempDir()
	r, err := engine.Init(dir, "mem://x", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	// While open, and after Close, and with another remote: refused.
	if _, err := engine.Init(dir, "mem://x", nil); !errors.Is(err, engine.ErrAlreadyInitialized) {
		t.Errorf("Init while open: %v", err)
	}
	r.Close()
	for _, remote := range []string{"mem://x", "mem://y"} {
		if _, err := engine.Init(dir, remote, nil); !errors.Is(err, engine.ErrAlreadyInitialized) {
			t.Errorf("Init(%s) of an existing replica: %v", remote, err)
		}
	}
	r, err = engine.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.ID() != id || r.RemoteURL() != "mem://x" {
		t.Errorf("the refused Init changed the replica: %v %q", r.ID(), r.RemoteURL())
	}
	// A second open in the same or another process: ErrLocked.
	if _, err := engine.Open(dir, nil); !errors.Is(err, engine.ErrLocked) {
		t.Errorf("second Open: %v", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, nil)
	if err := r.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, engine.ErrClosed) {
			t.Errorf("%s after Close: %v", op, err)
		}
	}
	check("Close", r.Close())
	check("Put", r.Put(ctx, "k", []byte("v")))
	check("Delete", r.Delete(ctx, "k"))
	check("Batch", r.Batch(ctx, func(b *engine.Batch) error { b.Put("k", nil); return nil }))
	_, err := r.Get("k")
	check("Get", err)
	_, err = r.Versions("k")
	check("Versions", err)
	_, err = r.Status()
	check("Status", err)
	n := 0
	for _, err := range r.Scan("") {
		check("Scan", err)
		n++
	}
	for _, err := range r.Pending() {
		check("Pending", err)
		n++
	}
	if n != 2 {
		t.Errorf("closed Scan and Pending yielded %d pairs, want one error each", n)
	}
}

// TestConcurrentAPI hammers one replica from many goroutines (run it with
// -race); the counters must equal full recounts at the end, and each
// goroutine's own keys must read back as it last wrote them.
func TestConcurrentAPI(t *testing.T) {
	for _, dur := range []store.Durability{store.Sync, store.Relaxed} {
		t.Run(dur.String(), func(t *testing.T) {
			ctx := context.Background()
			r := openTemp(t, &engine.Options{Durability: dur})
			const goroutines, ops = 8, 150
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 99))
					own := map[string]string{} // this goroutine's keys: the model
					for i := range ops {
						key := fmt.Sprintf("g%d/%02d", g, rng.IntN(20))
						shared := fmt.Sprintf("shared/%02d", rng.IntN(10))
						var err error
						switch rng.IntN(8) {
						case 0, 1:
							val := fmt.Sprint(i)
							if err = r.Put(ctx, key, []byte(val)); err == nil {
								own[key] = val
							}
						case 2:
							err = r.Delete(ctx, key)
							_, had := own[key]
							if errors.Is(err, engine.ErrNotFound) && !had {
								err = nil
							}
							delete(own, key)
						case 3:
							v, gerr := r.Get(key)
							want, had := own[key]
							if had && (gerr != nil || string(v) != want) || !had && !errors.Is(gerr, engine.ErrNotFound) {
								err = fmt.Errorf("get %s = %q %v, want %q %v", key, v, gerr, want, had)
							}
						case 4:
							err = r.Put(ctx, shared, []byte(key))
						case 5:
							err = r.Delete(ctx, shared)
							if errors.Is(err, engine.ErrNotFound) {
								err = nil
							}
						case 6:
							n := 0
							for it, serr := range r.Scan(fmt.Sprintf("g%d/", g)) {
								if serr != nil {
									err = serr
									break
								}
								if own[it.Key] != string(it.Value) {
									err = fmt.Errorf("scan %s = %q, want %q", it.Key, it.Value, own[it.Key])
								}
								n++
							}
							if err == nil && n != len(own) {
								err = fmt.Errorf("scan of own keys: %d, want %d", n, len(own))
							}
							_ = r.Len()
							if _, serr := r.Status(); serr != nil {
								err = serr
							}
						case 7:
							k2 := fmt.Sprintf("g%d/%02d", g, rng.IntN(20))
							val := fmt.Sprint(i)
							err = r.Batch(ctx, func(b *engine.Batch) error {
								b.Put(key, []byte(val))
								b.Delete(k2)
								b.Put(shared, []byte(key))
								return nil
							})
							if err == nil {
								own[key] = val
								delete(own, k2)
							}
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
					for k, want := range own {
						if v, err := r.Get(k); err != nil || string(v) != want {
							t.Errorf("final %s = %q %v, want %q", k, v, err, want)
						}
					}
				}()
			}
			wg.Wait()
			checkCounts(t, r)
			t.Logf("len %d pending %d commits %d", r.Len(), r.Store().OutboxLen(), r.Store().Commits())
		})
	}
}

// TestWallClockBackwards: a wall clock that jumps back (and forth) still
// gives strictly increasing HLCs to successive writes of a key, across a
// reopen too.
func TestWallClockBackwards(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	steps := []time.Duration{-time.Hour, time.Millisecond, -24 * time.Hour, 0, 0, 2 * time.Hour, -time.Second}
	i := 0
	wall := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(steps[i%len(steps)])
		i++
		return now
	}
	dir := t.TempDir()
	r, err := engine.Init(dir, "mem://x", &engine.Options{Wall: wall})
	if err != nil {
		t.Fatal(err)
	}
	var last clock.HLC
	write := func(r *engine.Engine, n int) {
		for j := range n {
			if err := r.Put(ctx, "k", []byte(fmt.Sprint(j))); err != nil {
				t.Fatal(err)
			}
			vs, err := r.Versions("k")
			if err != nil || len(vs) != 1 {
				t.Fatalf("versions %v %v", vs, err)
			}
			if vs[0].Time <= last {
				t.Fatalf("write %d at %v, not after %v", j, vs[0].Time, last)
			}
			if !vs[0].Winner || vs[0].Replica != r.ID() {
				t.Fatalf("version %+v", vs[0])
			}
			last = vs[0].Time
		}
	}
	write(r, 30)
	r.Close()
	mu.Lock()
	now = now.Add(-48 * time.Hour)
	mu.Unlock()
	r, err = engine.Open(dir, &engine.Options{Wall: wall})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write(r, 30)
}

func TestLowMemoryProfile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := engine.Init(dir, "mem://x", &engine.Options{LowMemory: true, Durability: store.Relaxed})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		err := r.Batch(ctx, func(b *engine.Batch) error {
			for j := range 500 {
				b.Put(fmt.Sprintf("k%02d-%04d", i, j), make([]byte, 100))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Put(ctx, "big", make([]byte, 200<<10)); err != nil { // through the value log
		t.Fatal(err)
	}
	r.Close()
	r, err = engine.Open(dir, &engine.Options{LowMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Len() != 10001 {
		t.Errorf("Len %d", r.Len())
	}
	if v, err := r.Get("big"); err != nil || len(v) != 200<<10 {
		t.Errorf("big: %d bytes %v", len(v), err)
	}
	checkCounts(t, r)
}

// TestLowMemoryConcurrentBatches: batches that each fit in one transaction
// must not fail because the writer grouped them together (the group budget
// follows the engine's transaction limits; under LowMemory Badger's is about
// 600 KiB).
func TestLowMemoryConcurrentBatches(t *testing.T) {
	ctx := context.Background()
	r := openTemp(t, &engine.Options{LowMemory: true, Durability: store.Relaxed})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Batch(ctx, func(b *engine.Batch) error {
				for i := range 2000 {
					b.Put(fmt.Sprintf("g%d-%05d", g, i), make([]byte, 100))
				}
				return nil
			})
			if err != nil {
				t.Errorf("batch %d: %v", g, err)
			}
		}()
	}
	wg.Wait()
	if r.Len() != 16000 {
		t.Errorf("Len %d, want 16000", r.Len())
	}
}

func TestInMemoryAndEngineOptions(t *testing.T) {
	ctx := context.Background()
	for name, o := range map[string]*engine.Options{
		"InMemory": {InMemory: true},
		"Engine":   {Engine: store.NewMem()},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := engine.Init("", "mem://x", o)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Put(ctx, "k", []byte("v")); err != nil {
				t.Fatal(err)
			}
			if v, err := r.Get("k"); err != nil || string(v) != "v" {
				t.Errorf("Get %q %v", v, err)
			}
		})
	}
	if _, err := engine.Open(t.TempDir(), &engine.Options{MaxValueSize: -1}); err == nil {
		t.Error("negative MaxValueSize accepted")
	}
	if _, err := engine.Open(t.TempDir(), &engine.Options{Durability: 7}); err == nil {
		t.Error("unknown durability accepted")
	}
}
