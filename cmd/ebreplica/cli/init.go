package cli

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/azremote"
	"github.com/ebreplica/ebreplica/remote/format"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
	"github.com/ebreplica/ebreplica/remote/s3remote"
	"github.com/ebreplica/ebreplica/remote/sealremote"
	"github.com/ebreplica/ebreplica/replica"
)

var initCmd = &command{
	name:    "init",
	summary: "create the replica in DIR, bound to the remote",
	help: `URL is file:///abs/path (or a bare path, made absolute), s3://bucket/prefix
(query parameters endpoint=, region=, path_style=true), gs://bucket/prefix
or az://container/prefix. mem:// (in-process memory, for tests inside one
program) is refused: it would be gone when this command exits.
The server must honour conditional writes (If-None-Match and If-Match):
init checks that on a scratch object it deletes, and refuses a server that
ignores them. S3 limits object names to 1,024 bytes, the prefix included:
an s3:// prefix may have at most 961 bytes, and parts of at most 255
bytes between slashes.
--encrypt --key-file F (or $EBREPLICA_KEY_FILE) makes the first replica of
an encrypted store: a random data key, wrapped for F's device, seals every
object body written to the remote. A later device of an encrypted store
gives --key-file F once a device of the store ran key add with its
recipient. The replica records F's path (never the key) and reads it at
each command that syncs (see help key).
--policy PREFIX=NAME binds keys starting with PREFIX to the merge policy
NAME (lww, mv, counter, set, json or json-mv); an empty PREFIX (--policy
=mv) sets the default. Prints the new replica's id.`,
	flags: []flagDef{
		{name: "remote", value: true, need: true, arg: "URL", usage: "the remote store: file:///abs/path or a path, s3://, gs:// or az://bucket/prefix"},
		{name: "policy", value: true, multi: true, arg: "PREFIX=NAME", usage: "merge policy for keys with PREFIX: lww, mv, counter, set, json or json-mv (repeatable)"},
		{name: "encrypt", usage: "make the new store encrypted: every object body sealed, the data key wrapped for --key-file's device"},
		keyFileFlag,
	},
	maxArgs: 0,
	run:     runInit,
}

// openRemote opens the backend init binds to (a test swaps in a server
// that ignores conditional writes, which no URL names).
var openRemote = remoteurl.Open

type initOutput struct {
	ReplicaID    string `json:"replica_id"`
	Remote       string `json:"remote"`
	CreatedStore bool   `json:"created_store"`
	Dir          string `json:"dir"`
}

