package protocol

import (
	"testing"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// TestTwinDot: a pulled version under this replica's id that a local
// version of the same dot contradicts is a twin; the same version, a dot
// of another replica, or a dot the local record does not hold are not.
func TestTwinDot(t *testing.T) {
	self, other := clock.NewReplicaID(), clock.NewReplicaID()
	d := clock.Dot{Replica: self, Counter: 2}
	mine := merge.Version{Dot: d, Value: []byte("B30"), Time: 20}
	rec := func(vs ...merge.Version) merge.Record {
		c := clock.Vector{}
		for _, v := range vs {
			c.Add(v.Dot)
		}
		return merge.Record{Clock: c, Versions: vs}
	}
	local := rec(mine)
	for _, tc := range []struct {
		name   string
		remote merge.Record
		twin   bool
	}{
		{"the same version", rec(mine), false},
		{"a tombstone under the dot", rec(merge.Version{Dot: d, Deleted: true, Time: 10}), true},
		{"another value", rec(merge.Version{Dot: d, Value: []byte("B31"), Time: 20}), true},
		{"another HLC", rec(merge.Version{Dot: d, Value: []byte("B30"), Time: 21}), true},
		{"another dot of this id", rec(merge.Version{Dot: clock.Dot{Replica: self, Counter: 1}, Value: []byte("B5"), Time: 5}), false},
		{"another replica's dot", rec(merge.Version{Dot: clock.Dot{Replica: other, Counter: 2}, Value: []byte("x"), Time: 9}), false},
	} {
		got, twin := TwinDot(self, local, tc.remote)
		if twin != tc.twin || twin && got != d {
			t.Errorf("%s: TwinDot = %v, %v; want twin %v", tc.name, got, twin, tc.twin)
		}
	}
	if _, twin := TwinDot(self, merge.Record{}, rec(merge.Version{Dot: d, Deleted: true})); twin {
		t.Error("no local record: no twin to compare with")
	}
}
