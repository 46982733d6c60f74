package merge_test

import (
	"fmt"
	"strconv"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
)

// A user callback that settles concurrent writes of a high score: the
// larger number wins, and a live score wins over a concurrent delete. It is
// deterministic, commutative, associative and idempotent, so every replica
// reads the same value whatever the order of the siblings
// (proptest.CheckPolicy tests exactly that).
func ExampleNewFunc() {
	highest := merge.NewFunc("highest-score", func(key string, a, b merge.Version) (merge.Version, error) {
		switch {
		case a.Deleted:
			return b, nil
		case b.Deleted:
			return a, nil
		}
		x, err := strconv.Atoi(string(a.Value))
		if err != nil {
			return merge.Version{}, fmt.Errorf("score %q: %w", a.Value, err)
		}
		y, err := strconv.Atoi(string(b.Value))
		if err != nil {
			return merge.Version{}, fmt.Errorf("score %q: %w", b.Value, err)
		}
		if y > x {
			return b, nil
		}
		return a, nil
	})

	reg := merge.NewRegistry()
	reg.Set("score/", highest)

	// Three replicas wrote score/ann concurrently: the record keeps all
	// three as siblings, and a read folds the callback over them.
	ann, bob, cat := clock.NewReplicaID(), clock.NewReplicaID(), clock.NewReplicaID()
	rec := merge.Record{}
	for _, w := range []struct {
		id    clock.ReplicaID
		score string
	}{{ann, "70"}, {bob, "95"}, {cat, "82"}} {
		v := merge.Version{Value: []byte(w.score), Dot: clock.Dot{Replica: w.id, Counter: 1}}
		rec = merge.Merge(rec, merge.LocalWrite(merge.Record{}, nil, v))
	}
	res, err := merge.Read(reg.For("score/ann"), "score/ann", rec)
	fmt.Println(string(res.Value), len(rec.Versions), err)

	// A value the callback rejects makes the read fail, naming key and policy.
	bad := merge.Version{Value: []byte("lots"), Dot: clock.Dot{Replica: ann, Counter: 2}}
	rec = merge.Merge(rec, merge.LocalWrite(merge.Record{}, nil, bad))
	_, err = merge.Read(reg.For("score/ann"), "score/ann", rec)
	fmt.Println(err)
	// Output:
	// 95 3 <nil>
	// merge: policy "highest-score" failed on key "score/ann": score "lots": strconv.Atoi: parsing "lots": invalid syntax
}