func runInit(ctx context.Context, e *env) error {
	raw, ok := e.flags.value("remote")
	if !ok {
		return usageErrorf("missing --remote URL")
	}
	remoteURL, err := normalizeRemote(raw)
	if err != nil {
		return err
	}
	names, err := parsePolicies(e.flags.all("policy"))
	if err != nil {
		return err
	}
	specs := make([]string, 0, len(names))
	for prefix, name := range names {
		specs = append(specs, prefix+"="+name)
	}
	reg, err := merge.ParsePolicies(specs, nil)
	if err != nil {
		return usageErrorf("--policy: %v", err)
	}
	if msg := s3CredentialsProblem(remoteURL); msg != "" {
		return errorf(nil, "remote %s: %s", remoteURL, msg)
	}
	b, err := openRemote(ctx, remoteURL)
	if err == nil {
		b = remote.WithTimeout(b, e.timeout)
	}
	if err != nil {
		return errorf(err, "remote %s: %s", remoteURL, remoteProblem(remoteURL, err))
	}
	_, keyGiven := keyFilePath(e)
	var keys *sealremote.Keys
	var keyFile string
	var encrypt bool
	if len(specs) == 0 || keyGiven || e.flags.bool("encrypt") {
		// A later replica adopts the store's policies, and its encryption.
		m, ok, err := format.ReadManifest(ctx, b)
		if err != nil {
			return errorf(err, "remote %s: %s", remoteURL, remoteProblem(remoteURL, err))
		}
		if ok && len(specs) == 0 {
			if reg, err = m.Registry(nil); err != nil {
				return errorf(err, "the store at %s uses %v: %s", remoteURL, m.Policies, trimLib(err))
			}
		}
		if keys, keyFile, encrypt, err = initKeys(ctx, e, b, remoteurl.Redact(remoteURL), m, ok); err != nil {
			return err
		}
	}

	undo, err := snapshotDir(e.dir)
	if err != nil {
		return errorf(err, "creating replica in %s: %v", e.dir, err)
	}
	opts := e.options()
	opts.Policies = reg
	opts.Backend = b
	opts.Keys, opts.KeyFile, opts.Encrypt = keys, keyFile, encrypt
	r, err := replica.Init(e.dir, remoteURL, opts)
	if err != nil {
		if errors.Is(err, replica.ErrAlreadyInitialized) || errors.Is(err, replica.ErrLocked) {
			return openError(e.dir, err)
		}
		undo()
		return errorf(err, "creating replica in %s: %s", e.dir, trimLib(err))
	}
	// Bind to the store: probe that the server honours conditional writes,
	// create the store's manifest (first replica) or adopt it, and register
	// this replica's id. Nothing stays behind on failure.
	created, err := r.Connect(ctx)
	if err != nil {
		r.Close()
		undo()
		if errors.Is(err, remote.ErrNoConditionalWrites) {
			return errorf(err, "%s; ebreplica needs create-only (If-None-Match) and compare-and-swap (If-Match) writes to keep concurrent pushes from overwriting each other, so it cannot keep a store there (nothing was created)",
				strings.TrimPrefix(err.Error(), "remote: "))
		}
		return errorf(err, "remote %s: %s", remoteURL, trimLib(err))
	}
	e.rep = r
	if e.json {
		return writeJSON(e.stdout, initOutput{ReplicaID: r.ID().String(), Remote: remoteurl.Redact(remoteURL), CreatedStore: created, Dir: e.dir})
	}
	o := newOutput(e.stdout)
	o.printf("%s\n", r.ID())
	return o.flush()
}

// snapshotDir notes what dir holds now and returns a function that removes
// whatever was added since, so a failed init leaves the file system as it
// found it: when dir did not exist, its highest ancestor that did not exist
// either goes; else the entries of dir that are new.
func snapshotDir(dir string) (undo func(), err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		top := filepath.Clean(dir)
		for {
			parent := filepath.Dir(top)
			if parent == top {
				break
			}
			if _, err := os.Lstat(parent); !errors.Is(err, fs.ErrNotExist) {
				break
			}
			top = parent
		}
		return func() { os.RemoveAll(top) }, nil
	}
	if err != nil {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return nil, errors.New("not a directory")
		}
		return nil, err
	}
	had := map[string]bool{}
	for _, en := range entries {
		had[en.Name()] = true
	}
	return func() {
		now, _ := os.ReadDir(dir)
		for _, en := range now {
			if !had[en.Name()] {
				os.RemoveAll(filepath.Join(dir, en.Name()))
			}
		}
	}, nil
}

// normalizeRemote checks a remote URL and returns the form to record: a
// bare path becomes an absolute file:// URL.
func normalizeRemote(raw string) (string, error) {
	if raw == "" {
		return "", usageErrorf("--remote must not be empty")
	}
	if !strings.Contains(raw, "://") {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return "", usageErrorf("remote path %q: %v", raw, err)
		}
		return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", usageErrorf("remote %q is not a URL", raw)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return "", usageErrorf("remote %q: a file URL names a local path, file:///abs/path", raw)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return "", usageErrorf("remote %q: expected file:///abs/path", raw)
		}
		return (&url.URL{Scheme: "file", Path: u.Path}).String(), nil
	case "s3":
		p, err := s3remote.ParseURL(raw)
		if err != nil {
			return "", usageErrorf("remote: %s", strings.TrimPrefix(err.Error(), "s3remote: "))
		}
		if err := checkS3Prefix(p.Prefix); err != nil {
			return "", err
		}
		return raw, nil
	case "gs":
		p, err := gcsremote.ParseURL(raw)
		if err != nil {
			return "", usageErrorf("remote: %s", strings.TrimPrefix(err.Error(), "gcsremote: "))
		}
		if err := checkRoom("GCS", p.Prefix, gcsremote.MaxKeyLenUnder(p.Prefix), gcsremote.MaxNameLen); err != nil {
			return "", err
		}
		return raw, nil
	case "az":
		p, err := azremote.ParseURL(raw)
		if err != nil {
			return "", usageErrorf("remote: %s", strings.TrimPrefix(err.Error(), "azremote: "))
		}
		if err := checkRoom("Azure Blob Storage", p.Prefix, azremote.MaxKeyLenUnder(p.Prefix), azremote.MaxNameLen); err != nil {
			return "", err
		}
		return raw, nil
	case "mem":
		// In-process memory lives as long as one process: a replica bound
		// to it would find an empty remote at its next command, and then
		// misjudge what it sees (issue 15: it advised reidentify).
		return "", usageErrorf("remote %q: mem:// is in-process memory, for tests inside one program, and is gone when this command exits; use a directory (file:///abs/path or a path) or s3://, gs://, az://", raw)
	}
	return "", usageErrorf("remote %q: unsupported scheme %q (use file://, s3://, gs:// or az://)", raw, u.Scheme)
}

