package merge_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/proptest"
)

// The cost of a json document against lww of the same bytes, per
// document (BENCHMARKS.md):
//
//	go test -run '^$' -bench 'Doc' -benchmem -count 5 ./merge/
//
// A document of F string fields of about 20 bytes each, two of them in a
// nested object. "concurrent": the record holds two siblings, each a patch
// of a different field made from the same synced document (the case the
// policy exists for); lww holds the two documents as bytes, each the
// document its writer put.

// docRecords returns, for F fields, the two-sibling json record, the
// equivalent lww record, and the one-version json and lww records.
func docRecords(b *testing.B, fields int) (jsonTwo, lwwTwo, jsonOne, lwwOne merge.Record) {
	b.Helper()
	ids := proptest.Pool(2)
	var parts []string
	for i := range fields - 2 {
		parts = append(parts, fmt.Sprintf(`"field%03d":"value of field %03d"`, i, i))
	}
	parts = append(parts, `"addr":{"city":"Oslo","zip":"0150"}`)
	doc := "{" + strings.Join(parts, ",") + "}"
	d0 := clock.Dot{Replica: ids[0], Counter: 1}
	base, err := merge.DocState{}.Patch(d0, 100, []byte(doc))
	if err != nil {
		b.Fatal(err)
	}
	da, db := clock.Dot{Replica: ids[0], Counter: 2}, clock.Dot{Replica: ids[1], Counter: 1}
	x, err := base.Patch(da, 200, []byte(`{"field000":"changed on a"}`))
	if err != nil {
		b.Fatal(err)
	}
	y, err := base.Patch(db, 201, []byte(`{"addr":{"zip":"0151"}}`))
	if err != nil {
		b.Fatal(err)
	}
	xd, _ := x.Document()
	yd, _ := y.Document()
	both := clock.Vector{ids[0]: 2, ids[1]: 1}
	jsonTwo = merge.Record{Clock: both, Versions: []merge.Version{{Dot: da, Time: 200, Value: x.Encode()}, {Dot: db, Time: 201, Value: y.Encode()}}}
	lwwTwo = merge.Record{Clock: both, Versions: []merge.Version{{Dot: da, Time: 200, Value: xd}, {Dot: db, Time: 201, Value: yd}}}
	bd, _ := base.Document()
	jsonOne = merge.Record{Clock: clock.Vector{ids[0]: 1}, Versions: []merge.Version{{Dot: d0, Time: 100, Value: base.Encode()}}}
	lwwOne = merge.Record{Clock: clock.Vector{ids[0]: 1}, Versions: []merge.Version{{Dot: d0, Time: 100, Value: bd}}}
	return
}

func BenchmarkDocRead(b *testing.B) {
	for _, fields := range []int{10, 100} {
		jsonTwo, lwwTwo, jsonOne, lwwOne := docRecords(b, fields)
		for _, tc := range []struct {
			name string
			p    merge.Policy
			rec  merge.Record
		}{
			{"json/one", merge.JSON{}, jsonOne},
			{"lww/one", merge.LWW{}, lwwOne},
			{"json/concurrent", merge.JSON{}, jsonTwo},
			{"lww/concurrent", merge.LWW{}, lwwTwo},
		} {
			b.Run(fmt.Sprintf("fields=%d/%s", fields, tc.name), func(b *testing.B) {
				n := 0
				for _, v := range tc.rec.Versions {
					n += len(v.Value)
				}
				b.ReportAllocs()
				for b.Loop() {
					res, err := merge.Read(tc.p, "k", tc.rec)
					if err != nil || res.Deleted {
						b.Fatal(res, err)
					}
				}
				b.ReportMetric(float64(n), "stored-B") // after the loop, which resets metrics
			})
		}
	}
}

// BenchmarkDocMerge: what a pull does with a document that arrives: the
// record merge (the same code for every policy, over bigger values for
// json) and, for json, nothing else until a read joins the states.
// "patch" is the json write path of one field (join the siblings, apply
// the patch, encode), against an lww write, which stores the bytes given.
func BenchmarkDocMerge(b *testing.B) {
	for _, fields := range []int{10, 100} {
		jsonTwo, lwwTwo, _, _ := docRecords(b, fields)
		for _, tc := range []struct {
			name string
			rec  merge.Record
		}{{"json", jsonTwo}, {"lww", lwwTwo}} {
			a := merge.Record{Clock: clock.Vector{tc.rec.Versions[0].Dot.Replica: 2}, Versions: tc.rec.Versions[:1]}
			o := merge.Record{Clock: clock.Vector{tc.rec.Versions[1].Dot.Replica: 1, tc.rec.Versions[0].Dot.Replica: 1}, Versions: tc.rec.Versions[1:]}
			b.Run(fmt.Sprintf("fields=%d/%s/record-merge", fields, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if m := merge.Merge(a, o); len(m.Versions) != 2 {
						b.Fatal(m)
					}
				}
			})
		}
		b.Run(fmt.Sprintf("fields=%d/json/patch", fields), func(b *testing.B) {
			b.ReportAllocs()
			d := clock.Dot{Replica: jsonTwo.Versions[0].Dot.Replica, Counter: 3}
			for b.Loop() {
				s, err := merge.DocOf(jsonTwo)
				if err != nil {
					b.Fatal(err)
				}
				s, err = s.Patch(d, 300, []byte(`{"field001":"patched"}`))
				if err != nil {
					b.Fatal(err)
				}
				_ = s.Encode()
			}
		})
	}
}

