package sim

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// A trace is a recorded workload: the writes of real replicas, replayed by
// RunTrace (ebreplica sim --trace FILE) under the configured skew, faults,
// partitions and crashes. It is JSON lines, one write a line:
//
//		{"replica":"laptop","time":"2026-03-01T10:00:00.250Z","op":"put","key":"cart/42","value":"3 items"}
//		{"replica":"phone","time":12.5,"op":"delete","key":"cart/42"}
//
//	  - replica: any name; replicas are lettered A, B, C... in order of first
//	    appearance (at most 26). A line without one belongs to its file's
//	    replica: each file read is one replica then, named by the file.
//	  - time: an RFC 3339 time, or a number of seconds; logical time starts
//	    at the earliest. A line without one comes one second after the
//	    previous line of its file, or at its "seq" seconds when it has one.
//	  - op: "put" or "delete".
//	  - key: the key, not empty.
//	  - value: a put's value: a string as it is, any other JSON value as its
//	    JSON text; without one, the replica's letter and the line number.
//
// Other fields are ignored, and a line with "origin":"remote" is skipped:
// so the output of `ebreplica watch --json` captured on each real replica,
// one file per replica ({"seq","key","op","origin","conflict"}), is a
// trace as it is: its local changes are the writes, and the remote ones
// are what the simulator's own pulls will bring. Blank lines are skipped.
// A malformed line is an error naming the file and the line number.
//
// The simulator schedules around the writes, in trace time order, what a
// generated schedule of the same Config has between its writes (pushes,
// pulls, syncs, crashes, partitions, clock jumps, with their faults):
// the generated schedule is walked and each of its writes is replaced by
// the trace's next write. The operations between two writes share the
// logical time between them.
type Trace struct {
	// Name describes the trace (its files).
	Name string
	// Replicas are the replicas' names, lettered A, B, C... in order.
	Replicas []string
	// Writes are the writes, in time order.
	Writes []TraceWrite
	// Keys counts the distinct keys written.
	Keys int
}

// TraceWrite is one write of a trace.
type TraceWrite struct {
	R      int           // replica index (0 = A)
	Time   time.Duration // since the trace's start
	Delete bool
	Key    string
	Value  string
	// File and Line locate the line it came from.
	File string
	Line int
}

// TraceFile is one file of a trace: its name and content.
type TraceFile struct {
	Name string
	Data io.Reader
}

// traceLine is a line as read.
type traceLine struct {
	Replica *string          `json:"replica"`
	Time    json.RawMessage  `json:"time"`
	Op      *string          `json:"op"`
	Key     *string          `json:"key"`
	Value   json.RawMessage  `json:"value"`
	Seq     *json.RawMessage `json:"seq"`
	Origin  *string          `json:"origin"`
}

