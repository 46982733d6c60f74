package memremote_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/memremote"
)

func Example() {
	ctx := context.Background()
	var be remote.Backend = memremote.New("example")

	// Create-only: the second writer loses.
	if _, err := be.PutIfAbsent(ctx, "log/0001", []byte("first entry")); err != nil {
		panic(err)
	}
	_, err := be.PutIfAbsent(ctx, "log/0001", []byte("other entry"))
	fmt.Println("second create:", errors.Is(err, remote.ErrExists))

	// Compare-and-swap on a mutable pointer.
	etag, _ := be.Put(ctx, "head", []byte("log/0001"))
	_, err = be.PutIfMatch(ctx, "head", []byte("log/0002"), etag)
	fmt.Println("swap:", err)
	_, err = be.PutIfMatch(ctx, "head", []byte("log/0003"), etag) // stale ETag
	fmt.Println("stale swap:", errors.Is(err, remote.ErrPrecondition))

	obj, _ := be.Get(ctx, "head")
	fmt.Printf("head = %s\n", obj.Data)

	for info, err := range be.List(ctx, "", "") {
		if err != nil {
			panic(err)
		}
		fmt.Println(info.Key, info.Size)
	}
	c := be.Stats().Snapshot()
	fmt.Printf("requests: %d puts, %d gets, %d lists\n", c.Put, c.Get, c.List)
	// Output:
	// second create: true
	// swap: <nil>
	// stale swap: true
	// head = log/0002
	// head 8
	// log/0001 11
	// requests: 5 puts, 1 gets, 1 lists
}