// BenchmarkDocReadCRDT: the read of a 10-field document two of whose
// fields are a counter ("visits", incremented on three replicas) and a set
// of 8 members ("tags", added on two), against the same document with
// those fields plain values (json-plain) and against lww of its bytes.
// "concurrent": two siblings, one incrementing and adding, the other
// incrementing and removing (BENCHMARKS.md):
//
//	go test -run '^$' -bench 'DocReadCRDT' -benchmem -count 3 ./merge/
func BenchmarkDocReadCRDT(b *testing.B) {
	ids := proptest.Pool(3)
	var parts []string
	for i := range 8 {
		parts = append(parts, fmt.Sprintf(`"field%03d":"value of field %03d"`, i, i))
	}
	fields := strings.Join(parts, ",")
	must := func(s merge.DocState, err error) merge.DocState {
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	d := func(i int, c uint64) clock.Dot { return clock.Dot{Replica: ids[i], Counter: c} }
	base := must(merge.DocState{}.Patch(d(0, 1), 100, []byte(`{`+fields+`,"visits":{"$inc":1},"tags":{"$add":["t0","t1","t2","t3"]}}`)))
	base = base.Join(must(base.Patch(d(1, 1), 101, []byte(`{"visits":{"$inc":2},"tags":{"$add":["t4","t5","t6","t7"]}}`))))
	base = base.Join(must(base.Patch(d(2, 1), 102, []byte(`{"visits":{"$inc":3}}`))))
	x := must(base.Patch(d(0, 2), 200, []byte(`{"visits":{"$inc":1},"tags":{"$add":["x"]}}`)))
	y := must(base.Patch(d(1, 2), 201, []byte(`{"visits":{"$inc":1},"tags":{"$remove":["t0"]}}`)))
	ctx := clock.Vector{ids[0]: 2, ids[1]: 2, ids[2]: 1}
	one := merge.Record{Clock: ctx, Versions: []merge.Version{{Dot: d(0, 2), Time: 200, Value: x.Encode()}}}
	two := merge.Record{Clock: ctx, Versions: []merge.Version{{Dot: d(0, 2), Time: 200, Value: x.Encode()}, {Dot: d(1, 2), Time: 201, Value: y.Encode()}}}
	xd, _ := x.Document()
	plain := must(merge.DocState{}.Patch(d(0, 1), 100, xd))
	plainOne := merge.Record{Clock: clock.Vector{ids[0]: 1}, Versions: []merge.Version{{Dot: d(0, 1), Time: 100, Value: plain.Encode()}}}
	lwwOne := merge.Record{Clock: clock.Vector{ids[0]: 1}, Versions: []merge.Version{{Dot: d(0, 1), Time: 100, Value: xd}}}
	for _, tc := range []struct {
		name string
		p    merge.Policy
		rec  merge.Record
		want string
	}{
		{"json-crdt/one", merge.JSON{}, one, `"visits":7`},
		{"json-crdt/concurrent", merge.JSON{}, two, `"visits":8`},
		{"json-plain/one", merge.JSON{}, plainOne, `"visits":7`},
		{"lww/one", merge.LWW{}, lwwOne, `"visits":7`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			n := 0
			for _, v := range tc.rec.Versions {
				n += len(v.Value)
			}
			b.ReportAllocs()
			for b.Loop() {
				res, err := merge.Read(tc.p, "k", tc.rec)
				if err != nil || res.Deleted {
					b.Fatal(res, err)
				}
			}
			res, _ := merge.Read(tc.p, "k", tc.rec)
			if !strings.Contains(string(res.Value), tc.want) {
				b.Fatalf("reads %s, want %s", res.Value, tc.want)
			}
			b.ReportMetric(float64(n), "stored-B")
		})
	}
}
