package clock_test

import (
	"fmt"
	"time"

	"github.com/ebreplica/ebreplica/clock"
)

func ExampleVector_Compare() {
	a, _ := clock.ParseReplicaID("0a1b2c3d-0000-4000-8000-000000000001")
	b, _ := clock.ParseReplicaID("ff00aa11-0000-4000-8000-000000000002")

	base := clock.Vector{a: 1}
	left := base.Clone()
	left.Add(clock.Dot{Replica: a, Counter: 2}) // a writes again
	right := base.Clone()
	right.Add(clock.Dot{Replica: b, Counter: 1}) // b writes, having seen a's first write

	fmt.Println(base.Compare(left))
	fmt.Println(left.Compare(base))
	fmt.Println(left.Compare(right))
	joined := left.Join(right)
	fmt.Println(joined, left.Compare(joined), joined.Compare(joined))
	// Output:
	// before
	// after
	// concurrent
	// {0a1b2c3d:2 ff00aa11:1} before equal
}

func ExampleClock() {
	// An injected wall clock that the example moves by hand.
	wall := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clock.NewClock(func() time.Time { return wall }, 0, time.Hour)

	fmt.Println(c.Now())
	fmt.Println(c.Now()) // same millisecond: the logical counter moves

	wall = wall.Add(-10 * time.Second) // the wall clock jumps back
	fmt.Println(c.Now())               // still after the last timestamp

	// A remote timestamp 3 hours ahead is merged but capped at wall + 1h.
	capped := c.Observe(clock.MakeHLC(wall.Add(3*time.Hour).UnixMilli(), 0))
	n, ahead := c.SkewStats()
	fmt.Println(capped, n, ahead)
	fmt.Println(c.Now())
	// Output:
	// 2024-01-02T03:04:05.000Z+0
	// 2024-01-02T03:04:05.000Z+1
	// 2024-01-02T03:04:05.000Z+2
	// true 1 3h0m0s
	// 2024-01-02T04:03:55.001Z+0
}
