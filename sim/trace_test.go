package sim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/merge"
)

func traceFile(name, text string) TraceFile {
	return TraceFile{Name: name, Data: strings.NewReader(text)}
}

const appTrace = `{"replica":"laptop","time":"2026-03-01T10:00:00Z","op":"put","key":"cart/1","value":"apples"}
{"replica":"phone","time":"2026-03-01T10:00:00.400Z","op":"put","key":"cart/1","value":"pears"}

{"replica":"laptop","time":"2026-03-01T10:00:02Z","op":"put","key":"cart/2","value":{"n":3}}
{"replica":"tablet","time":"2026-03-01T10:00:03Z","op":"delete","key":"cart/1"}
{"replica":"phone","time":"2026-03-01T10:00:03.500Z","op":"put","key":"cart/2","value":"x"}
{"replica":"laptop","time":"2026-03-01T10:00:05Z","op":"put","key":"cart/3"}
{"replica":"tablet","time":"2026-03-01T10:00:09Z","op":"put","key":"cart/1","value":"plums"}
{"replica":"phone","time":"2026-03-01T10:00:09Z","op":"put","key":"cart/3","value":"figs"}
`

// TestTraceReplay: a trace's writes are replayed in time order, on its
// replicas, with its values, under faults, crashes and partitions; the run
// converges, and the same seed gives the same report.
func TestTraceReplay(t *testing.T) {
	tr, err := ReadTrace(traceFile("app.jsonl", appTrace))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tr.Replicas, ","); got != "laptop,phone,tablet" || tr.Keys != 3 || len(tr.Writes) != 8 {
		t.Fatalf("trace: %q, %d keys, %d writes", got, tr.Keys, len(tr.Writes))
	}
	if w := tr.Writes[2]; w.Value != `{"n":3}` || w.Time.Seconds() != 2 || w.Line != 4 {
		t.Fatalf("third write: %+v", w)
	}
	if w := tr.Writes[5]; w.Value != "A7" || w.R != 0 {
		t.Fatalf("a put without a value: %+v", w)
	}
	for seed := uint64(1); seed <= 8; seed++ {
		cfg := Config{Seed: seed, Faults: 0.2, Crashes: 0.1, Partitions: 0.1}
		rep, err := RunTrace(cfg, tr)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Converged || rep.Replicas != 3 || rep.Keys != 3 || !strings.Contains(rep.Workload, "8 writes of 3 keys by 3 replicas") {
			t.Fatalf("seed %d: %+v", seed, rep)
		}
		// Every write of the trace ran, in its order, on its replica.
		var wrote []string
		for _, l := range rep.Trace {
			if m := opLine.FindStringSubmatch(l); m != nil && isWrite(m[3]) {
				wrote = append(wrote, m[3])
			}
		}
		want := []string{"A put cart/1=apples", "B put cart/1=pears", `A put cart/2={"n":3}`, "C del cart/1",
			"B put cart/2=x", "A put cart/3=A7", "C put cart/1=plums", "B put cart/3=figs"}
		if strings.Join(wrote, "\n") != strings.Join(want, "\n") {
			t.Fatalf("seed %d: writes run:\n%s", seed, strings.Join(wrote, "\n"))
		}
		again, _ := RunTrace(cfg, tr)
		if fmt.Sprint(again.Trace) != fmt.Sprint(rep.Trace) || again.Digest != rep.Digest {
			t.Fatalf("seed %d: two runs differ", seed)
		}
	}
	// Under every policy, side by side.
	c, err := Compare(Config{Seed: 3}, CompareOptions{Trace: tr, Runs: 2, Policies: []string{"lww", "mv", "counter", "set", "json-mv"}, User: []merge.Policy{larger}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Policies {
		if !r.Converged || r.Runs != 2 {
			t.Fatalf("%s: %+v", r.Policy, r)
		}
	}
	// Every policy ran the trace's schedule, mapped to its writes.
	base, err := Config{Seed: 3, Replicas: 3, Keys: 3}.validate()
	if err != nil {
		t.Fatal(err)
	}
	sched := tr.schedule(base)
	for j, name := range []string{"lww", "mv", "counter", "set", "json-mv", "larger"} {
		seen := opsSeen(t, c.PerRun[j][0].Trace)
		want := MapSchedule(sched, name)
		if len(seen) != len(want) {
			t.Fatalf("%s ran %d operations, the trace's schedule has %d", name, len(seen), len(want))
		}
		for i, o := range want {
			if seen[i].id != itoa(o.ID) || seen[i].op != o.String() {
				t.Fatalf("%s's operation %d was #%s %s, want #%d %s", name, i, seen[i].id, seen[i].op, o.ID, o)
			}
		}
	}
	if _, err := RunTrace(Config{Replicas: 2}, tr); err == nil || !strings.Contains(err.Error(), "3 replicas") {
		t.Fatalf("Replicas 2 for a trace of 3: %v", err)
	}
}

// TestTraceWatchCaptures: the output of watch --json, one file per
// replica, is a trace as it is: its local changes are the writes (remote
// ones skipped), placed at their seq.
func TestTraceWatchCaptures(t *testing.T) {
	a := `{"seq":1,"key":"k1","op":"put","origin":"local","conflict":false}
{"seq":2,"key":"k2","op":"put","origin":"remote","conflict":false}
{"seq":3,"key":"k2","op":"delete","origin":"local","conflict":false}
`
	b := `{"seq":1,"key":"k2","op":"put","origin":"local","conflict":false}
{"seq":2,"key":"k1","op":"put","origin":"remote","conflict":false}
{"seq":3,"key":"k1","op":"put","origin":"local","conflict":true}
{"seq":4,"key":"k2","op":"delete","origin":"remote","conflict":false}
`
	tr, err := ReadTrace(traceFile("a.jsonl", a), traceFile("b.jsonl", b))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range tr.Writes {
		got = append(got, fmt.Sprintf("%s@%v:%v:%s=%s", replicaName(w.R), w.Time, w.Delete, w.Key, w.Value))
	}
	want := "A@1s:false:k1=A1 B@1s:false:k2=B1 A@3s:true:k2= B@3s:false:k1=B3"
	if strings.Join(got, " ") != want {
		t.Fatalf("writes %q, want %q", strings.Join(got, " "), want)
	}
	for seed := uint64(1); seed <= 5; seed++ {
		rep, err := RunTrace(Config{Seed: seed}, tr)
		if err != nil || !rep.Converged || rep.Writes < 3 {
			t.Fatalf("seed %d: %v %+v", seed, err, rep)
		}
	}
}

// TestTraceMalformed: a malformed line is an error naming its file and
// line number, and no trace is returned (nothing can run).
func TestTraceMalformed(t *testing.T) {
	good := `{"replica":"a","op":"put","key":"k","value":"v"}` + "\n"
	for _, c := range []struct{ line, want string }{
		{`{"replica":"a","op":"put","key":"k"`, "not a JSON object"},
		{`not json`, "not a JSON object"},
		{`{"op":"upsert","key":"k"}`, `op "upsert"`},
		{`{"key":"k"}`, `no "op"`},
		{`{"op":"put"}`, `no "key"`},
		{`{"op":"put","key":""}`, `no "key"`},
		{`{"op":"put","key":"k","time":"yesterday"}`, `time "yesterday"`},
		{`{"op":"put","key":"k","time":-3}`, "time -3"},
		{`{"op":"delete","key":"k","value":"v"}`, "a delete with a value"},
		{`{"op":"put","key":"k","origin":"elsewhere"}`, `origin "elsewhere"`},
		{`{"op":"put","key":"k","replica":""}`, `"replica" is empty`},
		{`{"op":"put","key":"k"} {"op":"put","key":"k"}`, "more than one JSON value"},
		{`["put","k"]`, "not a JSON object"},
	} {
		text := good + "\n" + good + c.line + "\n" + good
		tr, err := ReadTrace(traceFile("w.jsonl", text))
		if err == nil || tr != nil || !strings.Contains(err.Error(), "w.jsonl:4: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v (trace %v), want w.jsonl:4: ... %s", c.line, err, tr, c.want)
		}
	}
	var many strings.Builder
	for i := range 27 {
		fmt.Fprintf(&many, `{"replica":"r%d","op":"put","key":"k"}`+"\n", i)
	}
	if _, err := ReadTrace(traceFile("m", many.String())); err == nil || !strings.Contains(err.Error(), "m:27: ") {
		t.Errorf("27 replicas: %v", err)
	}
	if _, err := ReadTrace(traceFile("e", "\n"+`{"op":"put","key":"k","origin":"remote"}`+"\n")); err == nil || !strings.Contains(err.Error(), "no writes") {
		t.Errorf("no writes: %v", err)
	}
	if _, err := ReadTrace(); err == nil {
		t.Error("no file: no error")
	}
}
