package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

var importCmd = &command{
	name:    "import",
	args:    "[FILE|-]",
	summary: `bulk write JSON lines {"key":"..","value":".."} ("value_b64" for binary), in batches`,
	help: `Reads FILE, or stdin when FILE is - or omitted: one JSON object per line,
{"key":"..","value":".."} or {"key":"..","value_b64":"<standard base64>"},
the format export writes. A counter key's line is {"key":"..","counter":N}
and a set key's {"key":"..","members":[".."]}: import makes the key hold
that value (adding the difference, adding and removing members). A json or
json-mv document key's line is {"key":"..","doc":{..}}, the document in
operation form as export writes it: {"$counter":N} is a counter field,
{"$set":[".."]} a set field, "$$name" the field "$name", anything else a
value or a nested object. Import makes the key read exactly as that
document, each field of that kind: a whole-document write, so on a key that
exists the fields the line leaves out are removed, a counter is set to N, a
set comes to hold exactly those members (observed-remove: what this replica
has seen goes), and only the fields that change are written. A "doc" is a state,
not a change: $inc, $add and $remove are refused. A json key also takes
{"key":"..","value":"<JSON object>"}, written as a put (its names are data,
a counter or set field given a new number or array keeps its kind). Blank
lines are skipped; a later line for the same key wins.

The whole input is checked before anything is written: a malformed line
(bad JSON, unknown field, invalid key, value over the limit, a form that
does not fit the key's merge policy, such as a "value" for a counter key or
a json key's value that is not a JSON object, a "doc" that is not a JSON
object or holds a malformed operation) exits 1 naming its line number, and
nothing is imported. Input that is not a regular file
(stdin, a pipe) is spooled to a temporary file for the check, so memory use
stays bounded whatever its size. The records are then written in atomic
batches of up to 1000 records or 4 MiB; should a write fail midway (disk
error, interrupt), the batches before it stay written and the message says
how many records were imported.`,
	maxArgs: 1,
	run:     runImport,
}

// Batch limits for import: a batch is one transaction.
const (
	importBatchRecords = 1000
	importBatchBytes   = 4 << 20
)

// maxLineLen bounds one input line: a value at the limit, base64-encoded or
// with every byte escaped, plus the key, fits.
const maxLineLen = 6*replica.DefaultMaxValueSize + 64<<10

type importRecord struct {
	Key *string `json:"key"`
	jsonValue
	Counter *int64    `json:"counter,omitempty"` // a counter key's value
	Members *[]string `json:"members,omitempty"` // a set key's members
	// Doc is a json key's document in operation form (JSON null is kept
	// as "null", so that a present null is refused, not taken as absent).
	Doc json.RawMessage `json:"doc,omitempty"`
}

