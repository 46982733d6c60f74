package replica_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

// Keys under "hits/" are counters: every replica adds to them offline, and
// after syncing every replica reads the sum of all the increments.
func ExampleReplica_CounterAdd() {
	reg, err := merge.ParsePolicies([]string{"hits/=counter"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	r, err := replica.Open("", &replica.Options{InMemory: true, Create: true, Policies: reg})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx := context.Background()
	if _, err := r.CounterAdd(ctx, "hits/home", 3); err != nil {
		log.Fatal(err)
	}
	n, err := r.CounterAdd(ctx, "hits/home", -1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("after adding 3 and -1:", n)

	v, _ := r.Get("hits/home") // a plain read shows the number as text
	fmt.Printf("Get: %s\n", v)

	_, err = r.CounterAdd(ctx, "greeting", 1)
	fmt.Println(err)
	// Output:
	// after adding 3 and -1: 2
	// Get: 2
	// replica: operation does not fit the key's merge policy: key "greeting" is governed by policy "lww", not "counter"
}
