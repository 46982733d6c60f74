// Command gen wrote testdata/format1 with the format-1 store code (commit
// d6325c0): go run ./internal/engine/testdata/format1/gen OUT (OUT/remote
// must exist); then copy OUT/replica, OUT/remote and OUT/expect.json here,
// without Badger's DISCARD file (recreated on open). It lives under testdata
// so the go tool ignores it: the code after format 1 would write format 2.
package main

import (
	"context"
	"encoding/json"

	"fmt"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/store"
	"os"
	"path/filepath"

	"github.com/ebreplica/ebreplica/internal/engine"
	"github.com/ebreplica/ebreplica/remote/fileremote"
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func main() {
	out := os.Args[1]
	ctx := context.Background()
	b, err := fileremote.New(filepath.Join(out, "remote"), &fileremote.Options{NoSync: true})
	must(err)
	r, err := engine.Init(filepath.Join(out, "replica"), "file://fixture", &engine.Options{Backend: b})
	must(err)
	// 300 keys pushed (clean), in batches.
	must(r.Batch(ctx, func(bt *engine.Batch) error {
		for i := 0; i < 300; i++ {
			bt.Put(fmt.Sprintf("k%03d", i), []byte(fmt.Sprintf("v1-%03d", i)))
		}
		return nil
	}))
	_, err = r.Push(ctx)
	must(err)
	// Dirty: 50 overwritten (some twice, so marks move), 10 deleted, 30 new.
	for i := 0; i < 50; i++ {
		must(r.Put(ctx, fmt.Sprintf("k%03d", i), []byte(fmt.Sprintf("v2-%03d", i))))
	}
	for i := 0; i < 50; i += 5 {
		must(r.Put(ctx, fmt.Sprintf("k%03d", i), []byte(fmt.Sprintf("v3-%03d", i))))
	}
	for i := 50; i < 60; i++ {
		must(r.Delete(ctx, fmt.Sprintf("k%03d", i)))
	}
	must(r.Batch(ctx, func(bt *engine.Batch) error {
		for i := 0; i < 30; i++ {
			bt.Put(fmt.Sprintf("n%03d", i), []byte(fmt.Sprintf("new-%03d", i)))
		}
		return nil
	}))
	fmt.Println("len", r.Len(), "pending", r.Store().OutboxLen())
	must(r.Close())
	dumpFn(out)
}

var dumpFn func(string)

type expect struct {
	Live, Pending int64
	Records       map[string]expRec // key -> record
	Order         []expMark         // the outbox queue from its low mark
	Low           uint64
}

type expRec struct {
	Pos    uint64
	Record []byte // merge.EncodeRecord
	Mark   uint64
	Marked bool
}

type expMark struct {
	Key  string
	Mark uint64
}

func init() {
	dumpFn = func(out string) {
		eng, err := store.OpenBadger(filepath.Join(out, "replica", "data"), store.BadgerOptions{})
		must(err)
		st, err := store.Open(eng, nil)
		must(err)
		e := expect{Live: st.Len(), Pending: st.OutboxLen(), Records: map[string]expRec{}}
		must(st.View(func(v *store.View) error {
			if err := v.Records("", "", func(key string, s store.Stored) (bool, error) {
				b, err := merge.EncodeRecord(s.Record)
				must(err)
				m, ok, err := v.OutboxMark(key)
				must(err)
				e.Records[key] = expRec{Pos: s.Pos, Record: b, Mark: m, Marked: ok}
				return true, nil
			}); err != nil {
				return err
			}
			low, err := v.OutboxLow()
			must(err)
			e.Low = low
			return v.OutboxOrder(low, func(key string, mark uint64) (bool, error) {
				e.Order = append(e.Order, expMark{key, mark})
				return true, nil
			})
		}))
		must(st.Close())
		b, err := json.MarshalIndent(e, "", " ")
		must(err)
		must(os.WriteFile(filepath.Join(out, "expect.json"), b, 0o644))
	}
}