func runImport(ctx context.Context, e *env) error {
	name := "-"
	if len(e.args) == 1 {
		name = e.args[0]
	}
	r, err := e.open()
	if err != nil {
		return err
	}

	in, label, cleanup, err := importInput(e, name)
	if err != nil {
		return err
	}
	defer cleanup()

	// Pass 1: check everything; nothing is written. A regular file is read
	// twice, from where it stands now; anything else is copied aside while
	// it is checked, and the copy is read the second time.
	var src io.Reader = in
	var spool *os.File
	var start int64
	if fi, err := in.Stat(); err == nil && fi.Mode().IsRegular() {
		start, err = in.Seek(0, io.SeekCurrent)
		if err != nil {
			return errorf(err, "reading %s: %v", label, err)
		}
	} else {
		spool, err = os.CreateTemp("", "ebreplica-import-*.jsonl")
		if err != nil {
			return errorf(err, "creating a temporary file to check the input: %v", err)
		}
		defer func() { spool.Close(); os.Remove(spool.Name()) }()
		src = io.TeeReader(in, spool)
	}
	policy := func(key string) string {
		if name, lib := e.libraryPolicy(r, key); lib {
			return "library:" + name
		}
		return r.Policies().For(key).Name()
	}
	total, err := readRecords(ctx, src, label, policy, nil)
	if err != nil {
		return err
	}
	if spool != nil {
		in, start = spool, 0
	}
	if _, err := in.Seek(start, io.SeekStart); err != nil {
		return errorf(err, "rewinding %s: %v", label, err)
	}

	// Pass 2: write, in batches.
	bar := e.newBar("import", "records", int64(total), false)
	defer bar.finish()
	var batch []importOp
	var batchBytes, done int
	flush := func() error {
		if err := writeBatch(ctx, r, batch); err != nil {
			return err
		}
		done += len(batch)
		bar.add(len(batch))
		batch, batchBytes = batch[:0], 0
		return nil
	}
	n, err := readRecords(ctx, in, label, policy, func(op importOp) error {
		if op.counter != nil || op.members != nil {
			// Counter and set keys are not batch writes: the batch
			// before goes first, so that a later line still wins.
			if err := flush(); err != nil {
				return err
			}
			if err := writeCRDT(ctx, r, op); err != nil {
				return err
			}
			done++
			bar.add(1)
			return nil
		}
		batch = append(batch, op)
		batchBytes += len(op.key) + len(op.value) + len(op.doc)
		if len(batch) >= importBatchRecords || batchBytes >= importBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err == nil && n != total {
		err = fmt.Errorf("%s changed while it was imported: %d records checked, %d read", label, total, n)
	}
	if err != nil {
		var msg string
		var ce *cliError
		switch {
		case errors.As(err, &ce):
			msg = ce.msg
		case errors.Is(err, context.Canceled):
			msg = "interrupted"
		default:
			msg = trimLib(err)
		}
		return errorf(err, "%s; %d of %d records were imported before the failure", msg, done, total)
	}
	if e.json {
		return writeJSON(e.stdout, struct {
			Imported int `json:"imported"`
		}{done})
	}
	o := newOutput(e.stdout)
	o.printf("imported %d\n", done)
	return o.flush()
}

// importInput opens the named input ("-": stdin) as a file. Stdin that is
// not an *os.File (tests) is read through a pipe-like temporary file.
func importInput(e *env, name string) (f *os.File, label string, cleanup func(), err error) {
	if name != "-" {
		f, err := os.Open(e.path(name))
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			pe.Path = name // as given, through the server too
		}
		if err != nil {
			return nil, "", nil, errorf(err, "opening %s: %v", name, err)
		}
		return f, name, func() { f.Close() }, nil
	}
	if f, ok := e.stdin.(*os.File); ok {
		return f, "stdin", func() {}, nil
	}
	// Not a file: spool it now (this is the check's copy as well).
	tmp, err := os.CreateTemp("", "ebreplica-stdin-*.jsonl")
	if err != nil {
		return nil, "", nil, errorf(err, "creating a temporary file for stdin: %v", err)
	}
	cleanup = func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, e.stdin); err != nil {
		cleanup()
		return nil, "", nil, errorf(err, "reading stdin: %v", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		cleanup()
		return nil, "", nil, errorf(err, "reading stdin: %v", err)
	}
	return tmp, "stdin", cleanup, nil
}

type importOp struct {
	key     string
	value   []byte
	counter *int64   // a counter key's value
	members []string // a set key's members (non-nil for a set key)
	doc     []byte   // a json key's document in operation form (Batch.PutDoc)
}

// writeCRDT makes a counter or set key hold op's value: a counter gets the
// difference added, a set the missing members added and the others removed.
func writeCRDT(ctx context.Context, r *replica.Replica, op importOp) error {
	if op.counter != nil {
		cur, err := r.CounterValue(op.key)
		if err != nil && !errors.Is(err, replica.ErrNotFound) {
			return err
		}
		if d := *op.counter - cur; d != 0 || errors.Is(err, replica.ErrNotFound) {
			_, err = r.CounterAdd(ctx, op.key, d)
		}
		return err
	}
	cur, err := r.SetMembers(op.key)
	if err != nil && !errors.Is(err, replica.ErrNotFound) {
		return err
	}
	want := map[string]bool{}
	for _, m := range op.members {
		want[m] = true
	}
	var gone []string
	for _, m := range cur {
		if !want[m] {
			gone = append(gone, m)
		}
	}
	if len(op.members) > 0 {
		if err := r.SetAdd(ctx, op.key, op.members...); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		return r.SetRemove(ctx, op.key, gone...)
	}
	return nil
}

// writeBatch writes ops in one transaction, splitting it when it is too
// large for one.
func writeBatch(ctx context.Context, r *replica.Replica, ops []importOp) error {
	if len(ops) == 0 {
		return nil
	}
	err := r.Batch(ctx, func(b *replica.Batch) error {
		for _, op := range ops {
			if op.doc != nil {
				b.PutDoc(op.key, op.doc)
			} else {
				b.Put(op.key, op.value)
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrTooBig) && len(ops) > 1 {
		half := len(ops) / 2
		if err := writeBatch(ctx, r, ops[:half]); err != nil {
			return err
		}
		return writeBatch(ctx, r, ops[half:])
	}
	return err
}

// readRecords reads JSON lines from in, checks each (its form against the
// merge policy that policy names for its key), and calls fn (when not nil)
// with each record in order. It returns the number of records. An error
// names the line (label line N).
func readRecords(ctx context.Context, in io.Reader, label string, policy func(key string) string, fn func(op importOp) error) (int, error) {
	br := bufio.NewReaderSize(in, 256<<10)
	n := 0
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br)
		if err == io.EOF {
			return n, nil
		}
		bad := func(format string, args ...any) (int, error) {
			msg := fmt.Sprintf("%s line %d: %s", label, lineNo, fmt.Sprintf(format, args...))
			if fn == nil {
				msg += " (nothing imported)"
			}
			return n, errorf(nil, "%s", msg)
		}
		if errors.Is(err, errLineTooLong) {
			return bad("longer than %d bytes", maxLineLen)
		}
		if err != nil {
			return n, errorf(err, "reading %s: %v", label, err)
		}
		if lineNo%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if !utf8.Valid(line) {
			return bad("not valid UTF-8 (binary values go in \"value_b64\")")
		}
		op, err := parseRecord(line)
		if err == nil {
			err = fitsPolicy(op, policy(op.key))
		}
		if err != nil {
			return bad("%v", err)
		}
		n++
		if fn != nil {
			if err := fn(op); err != nil {
				return n, err
			}
		}
	}
}

func parseRecord(line []byte) (importOp, error) {
	var rec importRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return importOp{}, fmt.Errorf("not a record {\"key\",\"value\"}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return importOp{}, errors.New("more than one JSON value on the line")
	}
	if rec.Key == nil {
		return importOp{}, errors.New(`no "key"`)
	}
	if err := replica.ValidateKey(*rec.Key); err != nil {
		return importOp{}, errors.New(trimLib(err))
	}
	op := importOp{key: *rec.Key, counter: rec.Counter}
	switch {
	case rec.Doc != nil && (rec.Counter != nil || rec.Members != nil || rec.Value != nil || rec.ValueB64 != nil):
		return importOp{}, errors.New(`has "doc" and one of "value", "counter" and "members"`)
	case rec.Counter != nil && (rec.Members != nil || rec.Value != nil || rec.ValueB64 != nil),
		rec.Members != nil && (rec.Value != nil || rec.ValueB64 != nil):
		return importOp{}, errors.New(`has more than one of "value", "counter" and "members"`)
	case rec.Doc != nil:
		return parseDoc(op, rec.Doc)
	case rec.Counter != nil:
		return op, nil
	case rec.Members != nil:
		op.members = append([]string{}, *rec.Members...)
		for _, m := range op.members {
			// The engine's rule for members (SetAdd), checked up front.
			if m == "" || !utf8.ValidString(m) || strings.ContainsAny(m, "\r\n") {
				return importOp{}, fmt.Errorf("set member %q: must be non-empty valid UTF-8 without newlines", m)
			}
		}
		return op, nil
	}
	v, err := rec.bytes()
	if err != nil {
		return importOp{}, err
	}
	if len(v) > replica.DefaultMaxValueSize {
		return importOp{}, fmt.Errorf("value too large: the value of %q is %d bytes, limit %d", *rec.Key, len(v), replica.DefaultMaxValueSize)
	}
	op.value = v
	return op, nil
}

// checkDot is the dot of the check of a "doc" (parseDoc) against the empty
// document, which writes nothing.
var checkDot = clock.Dot{Replica: clock.ReplicaID{1}, Counter: 1}

// parseDoc checks a line's "doc": a JSON object in operation form that
// merge.DocState.ReplaceOps takes (what it takes on the empty document it
// takes on any), within the value limit.
func parseDoc(op importOp, raw json.RawMessage) (importOp, error) {
	doc := bytes.TrimSpace(raw)
	if len(doc) == 0 || doc[0] != '{' {
		what := "not a JSON object"
		switch {
		case string(doc) == "null":
			what = "null"
		case len(doc) > 0 && doc[0] == '[':
			what = "an array"
		case len(doc) > 0 && doc[0] == '"':
			what = "a string"
		}
		return importOp{}, fmt.Errorf(`"doc" of %q is %s: it must be a JSON object, the document in operation form as export writes it`, op.key, what)
	}
	if len(doc) > replica.DefaultMaxValueSize {
		return importOp{}, fmt.Errorf("document too large: the doc of %q is %d bytes, limit %d", op.key, len(doc), replica.DefaultMaxValueSize)
	}
	if _, err := (merge.DocState{}).ReplaceOps(checkDot, 0, doc); err != nil {
		return importOp{}, fmt.Errorf(`"doc" of %q: %s`, op.key, strings.TrimPrefix(err.Error(), "merge: "))
	}
	op.doc = doc
	return op, nil
}

// fitsPolicy checks that op's form suits its key's merge policy: a counter
// key takes "counter", a set key "members", a json key a JSON object as its
// value, any other key a value.
func fitsPolicy(op importOp, policy string) error {
	if name, lib := strings.CutPrefix(policy, "library:"); lib {
		return refuseLibraryWrite(op.key, name)
	}
	switch {
	case policy == merge.NameCounter && op.counter == nil:
		return fmt.Errorf(`key %q is a counter (policy counter): its line is {"key":..,"counter":N}, as export writes it`, op.key)
	case policy == merge.NameSet && op.members == nil:
		return fmt.Errorf(`key %q is a set (policy set): its line is {"key":..,"members":[..]}, as export writes it`, op.key)
	case op.counter != nil && policy != merge.NameCounter:
		return fmt.Errorf(`key %q has a "counter" but its policy is %s, not counter`, op.key, policy)
	case op.members != nil && policy != merge.NameSet:
		return fmt.Errorf(`key %q has "members" but its policy is %s, not set`, op.key, policy)
	case op.doc != nil && policy != merge.NameJSON && policy != merge.NameJSONMV:
		return fmt.Errorf(`key %q has a "doc" but its policy is %s, not json or json-mv`, op.key, policy)
	case op.doc == nil && (policy == merge.NameJSON || policy == merge.NameJSONMV):
		if !isJSONObject(op.value) {
			return fmt.Errorf(`key %q is a json document (policy %s): its value must be a JSON object (or its line {"key":..,"doc":{..}}, as export writes it)`, op.key, policy)
		}
	}
	return nil
}

func isJSONObject(v []byte) bool {
	t := bytes.TrimSpace(v)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline; io.EOF at the end.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > maxLineLen {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}
