// Package memremote is an in-memory [remote.Backend] for the simulator and
// fast tests.
//
// It is fully deterministic: ETags are derived from the content and a
// per-key write counter, and LastModified comes from an injectable clock
// whose default is a logical clock that advances one millisecond per write,
// so nothing reads the wall clock. Besides the Backend methods it offers
// direct access to the stored objects ([Backend.Objects], [Backend.SetObject],
// [Backend.RemoveObject], [Backend.Restore]) for snapshots and damage
// tests; those do not count in Stats.
package memremote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ebreplica/ebreplica/remote"
)

// DefaultPageSize is the number of objects per List page when
// Options.PageSize is zero (the S3 maximum).
const DefaultPageSize = 1000

// Epoch is where the default logical clock starts.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Options configures a Backend. The zero value gives the defaults.
type Options struct {
	// Now returns the time recorded as LastModified of each write. It is
	// called once per successful write, under the backend's lock. Default:
	// a logical clock starting at Epoch that advances 1 ms per write.
	Now func() time.Time
	// PageSize is the number of objects List fetches per page; each page
	// counts one Stats.Lists. Default DefaultPageSize; must not be negative.
	PageSize int
}

// validate fills in defaults and checks the options; the one place that
// does so.
func (o Options) validate() (Options, error) {
	if o.PageSize < 0 {
		return o, fmt.Errorf("memremote: negative PageSize %d", o.PageSize)
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	return o, nil
}

type object struct {
	data    []byte
	etag    string
	modTime time.Time
}

// Backend is an in-memory object store. All methods are safe for
// concurrent use.
type Backend struct {
	name     string
	now      func() time.Time // nil: logical clock
	pageSize int
	stats    remote.Stats

	mu      sync.Mutex
	objects map[string]*object
	keys    []string         // sorted keys of objects
	writes  map[string]int64 // per-key write counter, survives deletes
	tick    int64            // logical clock, in milliseconds after Epoch
}

var _ remote.Backend = (*Backend)(nil)

// New returns an empty Backend with default options; name is used by
// String ("mem://name").
func New(name string) *Backend {
	b, err := NewWithOptions(name, Options{})
	if err != nil {
		panic(err) // unreachable: the zero Options are valid
	}
	return b
}

// NewWithOptions returns an empty Backend configured by opts.
func NewWithOptions(name string, opts Options) (*Backend, error) {
	opts, err := opts.validate()
	if err != nil {
		return nil, err
	}
	return &Backend{
		name:     name,
		now:      opts.Now,
		pageSize: opts.PageSize,
		objects:  make(map[string]*object),
		writes:   make(map[string]int64),
	}, nil
}

// String returns "mem://" followed by the name given to New.
func (b *Backend) String() string { return "mem://" + b.name }

// Stats returns the request counters.
func (b *Backend) Stats() *remote.Stats { return &b.stats }

// SetClock replaces the clock used for LastModified; nil restores the
// logical clock.
func (b *Backend) SetClock(now func() time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = now
}

// begin checks ctx and the key, the preamble of every request.
func begin(ctx context.Context, op, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memremote: %s %q: %w", op, key, err)
	}
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("memremote: %s: %w", op, err)
	}
	return nil
}

// Get returns the object stored under key.
func (b *Backend) Get(ctx context.Context, key string) (remote.Object, error) {
	if err := begin(ctx, "get", key); err != nil {
		return remote.Object{}, err
	}
	b.stats.Gets.Add(1)
	b.mu.Lock()
	o, ok := b.objects[key]
	var obj remote.Object
	if ok {
		obj = remote.Object{Data: slices.Clone(o.data), ETag: o.etag, LastModified: o.modTime}
	}
	b.mu.Unlock()
	if !ok {
		return remote.Object{}, fmt.Errorf("memremote: get %q: %w", key, remote.ErrNotExist)
	}
	if obj.Data == nil {
		obj.Data = []byte{}
	}
	b.stats.BytesIn.Add(int64(len(obj.Data)))
	return obj, nil
}

