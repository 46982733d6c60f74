package cli

import (
	"context"
	"strconv"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

var getCmd = &command{
	name:    "get",
	args:    "KEY",
	summary: "print KEY's value, its exact bytes; --all: every concurrent version",
	help: `Without --json the value's bytes go to stdout exactly, nothing added.
--json prints {"key","value"}, or {"key","value_b64"} when the value is not
UTF-8. A missing key exits 3; a key with concurrent versions under the mv
policy exits 4 (see them with get --all).

--all prints every version stored for KEY, tombstones included, one per line:
the writing replica's short id, the HLC time, the value quoted or (deleted),
and "winner" on the version the key's policy reads. With --json, one object
per line: {"value" or "value_b64","deleted","replica_id","hlc"} (hlc as a
decimal string: it exceeds 2^53) plus
"counter", "time" (the HLC as text) and "winner". For a key under the json
policy each version shows the document its own state holds ({} for a
cleared one); get prints their merge.`,
	flags: []flagDef{
		{name: "all", usage: "print every concurrent version, tombstones included"},
	},
	minArgs: 1,
	maxArgs: 1,
	run:     runGet,
}

type getOutput struct {
	Key string `json:"key"`
	jsonValue
}

type versionOutput struct {
	jsonValue
	Deleted   bool   `json:"deleted"`
	ReplicaID string `json:"replica_id"`
	HLC       uint64 `json:"hlc,string"` // a string: an HLC exceeds 2^53, where JSON readers lose digits
	Time      string `json:"time"`
	Counter   uint64 `json:"counter"`
	Winner    bool   `json:"winner"`
}

func runGet(ctx context.Context, e *env) error {
	key := e.args[0]
	if err := replica.ValidateKey(key); err != nil {
		return errorf(err, "%s", trimLib(err))
	}
	r, err := e.open()
	if err != nil {
		return err
	}
	if _, lib := e.libraryPolicy(r, key); e.flags.bool("all") || lib {
		// A key under a library policy the command line does not have
		// has no value it can compute: its raw versions are what it shows.
		return getAll(e, r, key)
	}
	v, err := r.Get(key)
	if err != nil {
		return keyError(key, err)
	}
	if e.json {
		return writeJSON(e.stdout, getOutput{Key: key, jsonValue: encodeValue(v)})
	}
	o := newOutput(e.stdout)
	o.write(v)
	return o.flush()
}

func getAll(e *env, r *replica.Replica, key string) error {
	vs, err := r.Versions(key)
	if err != nil {
		return keyError(key, err)
	}
	pol := r.Policies().For(key).Name()
	isDoc := pol == merge.NameJSON || pol == merge.NameJSONMV
	o := newOutput(e.stdout)
	for _, v := range vs {
		if isDoc && !v.Deleted {
			v.Value = versionDocument(v.Value)
		}
		if e.json {
			out := versionOutput{Deleted: v.Deleted, ReplicaID: v.Replica.String(), HLC: uint64(v.Time),
				Time: v.Time.String(), Counter: v.Counter, Winner: v.Winner}
			out.jsonValue = encodeValue(v.Value)
			o.json(out)
			continue
		}
		val := "(deleted)"
		if !v.Deleted {
			val = strconv.Quote(string(v.Value))
		}
		o.printf("%s %s %s", v.Replica.Short(), v.Time, val)
		if v.Winner {
			o.printf(" winner")
		}
		o.printf("\n")
	}
	return o.flush()
}

// versionDocument is the document one version of a json key holds: its
// state as JSON ({} when it has no fields), or the raw bytes when they are
// not a document state.
func versionDocument(state []byte) []byte {
	s, err := merge.DecodeDoc(state)
	if err != nil {
		return state
	}
	if doc, ok := s.Document(); ok {
		return doc
	}
	return []byte("{}")
}