// maxOwnKeyLen is the longest object name ebreplica writes below a store's
// prefix (see remote/layout.go): quarantine/log-<20-digit position>-<19-digit
// unix nanoseconds>-<6 hex>, 62 bytes. The others are shorter:
// replicas/<uuid>.json 50, snap/<20 digits>/part-<12 hex>-NNNN 48,
// probe-<32 hex> 38, snap/<20 digits>/index 31, log/<20 digits> 24.
const maxOwnKeyLen = 62

// checkS3Prefix refuses a store prefix that S3 cannot hold ebreplica's
// objects under: S3 limits an object name, prefix included, to
// s3remote.MaxNameLen bytes, and servers that keep objects as files limit
// each part between slashes to s3remote.MaxSegmentLen.
func checkS3Prefix(prefix string) error {
	if err := s3remote.CheckPrefix(prefix); err != nil {
		return usageErrorf("remote: %s", strings.TrimPrefix(err.Error(), "s3remote: "))
	}
	return checkRoom("S3", prefix, s3remote.MaxKeyLenUnder(prefix), s3remote.MaxNameLen)
}

// checkRoom refuses a prefix that leaves less room than ebreplica's own
// names need below it, on a service whose names have at most maxName bytes.
func checkRoom(service, prefix string, room, maxName int) error {
	if room >= maxOwnKeyLen {
		return nil
	}
	shown := prefix
	if len(shown) > 40 {
		shown = strings.ToValidUTF8(shown[:40], "") + "..."
	}
	return usageErrorf("remote: the prefix %q is %d bytes, too long: %s allows object names of at most %d bytes, the prefix and its \"/\" included, and ebreplica's own names below it take up to %d (quarantine/log-<position>-<time>-<nonce>), so the prefix may have at most %d bytes",
		shown, len(prefix), service, maxName, maxOwnKeyLen, maxName-1-maxOwnKeyLen)
}

// policyNames are the merge policies --policy accepts.
var policyNames = []string{"lww", "mv", "counter", "set", "json", "json-mv"}

// parsePolicies parses --policy PREFIX=NAME values into prefix -> name. The
// name is after the last "=", so a prefix may hold "=".
func parsePolicies(specs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		i := strings.LastIndexByte(s, '=')
		if i < 0 {
			return nil, usageErrorf("--policy %q: expected PREFIX=NAME (an empty PREFIX sets the default)", s)
		}
		prefix, name := s[:i], s[i+1:]
		known := false
		for _, n := range policyNames {
			known = known || n == name
		}
		if !known {
			return nil, usageErrorf("--policy %q: unknown policy %q (use %s)", s, name, strings.Join(policyNames, ", "))
		}
		if len(prefix) > replica.MaxKeyLen || !utf8.ValidString(prefix) {
			return nil, usageErrorf("--policy %q: the prefix must be valid UTF-8 of at most %d bytes", s, replica.MaxKeyLen)
		}
		if prev, ok := out[prefix]; ok && prev != name {
			return nil, usageErrorf("--policy: prefix %q given two policies, %s and %s", prefix, prev, name)
		}
		out[prefix] = name
	}
	return out, nil
}