// Put stores data under key unconditionally.
func (b *Backend) Put(ctx context.Context, key string, data []byte) (string, error) {
	if err := begin(ctx, "put", key); err != nil {
		return "", err
	}
	b.countPut(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.store(key, data), nil
}

// PutIfAbsent stores data under key unless the key exists (ErrExists).
func (b *Backend) PutIfAbsent(ctx context.Context, key string, data []byte) (string, error) {
	if err := begin(ctx, "put-if-absent", key); err != nil {
		return "", err
	}
	b.countPut(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok {
		return "", fmt.Errorf("memremote: put-if-absent %q: %w", key, remote.ErrExists)
	}
	return b.store(key, data), nil
}

// PutIfMatch replaces the object under key if its ETag is etag; otherwise,
// or if the key is missing, it returns ErrPrecondition (for a missing key
// the error also wraps ErrNotExist).
func (b *Backend) PutIfMatch(ctx context.Context, key string, data []byte, etag string) (string, error) {
	if err := begin(ctx, "put-if-match", key); err != nil {
		return "", err
	}
	b.countPut(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	switch {
	case !ok:
		return "", fmt.Errorf("memremote: put-if-match %q: %w: %w", key, remote.ErrPrecondition, remote.ErrNotExist)
	case o.etag != etag:
		return "", fmt.Errorf("memremote: put-if-match %q: etag is %s, not %s: %w", key, o.etag, etag, remote.ErrPrecondition)
	}
	return b.store(key, data), nil
}

// Delete removes key; a missing key is not an error.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := begin(ctx, "delete", key); err != nil {
		return err
	}
	b.stats.Deletes.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.remove(key)
	return nil
}

// List yields the objects under prefix after startAfter in byte order,
// one page of Options.PageSize objects at a time.
func (b *Backend) List(ctx context.Context, prefix, startAfter string) iter.Seq2[remote.Info, error] {
	return func(yield func(remote.Info, error) bool) {
		if err := remote.ValidatePrefix(prefix); err != nil {
			yield(remote.Info{}, fmt.Errorf("memremote: list: %w", err))
			return
		}
		cursor := startAfter
		for {
			if err := ctx.Err(); err != nil {
				yield(remote.Info{}, fmt.Errorf("memremote: list %q: %w", prefix, err))
				return
			}
			page, more := b.page(prefix, cursor)
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if !more {
				return
			}
			cursor = page[len(page)-1].Key
		}
	}
}

// page fetches up to pageSize objects after cursor; more reports whether
// another page may follow.
func (b *Backend) page(prefix, cursor string) (page []remote.Info, more bool) {
	b.stats.Lists.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	// The first candidate is the first key > cursor and >= prefix.
	i, found := slices.BinarySearch(b.keys, cursor)
	if found {
		i++
	}
	if j, _ := slices.BinarySearch(b.keys, prefix); j > i {
		i = j
	}
	for ; i < len(b.keys) && strings.HasPrefix(b.keys[i], prefix); i++ {
		if len(page) == b.pageSize {
			return page, true
		}
		k := b.keys[i]
		o := b.objects[k]
		page = append(page, remote.Info{Key: k, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modTime})
	}
	return page, false
}

func (b *Backend) countPut(data []byte) {
	b.stats.Puts.Add(1)
	b.stats.BytesOut.Add(int64(len(data)))
}

// store writes a copy of data under key; b.mu is held.
func (b *Backend) store(key string, data []byte) string {
	n := b.writes[key] + 1
	b.writes[key] = n
	sum := sha256.Sum256(data)
	etag := fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(sum[:8]), n)
	var mod time.Time
	if b.now != nil {
		mod = b.now()
	} else {
		b.tick++
		mod = Epoch.Add(time.Duration(b.tick) * time.Millisecond)
	}
	if _, ok := b.objects[key]; !ok {
		i, _ := slices.BinarySearch(b.keys, key)
		b.keys = slices.Insert(b.keys, i, key)
	}
	b.objects[key] = &object{data: slices.Clone(data), etag: etag, modTime: mod}
	return etag
}

// remove deletes key if present; b.mu is held.
func (b *Backend) remove(key string) {
	if _, ok := b.objects[key]; !ok {
		return
	}
	delete(b.objects, key)
	i, _ := slices.BinarySearch(b.keys, key)
	b.keys = slices.Delete(b.keys, i, i+1)
}

// Objects returns a copy of every stored object's content by key. It does
// not count in Stats.
func (b *Backend) Objects() map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := make(map[string][]byte, len(b.objects))
	for k, o := range b.objects {
		m[k] = slices.Clone(o.data)
	}
	return m
}

// Keys returns the stored keys in byte order. It does not count in Stats.
func (b *Backend) Keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.keys)
}

// Len returns the number of stored objects.
func (b *Backend) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.objects)
}

// SetObject overwrites (or creates) key with data directly, as if by Put
// (new ETag and LastModified) but without counting in Stats: for
// simulator set-up and damage tests.
func (b *Backend) SetObject(key string, data []byte) error {
	if err := remote.ValidateKey(key); err != nil {
		return fmt.Errorf("memremote: set: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.store(key, data)
	return nil
}

// RemoveObject deletes key directly without counting in Stats; it reports
// whether the key existed.
func (b *Backend) RemoveObject(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.objects[key]
	b.remove(key)
	return ok
}

// Restore replaces the whole content with objs (for example a map from
// Objects), giving every object a new ETag. It does not count in Stats.
func (b *Backend) Restore(objs map[string][]byte) error {
	for k := range objs {
		if err := remote.ValidateKey(k); err != nil {
			return fmt.Errorf("memremote: restore: %w", err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.objects)
	b.keys = b.keys[:0]
	for _, k := range slices.Sorted(maps.Keys(objs)) {
		b.store(k, objs[k])
	}
	return nil
}
