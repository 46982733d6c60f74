package replica_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/ebreplica/ebreplica/remote/fileremote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/replica"
)

// An encrypted store: the first device creates it with Encrypt and its
// key; a second device reads it once the first has added its recipient.
func ExampleOptions_encrypt() {
	ctx := context.Background()
	bucket, _ := os.MkdirTemp("", "bucket")
	defer os.RemoveAll(bucket)
	be, err := fileremote.New(bucket, nil)
	if err != nil {
		log.Fatal(err)
	}
	laptop, _ := sealremote.NewKeys() // or sealremote.LoadKeyFile(path)
	phone, _ := sealremote.NewKeys()

	a, err := replica.Init("", "file://"+bucket, &replica.Options{InMemory: true, Backend: be, Keys: laptop, Encrypt: true})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	if err := a.Put(ctx, "diary/today", []byte("dear diary")); err != nil {
		log.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		log.Fatal(err)
	}

	b, err := replica.Init("", "file://"+bucket, &replica.Options{InMemory: true, Backend: be, Keys: phone})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	_, err = b.Connect(ctx)
	fmt.Println("before key add:", err != nil)

	sealed, err := a.Backend(ctx) // the sealing backend of the store
	if err != nil {
		log.Fatal(err)
	}
	if _, err := sealed.(*sealremote.Backend).AddRecipient(ctx, phone.Recipient()); err != nil {
		log.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		log.Fatal(err)
	}
	v, _ := b.Get("diary/today")
	fmt.Println("phone reads:", string(v))
	// Output:
	// before key add: true
	// phone reads: dear diary
}
