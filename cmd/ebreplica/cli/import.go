package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/replica"
	"github.com/ebreplica/ebreplica/store"
)

var importCmd = &command{
	name:    "import",
	args:    "[FILE|-]",
	summary: `bulk write JSON lines {"key":"..","value":".."} ("value_b64" for binary), in batches`,
	help: `Reads FILE, or stdin when FILE is - or omitted: one JSON object per line,
{"key":"..","value":".."} or {"key":"..","value_b64":"<standard base64>"},
the format export writes. Blank lines are skipped; a later line for the same
key wins.

The whole input is checked before anything is written: a malformed line
(bad JSON, unknown field, invalid key, value over the limit) exits 1 naming
its line number, and nothing is imported. Input that is not a regular file
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
	total, err := readRecords(ctx, src, label, nil)
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
	var batch []importOp
	var batchBytes, done int
	flush := func() error {
		if err := writeBatch(ctx, r, batch); err != nil {
			return err
		}
		done += len(batch)
		batch, batchBytes = batch[:0], 0
		return nil
	}
	n, err := readRecords(ctx, in, label, func(key string, value []byte) error {
		batch = append(batch, importOp{key, value})
		batchBytes += len(key) + len(value)
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
		f, err := os.Open(name)
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
	key   string
	value []byte
}

// writeBatch writes ops in one transaction, splitting it when it is too
// large for one.
func writeBatch(ctx context.Context, r *replica.Replica, ops []importOp) error {
	if len(ops) == 0 {
		return nil
	}
	err := r.Batch(ctx, func(b *replica.Batch) error {
		for _, op := range ops {
			b.Put(op.key, op.value)
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

// readRecords reads JSON lines from in, checks each, and calls fn (when not
// nil) with each record in order. It returns the number of records. An
// error names the line (label line N).
func readRecords(ctx context.Context, in io.Reader, label string, fn func(key string, value []byte) error) (int, error) {
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
		key, value, err := parseRecord(line)
		if err != nil {
			return bad("%v", err)
		}
		n++
		if fn != nil {
			if err := fn(key, value); err != nil {
				return n, err
			}
		}
	}
}

func parseRecord(line []byte) (string, []byte, error) {
	var rec importRecord
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return "", nil, fmt.Errorf("not a record {\"key\",\"value\"}: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", nil, errors.New("more than one JSON value on the line")
	}
	if rec.Key == nil {
		return "", nil, errors.New(`no "key"`)
	}
	if err := replica.ValidateKey(*rec.Key); err != nil {
		return "", nil, errors.New(trimLib(err))
	}
	v, err := rec.bytes()
	if err != nil {
		return "", nil, err
	}
	if len(v) > replica.DefaultMaxValueSize {
		return "", nil, fmt.Errorf("value too large: the value of %q is %d bytes, limit %d", *rec.Key, len(v), replica.DefaultMaxValueSize)
	}
	return *rec.Key, v, nil
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