// ReadTrace reads the files of a trace (see Trace), in order. It reads
// every line before it returns: a malformed line is an error naming its
// file and line number, and no trace.
func ReadTrace(files ...TraceFile) (*Trace, error) {
	if len(files) == 0 {
		return nil, errors.New("sim: trace: no file")
	}
	tr := &Trace{}
	type timed struct {
		w        TraceWrite
		abs      time.Time // an RFC 3339 time
		hasAbs   bool
		rel      time.Duration
		ordinal  int
		replName string
	}
	var all []timed
	var names []string
	for _, f := range files {
		sc := bufio.NewScanner(f.Data)
		sc.Buffer(make([]byte, 64*1024), 16<<20)
		var prev time.Duration
		havePrev := false
		lineNo := 0
		for sc.Scan() {
			lineNo++
			raw := bytes.TrimSpace(sc.Bytes())
			if len(raw) == 0 {
				continue
			}
			bad := func(format string, a ...any) error {
				return fmt.Errorf("sim: trace %s:%d: %s", f.Name, lineNo, fmt.Sprintf(format, a...))
			}
			var l traceLine
			dec := json.NewDecoder(bytes.NewReader(raw))
			if err := dec.Decode(&l); err != nil {
				return nil, bad("not a JSON object: %v", err)
			}
			if dec.More() {
				return nil, bad("more than one JSON value on the line")
			}
			if l.Origin != nil && *l.Origin == "remote" {
				continue
			}
			if l.Origin != nil && *l.Origin != "local" {
				return nil, bad("origin %q: want local or remote", *l.Origin)
			}
			if l.Op == nil {
				return nil, bad(`no "op" (want put or delete)`)
			}
			t := timed{ordinal: len(all)}
			switch *l.Op {
			case "put":
			case "delete":
				t.w.Delete = true
			default:
				return nil, bad("op %q: want put or delete", *l.Op)
			}
			if l.Key == nil || *l.Key == "" {
				return nil, bad(`no "key"`)
			}
			t.w.Key = *l.Key
			t.replName = f.Name
			if l.Replica != nil {
				if *l.Replica == "" {
					return nil, bad(`"replica" is empty`)
				}
				t.replName = *l.Replica
			}
			switch {
			case len(l.Time) > 0 && string(l.Time) != "null":
				var s string
				var secs float64
				if err := json.Unmarshal(l.Time, &s); err == nil {
					at, err := time.Parse(time.RFC3339Nano, s)
					if err != nil {
						return nil, bad("time %q: want an RFC 3339 time or a number of seconds", s)
					}
					t.abs, t.hasAbs = at, true
				} else if err := json.Unmarshal(l.Time, &secs); err == nil && secs >= 0 && secs < 1e9 && !math.IsNaN(secs) {
					t.rel = time.Duration(secs * float64(time.Second))
				} else {
					return nil, bad("time %s: want an RFC 3339 time or a number of seconds, 0 or more", l.Time)
				}
			case l.Seq != nil:
				var seq float64
				if err := json.Unmarshal(*l.Seq, &seq); err != nil || seq < 0 || seq >= 1e9 {
					return nil, bad("seq %s: want a number, 0 or more", *l.Seq)
				}
				t.rel = time.Duration(seq) * time.Second
			case havePrev:
				t.rel = prev + time.Second
			}
			if !t.hasAbs {
				prev, havePrev = t.rel, true
			}
			if len(l.Value) > 0 && string(l.Value) != "null" {
				if t.w.Delete {
					return nil, bad("a delete with a value")
				}
				var s string
				if err := json.Unmarshal(l.Value, &s); err == nil {
					t.w.Value = s
				} else {
					var buf bytes.Buffer
					if err := json.Compact(&buf, l.Value); err != nil {
						return nil, bad("value: %v", err)
					}
					t.w.Value = buf.String()
				}
			}
			t.w.File, t.w.Line = f.Name, lineNo
			if !slices.Contains(names, t.replName) {
				if len(names) == 26 {
					return nil, bad("replica %q: a trace has at most 26 replicas", t.replName)
				}
				names = append(names, t.replName)
			}
			t.w.R = slices.Index(names, t.replName)
			if !t.w.Delete && (len(l.Value) == 0 || string(l.Value) == "null") {
				t.w.Value = fmt.Sprintf("%s%d", replicaName(t.w.R), lineNo)
			}
			all = append(all, t)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("sim: trace %s:%d: %w", f.Name, lineNo+1, err)
		}
	}
	if len(all) == 0 {
		return nil, errors.New("sim: trace: no writes (every line blank or a remote change)")
	}
	// Absolute times count from the earliest one.
	var origin time.Time
	for _, t := range all {
		if t.hasAbs && (origin.IsZero() || t.abs.Before(origin)) {
			origin = t.abs
		}
	}
	keys := map[string]bool{}
	for i := range all {
		if all[i].hasAbs {
			all[i].rel = all[i].abs.Sub(origin)
		}
		all[i].w.Time = all[i].rel.Truncate(time.Millisecond)
		keys[all[i].w.Key] = true
	}
	slices.SortStableFunc(all, func(a, b timed) int {
		if c := cmp.Compare(a.w.Time, b.w.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.ordinal, b.ordinal)
	})
	for _, t := range all {
		tr.Writes = append(tr.Writes, t.w)
	}
	tr.Replicas = names
	tr.Keys = len(keys)
	var fnames []string
	for _, f := range files {
		fnames = append(fnames, f.Name)
	}
	tr.Name = strings.Join(fnames, ", ")
	return tr, nil
}

