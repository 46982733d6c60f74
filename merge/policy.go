package merge

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Result is what a read of a key returns under a policy.
type Result struct {
	// Value is the bytes a read returns (nil with Deleted).
	Value []byte
	// Deleted: the key reads as not found.
	Deleted bool
	// Conflict: the policy surfaces the siblings to the application instead
	// of choosing (mv with more than one version).
	Conflict bool
	// Winner is the index of the version chosen, or -1 when the value was
	// computed from several versions (CRDTs, callbacks) or there is a conflict.
	Winner int
}

// Policy projects a key's concurrent versions to what a read returns.
//
// Contract: Resolve must be deterministic (same key and versions, same
// result), safe for concurrent use, and must not block or do I/O. Siblings
// are always handed over in canonical dot order, so determinism alone makes
// every replica read the same value from the same state. Policies that are
// also commutative, associative and idempotent give a result that does not
// depend on the dot order (proptest.CheckPolicy checks these laws).
//
// Resolve is never called with an empty slice. The versions slice and the
// values in it must not be modified. An error makes the read fail with an
// error naming the key and the policy; stored state is never touched.
//
// Name is persisted in the store manifest and checked when a replica opens
// the store: every replica must read the same state the same way.
type Policy interface {
	Name() string
	Resolve(key string, versions []Version) (Result, error)
}

// LWW is the default policy: the version with the largest HLC wins, then the
// largest replica id, then the largest counter; a winning tombstone reads as
// not found. Losing siblings stay stored (and visible to Versions) until the
// next local write of the key.
type LWW struct{}

// Name returns "lww".
func (LWW) Name() string { return "lww" }

// Resolve picks the winner.
func (LWW) Resolve(_ string, vs []Version) (Result, error) {
	w := LWWWinner(vs)
	return Result{Value: vs[w].Value, Deleted: vs[w].Deleted, Winner: w}, nil
}

// LWWWinner returns the index of the lww winner among vs (len(vs) > 0).
func LWWWinner(vs []Version) int {
	best := 0
	for i := 1; i < len(vs); i++ {
		if lwwLess(vs[best], vs[i]) {
			best = i
		}
	}
	return best
}

func lwwLess(a, b Version) bool {
	if a.Time != b.Time {
		return a.Time < b.Time
	}
	return a.Dot.Compare(b.Dot) < 0
}

// Read resolves a record under p. A record without versions reads as
// deleted. Errors are wrapped with the key and policy name.
func Read(p Policy, key string, r Record) (Result, error) {
	if len(r.Versions) == 0 {
		return Result{Deleted: true, Winner: -1}, nil
	}
	res, err := p.Resolve(key, r.Versions)
	if err != nil {
		return Result{}, &PolicyError{Key: key, Policy: p.Name(), Err: err}
	}
	return res, nil
}

// Live reports whether a key counts as live (for Len): its read is not
// deleted. A policy error counts as live when any version is not a
// tombstone, so the count stays defined whatever a callback does.
func Live(p Policy, key string, r Record) bool {
	if len(r.Versions) == 0 {
		return false
	}
	res, err := p.Resolve(key, r.Versions)
	if err != nil {
		return !r.Deleted()
	}
	return !res.Deleted
}

// PolicyError is a read that failed inside a policy.
type PolicyError struct {
	Key, Policy string
	Err         error
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("merge: policy %q failed on key %q: %v", e.Policy, e.Key, e.Err)
}

func (e *PolicyError) Unwrap() error { return e.Err }

// ErrUnknownPolicy: a policy name that no registry entry provides.
var ErrUnknownPolicy = errors.New("merge: unknown policy")

// UnknownPolicyError names a recorded policy that neither the built-ins nor
// the given user policies provide, and the prefix it serves. It matches
// ErrUnknownPolicy with errors.Is.
type UnknownPolicyError struct {
	Name, Prefix string
}

func (e *UnknownPolicyError) Error() string {
	return fmt.Sprintf("%v: this replica uses policy %q for prefix %q: register it in Options.Funcs", ErrUnknownPolicy, e.Name, e.Prefix)
}

// Is makes errors.Is(err, ErrUnknownPolicy) true.
func (e *UnknownPolicyError) Is(target error) bool { return target == ErrUnknownPolicy }

// Registry maps key prefixes to policies; the longest matching prefix wins,
// and the empty prefix is the default (lww unless set). Safe for concurrent
// use once built; Set may be called concurrently with For.
type Registry struct {
	mu       sync.RWMutex
	prefixes []string // sorted by length, longest first
	byPrefix map[string]Policy
}

// NewRegistry returns a registry whose default is LWW.
func NewRegistry() *Registry {
	r := &Registry{byPrefix: map[string]Policy{}}
	r.Set("", LWW{})
	return r
}

// Set binds a prefix ("" = default) to a policy.
func (r *Registry) Set(prefix string, p Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byPrefix[prefix]; !ok {
		r.prefixes = append(r.prefixes, prefix)
		sort.SliceStable(r.prefixes, func(i, j int) bool {
			if len(r.prefixes[i]) != len(r.prefixes[j]) {
				return len(r.prefixes[i]) > len(r.prefixes[j])
			}
			return r.prefixes[i] < r.prefixes[j]
		})
	}
	r.byPrefix[prefix] = p
}

// For returns the policy governing key.
func (r *Registry) For(key string) Policy {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, p := range r.prefixes {
		if strings.HasPrefix(key, p) {
			return r.byPrefix[p]
		}
	}
	return LWW{}
}

// Names returns prefix -> policy name, for the store manifest.
func (r *Registry) Names() map[string]string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]string, len(r.byPrefix))
	for p, pol := range r.byPrefix {
		out[p] = pol.Name()
	}
	return out
}

// Prefixes returns the bound prefixes, sorted.
func (r *Registry) Prefixes() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := slices.Clone(r.prefixes)
	slices.Sort(out)
	return out
}
