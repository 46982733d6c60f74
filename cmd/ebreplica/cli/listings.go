package cli

import (
	"context"
	"strconv"
	"time"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/segment"
)

// What is in the store: replicas, snapshots and log read the remote's
// objects (names from remote/layout.go, bodies through remote/format and
// remote/segment) and change nothing.

var replicasCmd = &command{
	name:    "replicas",
	summary: "list the replicas registered in the store: id, last seen, ack, retired",
	help: `One line per registry object on the remote: the replica id, when it last
wrote its registry (its own wall clock), its ack (the log position it has
applied), "retired" when compaction retired it, and "(this replica)".
--json: {"replica_id","last_seen","ack","retired","seq","skew_capped","this"}
per line.`,
	maxArgs: 0,
	run:     runReplicas,
}

var snapshotsCmd = &command{
	name:    "snapshots",
	summary: "list the snapshots on the remote: position, records, parts, time",
	help: `One line per complete snapshot (its index written), oldest first.
--json: {"position","records","parts","bytes","origin","created"} per line.`,
	maxArgs: 0,
	run:     runSnapshots,
}

var logCmd = &command{
	name:    "log",
	summary: "list the log segments on the remote: position, origin, records, bytes",
	help: `One line per log segment, in position order, from --from (default the
first) and at most --limit (0: no limit). Each segment is read to show its
origin and record count. --json: {"position","origin","records","bytes",
"modified"} per line.`,
	flags: []flagDef{
		{name: "from", value: true, arg: "N", usage: "start at log position N"},
		{name: "limit", value: true, arg: "N", usage: "at most N segments (0: no limit)"},
	},
	maxArgs: 0,
	run:     runLog,
}

// remoteBackend opens the replica and its remote.
func (e *env) remoteBackend(ctx context.Context) (remote.Backend, string, error) {
	r, err := e.openSynced(ctx)
	if err != nil {
		return nil, "", err
	}
	b, err := r.Backend(ctx)
	if err != nil {
		return nil, "", errorf(err, "remote %s: %s", r.RemoteURL(), remoteProblem(r.RemoteURL(), err))
	}
	return b, r.ID().String(), nil
}

type replicaLine struct {
	ReplicaID  string    `json:"replica_id"`
	LastSeen   time.Time `json:"last_seen"`
	Ack        uint64    `json:"ack"`
	Retired    bool      `json:"retired"`
	Seq        uint64    `json:"seq"`
	SkewCapped uint64    `json:"skew_capped"`
	This       bool      `json:"this"`
}

func runReplicas(ctx context.Context, e *env) error {
	b, self, err := e.remoteBackend(ctx)
	if err != nil {
		return err
	}
	o := newOutput(e.stdout)
	for info, err := range b.List(ctx, remote.ReplicasPrefix, "") {
		if err != nil {
			return errorf(err, "listing %s on %s: %s", remote.ReplicasPrefix, b, remoteProblem("", err))
		}
		if _, ok := remote.ParseRegistryKey(info.Key); !ok {
			continue
		}
		obj, err := b.Get(ctx, info.Key)
		if err != nil {
			return errorf(err, "reading %s on %s: %s", info.Key, b, remoteProblem("", err))
		}
		body, err := format.DecodeRegistry(obj.Data)
		if err != nil {
			return errorf(err, "%s on %s is not a registry object: %v (run verify)", info.Key, b, err)
		}
		l := replicaLine{ReplicaID: body.ReplicaID, LastSeen: body.Wall.UTC(), Ack: body.Ack, Retired: body.Retired,
			Seq: body.Seq, SkewCapped: body.SkewCapped, This: body.ReplicaID == self}
		if e.json {
			o.json(l)
			continue
		}
		o.printf("%s  last seen %s  ack %d", l.ReplicaID, l.LastSeen.Format(time.RFC3339), l.Ack)
		if l.Retired {
			o.printf("  retired")
		}
		if l.This {
			o.printf("  (this replica)")
		}
		o.printf("\n")
	}
	return o.flush()
}

