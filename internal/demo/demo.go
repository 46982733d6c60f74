// Package demo is the self-contained demonstration behind `ebreplica demo`:
// three replicas with skewed clocks write offline through a directory
// remote, sync, and end with identical contents; two of them edit
// different fields of one JSON document (the json policy under doc/) and
// both edits survive.
package demo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/replica"
)

type node struct {
	name   string
	offset time.Duration
	r      *replica.Replica
}

// Options adjusts the demonstration.
type Options struct {
	// LowMemory opens the replicas with the small profile (a 32-bit
	// build uses it anyway).
	LowMemory bool
}

// Run runs the demonstration in a fresh temporary directory (removed at the
// end) and reports whether the replicas converged.
func Run(ctx context.Context, w io.Writer) (bool, error) { return RunWith(ctx, w, Options{}) }

// RunWith is Run with options.
func RunWith(ctx context.Context, w io.Writer, o Options) (bool, error) {
	tmp, err := os.MkdirTemp("", "ebreplica-demo-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	remoteDir := filepath.Join(tmp, "bucket")
	if err := os.Mkdir(remoteDir, 0o755); err != nil {
		return false, err
	}
	b, err := fileremote.New(remoteDir, nil)
	if err != nil {
		return false, err
	}
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }

	nodes := []*node{{name: "laptop", offset: 2 * time.Hour}, {name: "phone", offset: -30 * time.Minute}, {name: "tablet"}}
	p("ebreplica demo: three replicas share a directory remote at %s", remoteDir)
	p("  (keys under doc/ are JSON documents that merge field by field: the json policy)")
	for _, n := range nodes {
		off := n.offset
		pol, err := merge.ParsePolicies([]string{"doc/=" + merge.NameJSON}, nil)
		if err != nil {
			return false, err
		}
		n.r, err = replica.Init(filepath.Join(tmp, n.name), "file://"+remoteDir, &replica.Options{
			Backend: b, Wall: func() time.Time { return time.Now().Add(off) }, LowMemory: o.LowMemory, Policies: pol,
		})
		if err != nil {
			return false, err
		}
		defer n.r.Close()
		if _, err := n.r.Connect(ctx); err != nil {
			return false, err
		}
		p("  %-7s replica %s  wall clock %+v", n.name, n.r.ID().Short(), off)
	}
	if st, err := nodes[0].r.Status(); err == nil && st.Profile != "default" {
		p("  (local stores: the %s profile)", st.Profile)
	}
	laptop, phone, tablet := nodes[0].r, nodes[1].r, nodes[2].r
	name := map[string]string{}
	for _, n := range nodes {
		name[n.r.ID().String()] = n.name
	}
	syncAll := func() error {
		for range 2 {
			for _, n := range nodes {
				if _, err := n.r.Sync(ctx); err != nil {
					return fmt.Errorf("%s: sync: %w", n.name, err)
				}
			}
		}
		return nil
	}
	put := func(r *replica.Replica, k, v string) error { return r.Put(ctx, k, []byte(v)) }

	p("\n1. A shared starting point: the tablet writes a to-do item and a profile document,")
	p(`   doc/carol = {"name":"Carol","email":"carol@old"}, and everyone syncs.`)
	if err := put(tablet, "todo/1", "buy milk"); err != nil {
		return false, err
	}
	if err := put(tablet, "doc/carol", `{"name":"Carol","email":"carol@old"}`); err != nil {
		return false, err
	}
	if err := syncAll(); err != nil {
		return false, err
	}

	p("\n2. Offline, each replica writes:")
	steps := []struct {
		r    *replica.Replica
		who  string
		what string
		do   func() error
	}{
		{laptop, "laptop", `put profile/alice = "Alice"           (disjoint keys)`, func() error { return put(laptop, "profile/alice", "Alice") }},
		{phone, "phone", `put profile/bob   = "Bob"`, func() error { return put(phone, "profile/bob", "Bob") }},
		{laptop, "laptop", `put settings/theme = "dark"          (the same key, concurrently)`, func() error { return put(laptop, "settings/theme", "dark") }},
		{phone, "phone", `put settings/theme = "light"`, func() error { return put(phone, "settings/theme", "light") }},
		{tablet, "tablet", `put settings/theme = "blue"`, func() error { return put(tablet, "settings/theme", "blue") }},
		{phone, "phone", `del todo/1                            (a delete racing an update)`, func() error { return phone.Delete(ctx, "todo/1") }},
		{tablet, "tablet", `put todo/1 = "buy oat milk"`, func() error { return put(tablet, "todo/1", "buy oat milk") }},
		{laptop, "laptop", `patch doc/carol {"email":"carol@new"}  (two devices edit different fields)`, func() error {
			return laptop.Patch(ctx, "doc/carol", []byte(`{"email":"carol@new"}`))
		}},
		{phone, "phone", `patch doc/carol {"name":"Carol Ann"}`, func() error {
			return phone.Patch(ctx, "doc/carol", []byte(`{"name":"Carol Ann"}`))
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return false, err
		}
		p("  %-7s %s", s.who, s.what)
	}

	p("\n3. The laptop (2 h fast) syncs; then the phone (30 min slow) pulls, sees the laptop's")
	p("   theme, and writes after seeing it. Its wall clock is 2.5 h behind the laptop's,")
	p("   yet its write must win: it causally follows (version vectors, not clocks, decide).")
	if _, err := laptop.Sync(ctx); err != nil {
		return false, err
	}
	if _, err := phone.Pull(ctx); err != nil {
		return false, err
	}
	if err := put(phone, "settings/theme", "solarized"); err != nil {
		return false, err
	}
	if err := put(phone, "profile/alice", "Alice Liddell"); err != nil {
		return false, err
	}
	p(`  phone   put settings/theme = "solarized"     (after seeing the laptop's "dark")`)
	p(`  phone   put profile/alice = "Alice Liddell"  (after seeing the laptop's "Alice")`)
	p(`  (the tablet's "blue" is still unseen by anyone: it stays concurrent)`)

	p("\n4. Everyone syncs (pull, then push; twice around).")
	if err := syncAll(); err != nil {
		return false, err
	}

	p("\n5. What each replica holds, and why:")
	digests := map[string]string{}
	for _, n := range nodes {
		p("  %s (%d keys):", n.name, n.r.Len())
		var sb strings.Builder
		keys, err := allKeys(n.r)
		if err != nil {
			return false, err
		}
		for _, k := range keys {
			line, err := explain(n.r, k, name)
			if err != nil {
				return false, err
			}
			p("    %s", line)
			sb.WriteString(line + "\n")
		}
		digests[n.name] = fmt.Sprintf("%x", sha256.Sum256([]byte(sb.String())))[:16]
	}
	converged := digests["laptop"] == digests["phone"] && digests["phone"] == digests["tablet"]
	// Both field edits survive: that is the json policy's promise.
	for _, n := range nodes {
		doc, err := n.r.Get("doc/carol")
		if err != nil {
			return false, err
		}
		if string(doc) != `{"email":"carol@new","name":"Carol Ann"}` {
			p("\n  %s lost a field edit of doc/carol: %s", n.name, doc)
			converged = false
		}
	}
	p("\n6. Clock skew seen: remote timestamps more than 1 h (MaxDrift) ahead of a replica's")
	p("   wall clock are merged but cap its clock at wall + 1 h, and are counted:")
	for _, n := range nodes {
		st, err := n.r.Status()
		if err != nil {
			return false, err
		}
		p("  %-7s %d capped, furthest ahead %s", n.name, st.SkewCapped, st.MaxSkew.Round(time.Minute))
	}
	p("")
	for _, n := range nodes {
		p("  digest %-7s %s", n.name, digests[n.name])
	}
	if !converged {
		p("\nDIVERGED")
		return false, nil
	}
	p("\nconverged")
	return true, nil
}

func allKeys(r *replica.Replica) ([]string, error) {
	var keys []string
	// Every key with a record, live or deleted: Versions tells which.
	for k, err := range r.Keys("") {
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func explain(r *replica.Replica, key string, name map[string]string) (string, error) {
	vs, err := r.Versions(key)
	if err != nil {
		return "", err
	}
	val, gerr := r.Get(key)
	shown := fmt.Sprintf("%q", val)
	if errors.Is(gerr, replica.ErrNotFound) {
		shown = "(deleted)"
	} else if gerr != nil {
		return "", gerr
	}
	var win replica.Version
	for _, v := range vs {
		if v.Winner {
			win = v
		}
	}
	who := name[win.Replica.String()]
	var why string
	if strings.HasPrefix(key, "doc/") && len(vs) > 1 {
		var by []string
		for _, v := range vs {
			by = append(by, name[v.Replica.String()])
		}
		why = fmt.Sprintf("a json document: %d concurrent versions (by %s) merged field by field, both edits kept",
			len(vs), strings.Join(by, ", "))
		return fmt.Sprintf("%-15s = %s  %s", key, val, why), nil
	}
	if len(vs) == 1 {
		why = fmt.Sprintf("one version, by %s: no concurrent write (earlier ones it saw were superseded)", who)
	} else {
		var others []string
		for _, v := range vs {
			if !v.Winner {
				o := fmt.Sprintf("%q by %s", v.Value, name[v.Replica.String()])
				if v.Deleted {
					o = "a delete by " + name[v.Replica.String()]
				}
				others = append(others, o)
			}
		}
		why = fmt.Sprintf("%d concurrent versions; lww picks %s's (largest HLC %s); kept as siblings: %s",
			len(vs), who, win.Time, strings.Join(others, ", "))
	}
	return fmt.Sprintf("%-15s = %-16s %s", key, shown, why), nil
}