// describe is the trace for reports.
func (tr *Trace) describe() string {
	span := time.Duration(0)
	if n := len(tr.Writes); n > 0 {
		span = tr.Writes[n-1].Time
	}
	var rs []string
	for i, n := range tr.Replicas {
		rs = append(rs, replicaName(i)+"="+n)
	}
	return fmt.Sprintf("trace %s: %d writes of %d keys by %d replicas (%s) over %s",
		tr.Name, len(tr.Writes), tr.Keys, len(tr.Replicas), strings.Join(rs, " "), fmtDur(span))
}

// config sets cfg's replicas and keys from the trace. Replicas, when set,
// must be the trace's.
func (tr *Trace) config(cfg Config) (Config, error) {
	if cfg.Replicas != 0 && cfg.Replicas != len(tr.Replicas) {
		return cfg, fmt.Errorf("sim: the trace has %d replicas, Replicas is %d", len(tr.Replicas), cfg.Replicas)
	}
	if cfg.Offsets != nil && len(cfg.Offsets) != len(tr.Replicas) {
		return cfg, fmt.Errorf("sim: the trace has %d replicas, Offsets %d", len(tr.Replicas), len(cfg.Offsets))
	}
	cfg.Replicas, cfg.Keys = len(tr.Replicas), tr.Keys
	return cfg, nil
}

// schedule builds the trace's schedule under cfg (validated, with the
// trace's replicas): see Trace.
func (tr *Trace) schedule(cfg Config) []Op {
	var ops []Op
	next := 0
	var pending []Op // non-writes since the last write
	var now time.Duration
	place := func(w TraceWrite, id int) {
		// The operations since the last write share the time up to it.
		gap := max(w.Time-now, 0)
		step := (gap / time.Duration(len(pending)+1)).Truncate(time.Millisecond)
		for _, o := range pending {
			o.Advance = step
			now += step
			ops = append(ops, o)
		}
		pending = pending[:0]
		o := Op{ID: id, R: w.R, Kind: OpPut, Key: w.Key, Value: w.Value, Advance: max(w.Time-now, 0)}
		if w.Delete {
			o.Kind, o.Value = OpDelete, ""
		}
		now += o.Advance
		ops = append(ops, o)
	}
	g := cfg
	g.Policy, g.UserPolicy = PolicyLWW, nil // the writes' slots: puts, deletes, batches
	g.Ops = 2*len(tr.Writes) + 16
	gen := generate(g)
	for _, o := range gen {
		if next == len(tr.Writes) {
			break
		}
		switch o.Kind {
		case OpPut, OpDelete, OpBatch:
			place(tr.Writes[next], o.ID)
			next++
		default:
			pending = append(pending, o)
		}
	}
	// Generated writes ran out first (unlikely): the rest follow, numbered
	// after the generated operations.
	for id := g.Ops + 64; next < len(tr.Writes); id++ {
		place(tr.Writes[next], id)
		next++
	}
	return ops
}

// RunTrace replays the trace's writes under cfg (see Trace): the replicas
// are the trace's (cfg.Replicas 0 or equal to their number), the rest of
// the schedule is drawn from cfg.Seed, and every invariant is checked as
// in Run. A failure is a *Failure with the shortest failing schedule.
func RunTrace(cfg Config, tr *Trace) (Report, error) {
	if tr == nil || len(tr.Writes) == 0 {
		return Report{}, errors.New("sim: RunTrace: an empty trace")
	}
	cfg, err := tr.config(cfg)
	if err != nil {
		return Report{}, err
	}
	if cfg, err = cfg.validate(); err != nil {
		return Report{}, err
	}
	rep, err := runShrunk(cfg, mapSchedule(tr.schedule(cfg), cfg.kind()))
	rep.Workload = tr.describe()
	return rep, err
}
