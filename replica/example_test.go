package replica_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ebreplica/ebreplica/replica"
)

func Example() {
	ctx := context.Background()
	// A replica in memory; on disk, pass a directory instead and drop
	// InMemory. The remote URL is recorded for sync.
	r, err := replica.Init("", "mem://example", &replica.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	for _, kv := range [][2]string{
		{"fruit/banana", "yellow"},
		{"fruit/apple", "red"},
		{"veg/carrot", "orange"},
	} {
		if err := r.Put(ctx, kv[0], []byte(kv[1])); err != nil {
			log.Fatal(err)
		}
	}

	v, err := r.Get("fruit/apple")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("apple:", string(v))
	fmt.Println("keys:", r.Len())

	for it, err := range r.Scan("fruit/") {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s = %s\n", it.Key, it.Value)
	}
	// Output:
	// apple: red
	// keys: 3
	// fruit/apple = red
	// fruit/banana = yellow
}
