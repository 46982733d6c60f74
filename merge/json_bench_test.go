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
