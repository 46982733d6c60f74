package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ebreplica/ebreplica/internal/protocol"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/replica"
)

// dryRunRetained is what compact --prune --dry-run keeps by the store's
// retention: the snapshots listed in snaps plus the one a compaction
// writes at pos now, newest first (never empty).
func dryRunRetained(ctx context.Context, b remote.Backend, snaps []remote.Info, pos uint64, now time.Time) ([]uint64, error) {
	m, _, err := format.ReadManifest(ctx, b)
	if err != nil {
		return nil, err
	}
	ret := m.RetentionOf()
	ages := []protocol.SnapshotAge{{Position: pos, Created: now}}
	for _, info := range snaps {
		if p, rest, ok := remote.ParseSnapKey(info.Key); ok && rest == "index" && p != pos {
			ages = append(ages, protocol.SnapshotAge{Position: p, Created: info.LastModified})
		}
	}
	return protocol.Retained(protocol.Retention{KeepSnapshots: ret.KeepSnapshots, KeepAge: ret.KeepAge()}, ages, now), nil
}

var retentionCmd = &command{
	name:    "retention",
	args:    "[set --keep-snapshots N --keep-age D]",
	summary: "show or set how much history compact --prune keeps",
	help: `Without arguments, prints the retention stored in the store manifest. With
"set", changes it for every replica's later compactions (flags not given keep
their value): --keep-snapshots N keeps the newest N snapshots (0 or 1: only
the newest, the default), --keep-age D keeps every snapshot younger than D (a
Go duration, or days as 30d) and the newest older one, so any time in the last
D can be restored. The log above the oldest kept snapshot is kept too; pruning
never goes below the floor the sync protocol needs either.
--json: {"keep_snapshots","keep_age","keep_age_seconds"}.`,
	flags: []flagDef{
		{name: "keep-snapshots", value: true, arg: "N", usage: "keep the newest N snapshots"},
		{name: "keep-age", value: true, arg: "D", usage: "keep what restores any time in the last D (e.g. 168h, 30d)"},
	},
	maxArgs: 1,
	run:     runRetention,
}

type retentionOutput struct {
	KeepSnapshots  int    `json:"keep_snapshots"`
	KeepAge        string `json:"keep_age"`
	KeepAgeSeconds int64  `json:"keep_age_seconds"`
}

func retentionOut(ret format.Retention) retentionOutput {
	return retentionOutput{KeepSnapshots: max(ret.KeepSnapshots, 1), KeepAge: ret.KeepAge().String(), KeepAgeSeconds: ret.KeepAgeSeconds}
}

// describeRetention is a retention in words.
func describeRetention(ret format.Retention) string {
	s := fmt.Sprintf("keep the newest %d snapshot(s)", max(ret.KeepSnapshots, 1))
	if ret.KeepAgeSeconds > 0 {
		s += fmt.Sprintf(" and what restores the last %s", ret.KeepAge())
	}
	return s
}

// parseAge parses a Go duration or a whole number of days ("30d").
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("not a number of days")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative")
	}
	return d, err
}

func runRetention(ctx context.Context, e *env) error {
	set := len(e.args) == 1
	if set && e.args[0] != "set" {
		return usageErrorf("unknown argument %q: `retention` shows, `retention set --keep-snapshots N --keep-age D` changes", e.args[0])
	}
	ns, hasN := e.flags.value("keep-snapshots")
	as, hasA := e.flags.value("keep-age")
	if !set && (hasN || hasA) {
		return usageErrorf("--keep-snapshots and --keep-age go with `retention set`")
	}
	if set && !hasN && !hasA {
		return usageErrorf("retention set: give --keep-snapshots N and/or --keep-age D")
	}
	var n int
	var age time.Duration
	if hasN {
		v, err := strconv.Atoi(ns)
		if err != nil || v < 0 {
			return usageErrorf("--keep-snapshots %q: not a count", ns)
		}
		n = v
	}
	if hasA {
		d, err := parseAge(as)
		if err != nil {
			return usageErrorf("--keep-age %q: %v", as, err)
		}
		age = d
	}
	r, err := e.openSynced(ctx)
	if err != nil {
		return err
	}
	ret, err := r.Retention(ctx)
	if err != nil {
		return syncError("retention", err)
	}
	if set {
		if hasN {
			ret.KeepSnapshots = n
		}
		if hasA {
			ret.KeepAgeSeconds = int64(age / time.Second)
		}
		if err := r.SetRetention(ctx, ret); err != nil {
			return syncError("retention set", err)
		}
	}
	if e.json {
		return writeJSON(e.stdout, retentionOut(ret))
	}
	o := newOutput(e.stdout)
	o.printf("retention: %s\n", describeRetention(ret))
	return o.flush()
}

// historyStatusJSON is what status adds: the retention this replica last
// read from the store manifest (no request), and for a restored copy
// where it came from.
type historyStatusJSON struct {
	// Retention: set only when the store sets one (absent: the newest
	// snapshot only, as in stores made before retention existed).
	Retention *retentionOutput      `json:"retention,omitempty"`
	Restored  *replica.RestoredInfo `json:"restored,omitempty"`
	// known: the replica has read the store's manifest.
	known bool
}

func historyStatus(r *replica.Replica) (historyStatusJSON, error) {
	var h historyStatusJSON
	ret, ok, err := r.KnownRetention()
	if err != nil {
		return h, err
	}
	h.known = ok
	if ok && ret != (format.Retention{}) {
		out := retentionOut(ret)
		h.Retention = &out
	}
	info, ok, err := r.Restored()
	if err != nil {
		return h, err
	}
	if ok {
		h.Restored = &info
	}
	return h, nil
}

// describe is the status row: the retention, or the restored copy's
// origin ("" when neither is known).
func (h historyStatusJSON) describe() string {
	switch {
	case h.Restored != nil:
		return fmt.Sprintf("read-only copy of %s at position %d", h.Restored.Remote, h.Restored.Position)
	case h.Retention != nil:
		return describeRetention(format.Retention{KeepSnapshots: h.Retention.KeepSnapshots, KeepAgeSeconds: h.Retention.KeepAgeSeconds})
	case h.known:
		return describeRetention(format.Retention{})
	}
	return ""
}

// retainedSnapshots is which complete snapshots on b the store's retention
// (in m) keeps at the next compact --prune, with this machine's clock
// standing for the server's.
func retainedSnapshots(ctx context.Context, e *env, b remote.Backend, m format.Manifest) (map[uint64]bool, error) {
	now := time.Now()
	if e.wall != nil {
		now = e.wall()
	}
	var ages []protocol.SnapshotAge
	for info, err := range b.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			return nil, errorf(err, "listing %s on %s: %s", remote.SnapPrefix, b, remoteProblem("", err))
		}
		if p, rest, ok := remote.ParseSnapKey(info.Key); ok && rest == "index" {
			ages = append(ages, protocol.SnapshotAge{Position: p, Created: info.LastModified})
		}
	}
	ret := m.RetentionOf()
	kept := map[uint64]bool{}
	for _, p := range protocol.Retained(protocol.Retention{KeepSnapshots: ret.KeepSnapshots, KeepAge: ret.KeepAge()}, ages, now) {
		kept[p] = true
	}
	return kept, nil
}