type snapshotLine struct {
	Position uint64    `json:"position"`
	Records  int64     `json:"records"`
	Parts    int       `json:"parts"`
	Bytes    int64     `json:"bytes"`
	Origin   string    `json:"origin"`
	Created  time.Time `json:"created"`
	// Retained: the store's retention keeps it at the next compact --prune
	// (judged by this machine's clock; see retention.go).
	Retained bool `json:"retained"`
}

func runSnapshots(ctx context.Context, e *env) error {
	b, _, err := e.remoteBackend(ctx)
	if err != nil {
		return err
	}
	m, _, err := format.ReadManifest(ctx, b)
	if err != nil {
		return errorf(err, "reading the manifest on %s: %s", b, remoteProblem("", err))
	}
	kept, err := retainedSnapshots(ctx, e, b, m) // retention.go
	if err != nil {
		return err
	}
	o := newOutput(e.stdout)
	if !e.json && m.Retention != nil { // a store that sets one: say so first
		o.printf("retention: %s\n", describeRetention(m.RetentionOf()))
	}
	for info, err := range b.List(ctx, remote.SnapPrefix, "") {
		if err != nil {
			return errorf(err, "listing %s on %s: %s", remote.SnapPrefix, b, remoteProblem("", err))
		}
		pos, rest, ok := remote.ParseSnapKey(info.Key)
		if !ok || rest != "index" {
			continue
		}
		idx, err := format.ReadIndex(ctx, b, pos, m.RemoteID)
		if err != nil {
			return errorf(err, "%s (run verify)", remoteProblem("", err))
		}
		l := snapshotLine{Position: idx.Position, Records: idx.Records, Parts: len(idx.Parts), Origin: idx.Origin, Created: idx.Created.UTC(),
			Retained: kept[idx.Position]}
		for _, p := range idx.Parts {
			l.Bytes += p.Size
		}
		if e.json {
			o.json(l)
			continue
		}
		o.printf("position %d  %d records  %d parts  %d bytes  by %s  %s%s\n",
			l.Position, l.Records, l.Parts, l.Bytes, shortID(l.Origin), l.Created.Format(time.RFC3339), map[bool]string{true: "  retained"}[l.Retained])
	}
	return o.flush()
}

type logLine struct {
	Position uint64    `json:"position"`
	Origin   string    `json:"origin"`
	Records  int       `json:"records"`
	Bytes    int64     `json:"bytes"`
	Modified time.Time `json:"modified,omitzero"`
}

func runLog(ctx context.Context, e *env) error {
	var from uint64
	limit := 0
	if s, ok := e.flags.value("from"); ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return usageErrorf("--from %q: expected a log position, 0 or more", s)
		}
		from = n
	}
	if s, ok := e.flags.value("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return usageErrorf("--limit %q: expected a number of segments, 0 or more", s)
		}
		limit = n
	}
	b, _, err := e.remoteBackend(ctx)
	if err != nil {
		return err
	}
	after := ""
	if from > 0 {
		after = remote.LogKey(from - 1)
	}
	o := newOutput(e.stdout)
	n := 0
	for info, err := range b.List(ctx, remote.LogPrefix, after) {
		if err != nil {
			return errorf(err, "listing %s on %s: %s", remote.LogPrefix, b, remoteProblem("", err))
		}
		pos, ok := remote.ParseLogKey(info.Key)
		if !ok || pos < from {
			continue
		}
		obj, err := b.Get(ctx, info.Key)
		if err != nil {
			return errorf(err, "reading %s on %s: %s", info.Key, b, remoteProblem("", err))
		}
		h, err := segment.DecodeHeader(info.Key, obj.Data)
		if err != nil {
			return errorf(err, "%s on %s: %v (run verify)", info.Key, b, err)
		}
		l := logLine{Position: pos, Origin: h.Origin.String(), Records: h.Count, Bytes: int64(len(obj.Data)), Modified: info.LastModified.UTC()}
		if e.json {
			o.json(l)
		} else {
			o.printf("%d  by %s  %d records  %d bytes\n", l.Position, h.Origin.Short(), l.Records, l.Bytes)
		}
		if o.err != nil {
			break
		}
		if n++; limit > 0 && n >= limit {
			break
		}
	}
	return o.flush()
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
