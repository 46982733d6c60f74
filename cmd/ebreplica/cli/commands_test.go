package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebreplica/ebreplica/clock"
	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/remotetest"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

func TestInit(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	dir := filepath.Join(t.TempDir(), "a")
	r := ok(t, nil, "init", "--dir", dir, "--remote", "file://"+remoteDir)
	id, err := clock.ParseReplicaID(strings.TrimSuffix(r.out(), "\n"))
	if err != nil || !strings.HasSuffix(r.out(), "\n") || strings.Count(r.out(), "\n") != 1 {
		t.Fatalf("init printed %q, want a replica id line (%v)", r.out(), err)
	}
	st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)
	if st["replica_id"] != id.String() || st["remote"] != "file://"+remoteDir {
		t.Fatalf("status after init: %v", st)
	}

	// --json, and a bare path made into an absolute file:// URL.
	dir2 := filepath.Join(t.TempDir(), "b")
	rel, err := filepath.Rel(mustGetwd(t), remoteDir)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeOne(t, ok(t, nil, "--json", "init", "--dir", dir2, "--remote", rel).stdout)
	if _, err := clock.ParseReplicaID(m["replica_id"].(string)); err != nil {
		t.Errorf("replica_id %v: %v", m["replica_id"], err)
	}
	if m["remote"] != "file://"+remoteDir || m["created_store"] != false {
		t.Errorf("init --json = %v; want remote file://%s and created_store false", m, remoteDir)
	}
	if m["replica_id"] == id.String() {
		t.Error("two replicas got one id")
	}
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestInitRemotesAndPolicies(t *testing.T) {
	t.Parallel()
	spaced := filepath.Join(t.TempDir(), "with space")
	plain := t.TempDir()
	withPolicies := t.TempDir()
	for _, p := range []string{spaced} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		want string // recorded remote
	}{
		{[]string{"--remote", "file://localhost" + plain}, "file://" + plain},
		{[]string{"--remote=" + (&url.URL{Scheme: "file", Path: spaced}).String()}, (&url.URL{Scheme: "file", Path: spaced}).String()},
		{[]string{"--remote", withPolicies, "--policy", "=mv", "--policy", "hits/=counter", "--policy", "tags/=set", "--policy", "a=b=lww"}, "file://" + withPolicies},
	} {
		dir := filepath.Join(t.TempDir(), "r")
		m := decodeOne(t, ok(t, nil, append([]string{"init", "--json", "--dir", dir}, tc.args...)...).stdout)
		want := tc.want
		if m["remote"] != want {
			t.Errorf("init %q: remote %v, want %s", tc.args, m["remote"], want)
		}
	}
}

// TestInitS3 binds replicas to both real S3 test servers through s3://
// URLs and the standard AWS environment, and syncs through them.
func TestInitS3(t *testing.T) {
	s3test.ForEach(t, testInitS3)
}

func testInitS3(t *testing.T, srv s3test.Server) {
	_, bucket := srv.NewBucket(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_REGION", srv.Region)
	u := "s3://" + bucket + "/some/prefix?endpoint=" + srv.Endpoint
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	m := decodeOne(t, ok(t, nil, "init", "--json", "--dir", a, "--remote", u, "--policy", "hits/=counter").stdout)
	if m["remote"] != u || m["created_store"] != true {
		t.Fatalf("init: %v", m)
	}
	// A later replica adopts the store's policies; a conflicting one fails.
	failsWith(t, ExitError, nil, []string{"init", "--dir", b, "--remote", u, "--policy", "=mv"}, "other merge policies")
	noDir(t, b)
	m = decodeOne(t, ok(t, nil, "init", "--json", "--dir", b, "--remote", u).stdout)
	if m["created_store"] != false {
		t.Fatalf("second init: %v", m)
	}
	ok(t, nil, "put", "--dir", a, "k", "from-a")
	ok(t, nil, "sync", "--dir", a)
	ok(t, nil, "sync", "--dir", b)
	if got := string(ok(t, nil, "get", "--dir", b, "k").stdout); got != "from-a" {
		t.Fatalf("get on b = %q", got)
	}
	// The longest prefix init takes: ebreplica's longest names below it, the
	// quarantine copies of a repair, make object names of exactly 1,024
	// bytes, which MinIO (like AWS S3) refuses one byte beyond.
	longest := remotetest.LongKey("stores", s3remote.MaxNameLen-1-maxOwnKeyLen)
	ul := "s3://" + bucket + "/" + longest + "?endpoint=" + srv.Endpoint
	d := filepath.Join(t.TempDir(), "d")
	ok(t, nil, "init", "--dir", d, "--remote", ul)
	ok(t, nil, "put", "--dir", d, "k", "v1")
	ok(t, nil, "sync", "--dir", d)
	ok(t, nil, "compact", "--dir", d)
	ok(t, nil, "put", "--dir", d, "k", "v2")
	ok(t, nil, "push", "--dir", d)
	corruptNewestSegment(t, srv, bucket, longest)
	rep := decodeOne(t, ok(t, nil, "verify", "--dir", d, "--repair", "--json").stdout)
	if repaired, _ := rep["repaired"].([]any); rep["ok"] != true || len(repaired) != 1 {
		t.Fatalf("verify --repair under the longest prefix: %v", rep)
	}
	if n := longestName(t, srv, bucket); n != s3remote.MaxNameLen {
		t.Errorf("the longest object name under the longest prefix has %d bytes, want %d (maxOwnKeyLen is off)", n, s3remote.MaxNameLen)
	}
	e := filepath.Join(t.TempDir(), "e")
	failsWith(t, ExitUsage, nil, []string{"init", "--dir", e, "--remote", "s3://" + bucket + "/" + longest + "x?endpoint=" + srv.Endpoint},
		"too long", "at most 961 bytes")
	noDir(t, e)

	// A missing bucket and refused credentials: clear errors, nothing left.
	c := filepath.Join(t.TempDir(), "c")
	failsWith(t, ExitError, nil, []string{"init", "--dir", c, "--remote", "s3://no-such-bucket-ebr/p?endpoint=" + srv.Endpoint}, "no-such-bucket-ebr")
	noDir(t, c)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
	failsWith(t, ExitError, nil, []string{"init", "--dir", c, "--remote", u}, "credentials")
	noDir(t, c)
}

// corruptNewestSegment flips a byte of the newest log segment of the store
// under prefix in bucket.
func corruptNewestSegment(t *testing.T, srv s3test.Server, bucket, prefix string) {
	t.Helper()
	client := srv.Client()
	ctx := t.Context()
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + "/log/")})
	if err != nil || len(out.Contents) == 0 {
		t.Fatalf("list the log: %d objects, %v", len(out.Contents), err)
	}
	key := out.Contents[len(out.Contents)-1].Key
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: key, Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
}

// longestName returns the length of the longest object name in bucket.
func longestName(t *testing.T, srv s3test.Server, bucket string) int {
	t.Helper()
	n := 0
	p := s3.NewListObjectsV2Paginator(srv.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			n = max(n, len(aws.ToString(o.Key)))
		}
	}
	return n
}

// TestMaxOwnKeyLen: maxOwnKeyLen is the longest of ebreplica's own object
// names (the forms of remote/layout.go, at their widest).
func TestMaxOwnKeyLen(t *testing.T) {
	t.Parallel()
	const maxPos = uint64(math.MaxUint64)
	names := []string{
		remote.ManifestKey,
		remote.RegistryKey(clock.NewReplicaID()),
		remote.LogKey(maxPos),
		remote.SnapKey(maxPos),
		fmt.Sprintf("%s%020d/part-%s-%04d", remote.SnapPrefix, maxPos, strings.Repeat("f", 12), 9999),   // remote.PartKey
		fmt.Sprintf("%slog-%020d-%d-%s", remote.QuarantinePref, maxPos, int64(math.MaxInt64), "ffffff"), // replica/verify.go repair
		remote.ProbePrefix + strings.Repeat("f", 32),
	}
	longest := 0
	for _, n := range names {
		longest = max(longest, len(n))
	}
	if longest != maxOwnKeyLen {
		t.Errorf("the longest own object name has %d bytes, maxOwnKeyLen says %d: %q", longest, maxOwnKeyLen, names)
	}
	if help := initCmd.help; !strings.Contains(help, fmt.Sprintf("at most %d bytes", s3remote.MaxNameLen-1-maxOwnKeyLen)) {
		t.Errorf("init's help does not state the longest prefix, %d bytes:\n%s", s3remote.MaxNameLen-1-maxOwnKeyLen, help)
	}
}

func TestInitErrors(t *testing.T) {
	t.Parallel()
	memless := "file://" + filepath.ToSlash(t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "missing --remote"},
		{[]string{"--remote", ""}, "must not be empty"},
		{[]string{"--remote", "http://example.com/x"}, `unsupported scheme "http"`},
		{[]string{"--remote", "file://host/x"}, "file:///abs/path"},
		{[]string{"--remote", "file://?x"}, "file:///abs/path"},
		{[]string{"--remote", "s3://"}, "remote"},
		{[]string{"--remote", "s3://bucket?nope=1"}, "remote"},
		{[]string{"--remote", "s3://key:secret@bucket"}, "credentials"},
		{[]string{"--remote", "s3://bucket/" + strings.Repeat("p/", 480) + "pq?endpoint=http://127.0.0.1:1"}, "too long"},
		{[]string{"--remote", "s3://bucket/" + strings.Repeat("p/", 400) + strings.Repeat("q", 162)}, "at most 961 bytes"},
		{[]string{"--remote", "s3://bucket/a/" + strings.Repeat("p", 256) + "/b"}, "256 bytes between slashes"},
		// mem:// lives as long as one process (issue 15).
		{[]string{"--remote", "mem://"}, "in-process memory"},
		{[]string{"--remote", "mem://x"}, "use a directory (file:///abs/path"},
		{[]string{"--remote", memless, "--policy", "mv"}, "PREFIX=NAME"},
		{[]string{"--remote", memless, "--policy", "a=bogus"}, `unknown policy "bogus"`},
		{[]string{"--remote", memless, "--policy", "a=mv", "--policy", "a=lww"}, "two policies"},
		{[]string{"--remote", memless, "extra"}, `unexpected argument "extra"`},
	} {
		dir := filepath.Join(t.TempDir(), "r")
		failsWith(t, ExitUsage, nil, append([]string{"init", "--dir", dir}, tc.args...), tc.want)
		noDir(t, dir)
	}

	// A DIR that exists and is empty stays empty.
	empty := t.TempDir()
	failsWith(t, ExitUsage, nil, []string{"init", "--dir", empty, "--remote", "ftp://x"})
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("failed init left %v in %s", ents, empty)
	}

	// A DIR that already holds a replica keeps it, id and data.
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "k", "v")
	before := state(t, dir)
	id := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)["replica_id"]
	failsWith(t, ExitError, nil, []string{"init", "--dir", dir, "--remote", "file://" + filepath.ToSlash(t.TempDir())}, "already holds a replica", dir)
	if after := state(t, dir); after != before {
		t.Errorf("state changed by a failed init:\n%s\n%s", before, after)
	}
	st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)
	if st["replica_id"] != id || !strings.HasPrefix(st["remote"].(string), "file://") {
		t.Errorf("status after a failed init: %v", st)
	}

	// DIR is a file.
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	someRemote := "file://" + filepath.ToSlash(t.TempDir())
	failsWith(t, ExitError, nil, []string{"init", "--dir", file, "--remote", someRemote}, file)
	failsWith(t, ExitError, nil, []string{"init", "--dir", filepath.Join(file, "sub"), "--remote", someRemote}, file)
	if b, err := os.ReadFile(file); err != nil || string(b) != "x" {
		t.Errorf("file DIR changed: %q %v", b, err)
	}
}

func TestSnapshotDirUndo(t *testing.T) {
	t.Parallel()
	// A DIR that did not exist is removed, with its parents that did not.
	base := t.TempDir()
	dir := filepath.Join(base, "new", "deeper", "dir")
	undo, err := snapshotDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	undo()
	noDir(t, filepath.Join(base, "new"))
	if _, err := os.Stat(base); err != nil {
		t.Fatal(err)
	}

	// In a DIR that existed, only what was added goes.
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if undo, err = snapshotDir(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	undo()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("after undo: %v", ents)
	}
}

func TestPutGet(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	if r := ok(t, nil, "put", "--dir", dir, "greeting", "hello world"); len(r.stdout) != 0 {
		t.Errorf("put printed %q", r.stdout)
	}
	if got := ok(t, nil, "get", "--dir", dir, "greeting").out(); got != "hello world" {
		t.Errorf("get = %q", got)
	}
	m := decodeOne(t, ok(t, nil, "get", "--json", "--dir", dir, "greeting").stdout)
	if len(m) != 2 || m["key"] != "greeting" || m["value"] != "hello world" {
		t.Errorf("get --json = %v", m)
	}

	// From stdin, overwriting; and an empty value.
	ok(t, []byte("from\nstdin\n"), "put", "--dir", dir, "greeting")
	if got := ok(t, nil, "get", "--dir", dir, "greeting").out(); got != "from\nstdin\n" {
		t.Errorf("get after stdin put = %q", got)
	}
	ok(t, nil, "put", "--dir", dir, "empty", "")
	if r := ok(t, nil, "get", "--dir", dir, "empty"); len(r.stdout) != 0 {
		t.Errorf("empty value read as %q", r.stdout)
	}
	m = decodeOne(t, ok(t, nil, "get", "--json", "--dir", dir, "empty").stdout)
	if m["value"] != "" || m["value_b64"] != nil {
		t.Errorf("get --json of an empty value = %v", m)
	}
	ok(t, nil, "put", "--dir", dir, "unicode ключ ✓", "значение")
	if got := ok(t, nil, "get", "--dir", dir, "unicode ключ ✓").out(); got != "значение" {
		t.Errorf("get unicode = %q", got)
	}

	// Missing key: exit 3, one line.
	failsWith(t, ExitNotFound, nil, []string{"get", "--dir", dir, "nope"}, `"nope"`, "not found")
	// Under --json the error is also one JSON object on stdout (issue 15).
	r := cli(t, nil, "get", "--json", "--dir", dir, "nope")
	if m := decodeOne(t, r.stdout); r.code != ExitNotFound || m["code"] != json.Number("3") ||
		m["error"] != `get: key "nope" not found` || !strings.Contains(r.stderr, "not found") {
		t.Errorf("get --json of a missing key: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	failsWith(t, ExitNotFound, nil, []string{"get", "--all", "--dir", dir, "nope"})
}

func TestBinaryValues(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for name, v := range map[string][]byte{"all-bytes": all, "big": big, "nl": []byte("\n"), "nul": {0}, "cr": []byte("a\r\n")} {
		ok(t, v, "put", "--dir", dir, name)
		if got := ok(t, nil, "get", "--dir", dir, name).stdout; !bytes.Equal(got, v) {
			t.Errorf("%s: got %d bytes back, want %d equal", name, len(got), len(v))
		}
		m := decodeOne(t, ok(t, nil, "get", "--json", "--dir", dir, name).stdout)
		var back []byte
		if s, isText := m["value"].(string); isText {
			back = []byte(s)
		} else {
			b, err := base64.StdEncoding.DecodeString(m["value_b64"].(string))
			if err != nil {
				t.Fatal(err)
			}
			back = b
		}
		if !bytes.Equal(back, v) {
			t.Errorf("%s: get --json did not round-trip", name)
		}
	}
	m := decodeOne(t, ok(t, nil, "get", "--json", "--dir", dir, "all-bytes").stdout)
	if _, isText := m["value"]; isText {
		t.Errorf("non-UTF-8 value given as \"value\": %v", m)
	}

	// And through export and import into another replica.
	exp := ok(t, nil, "export", "--dir", dir).stdout
	dir2 := newReplica(t)
	ok(t, exp, "import", "--dir", dir2)
	if got := ok(t, nil, "get", "--dir", dir2, "big").stdout; !bytes.Equal(got, big) {
		t.Error("big value changed through export | import")
	}
	if exp2 := ok(t, nil, "export", "--dir", dir2).stdout; !bytes.Equal(exp, exp2) {
		t.Error("export of the imported copy differs")
	}
}

func TestGetAll(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	id := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)["replica_id"].(string)
	ok(t, nil, "put", "--dir", dir, "k", "one")
	ok(t, nil, "put", "--dir", dir, "k", "two\n")

	human := ok(t, nil, "get", "--all", "--dir", dir, "k").out()
	fields := strings.Fields(human)
	if strings.Count(human, "\n") != 1 || len(fields) != 4 || fields[0] != id[:8] ||
		fields[2] != `"two\n"` || fields[3] != "winner" {
		t.Errorf("get --all = %q", human)
	}
	vs := decodeLines(t, ok(t, nil, "get", "--all", "--json", "--dir", dir, "k").stdout)
	if len(vs) != 1 {
		t.Fatalf("versions %v", vs)
	}
	v := vs[0]
	// hlc is a decimal string (issue 15): it exceeds 2^53, where a JSON
	// reader that decodes numbers as float64 would lose digits.
	hs, _ := v["hlc"].(string)
	hlc, err := strconv.ParseInt(hs, 10, 64)
	if err != nil || hlc <= 0 || v["value"] != "two\n" || v["deleted"] != false || v["replica_id"] != id ||
		v["time"] != clock.HLC(hlc).String() || fields[1] != v["time"] {
		t.Errorf("get --all --json = %v (%v)", v, err)
	}

	// A tombstone is a version too.
	ok(t, nil, "del", "--dir", dir, "k")
	human = ok(t, nil, "get", "--all", "--dir", dir, "k").out()
	if !strings.Contains(human, "(deleted)") {
		t.Errorf("get --all after del = %q", human)
	}
	v = decodeOne(t, ok(t, nil, "get", "--all", "--json", "--dir", dir, "k").stdout)
	if v["deleted"] != true {
		t.Errorf("tombstone = %v", v)
	}
	bin := []byte{0xff, 0}
	ok(t, bin, "put", "--dir", dir, "b")
	v = decodeOne(t, ok(t, nil, "get", "--all", "--json", "--dir", dir, "b").stdout)
	if v["value_b64"] != base64.StdEncoding.EncodeToString(bin) || v["value"] != nil {
		t.Errorf("binary version = %v", v)
	}
}

func TestDel(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	ok(t, nil, "put", "--dir", dir, "a", "1")
	ok(t, nil, "put", "--dir", dir, "b", "2")
	if r := ok(t, nil, "del", "--dir", dir, "a"); len(r.stdout) != 0 {
		t.Errorf("del printed %q", r.stdout)
	}
	failsWith(t, ExitNotFound, nil, []string{"get", "--dir", dir, "a"})

	// A key that is not live here: exit 3, nothing written.
	before := state(t, dir)
	failsWith(t, ExitNotFound, nil, []string{"del", "--dir", dir, "a"}, `"a"`)
	failsWith(t, ExitNotFound, nil, []string{"del", "--dir", dir, "never"}, `"never"`)
	if after := state(t, dir); after != before {
		t.Errorf("del of a dead key changed state:\n%s\n%s", before, after)
	}
}

func TestLsLen(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	if got := ok(t, nil, "ls", "--dir", dir).out(); got != "" {
		t.Errorf("ls of an empty replica = %q", got)
	}
	if got := ok(t, nil, "len", "--dir", dir).out(); got != "0\n" {
		t.Errorf("len = %q", got)
	}
	for _, kv := range [][2]string{{"c", "333"}, {"b2", "22"}, {"a", ""}, {"b1", "1"}, {"gone", "x"}} {
		ok(t, nil, "put", "--dir", dir, kv[0], kv[1])
	}
	ok(t, nil, "del", "--dir", dir, "gone")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a\nb1\nb2\nc\n"},
		{[]string{"--prefix", "b"}, "b1\nb2\n"},
		{[]string{"--prefix=b", "--limit=1"}, "b1\n"},
		{[]string{"--limit", "3"}, "a\nb1\nb2\n"},
		{[]string{"--limit", "0"}, "a\nb1\nb2\nc\n"},
		{[]string{"--prefix", "zz"}, ""},
	} {
		if got := ok(t, nil, append([]string{"ls", "--dir", dir}, tc.args...)...).out(); got != tc.want {
			t.Errorf("ls %q = %q, want %q", tc.args, got, tc.want)
		}
	}
	ms := decodeLines(t, ok(t, nil, "ls", "--json", "--dir", dir).stdout)
	want := []struct {
		key  string
		size int64
	}{{"a", 0}, {"b1", 1}, {"b2", 2}, {"c", 3}}
	if len(ms) != len(want) {
		t.Fatalf("ls --json = %v", ms)
	}
	for i, m := range ms {
		size, _ := m["size"].(json.Number).Int64()
		vers, _ := m["versions"].(json.Number).Int64()
		if m["key"] != want[i].key || size != want[i].size || vers != 1 {
			t.Errorf("ls --json line %d = %v", i, m)
		}
	}
	failsWith(t, ExitUsage, nil, []string{"ls", "--dir", dir, "--limit", "-1"}, "--limit")
	failsWith(t, ExitUsage, nil, []string{"ls", "--dir", dir, "--limit", "many"}, "--limit")
	failsWith(t, ExitUsage, nil, []string{"ls", "--dir", dir, "--limit"}, "needs a value")

	if got := ok(t, nil, "len", "--dir", dir).out(); got != "4\n" {
		t.Errorf("len = %q", got)
	}
	m := decodeOne(t, ok(t, nil, "len", "--json", "--dir", dir).stdout)
	if n, _ := m["keys"].(json.Number).Int64(); n != 4 || len(m) != 1 {
		t.Errorf("len --json = %v", m)
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	dir := newReplica(t)
	if got := ok(t, nil, "pending", "--dir", dir).out(); got != "" {
		t.Errorf("pending on a new replica = %q", got)
	}
	ok(t, nil, "put", "--dir", dir, "b", "1")
	ok(t, nil, "put", "--dir", dir, "a", "1")
	ok(t, nil, "del", "--dir", dir, "b")
	if got := ok(t, nil, "pending", "--dir", dir).out(); got != "a\nb\n" {
		t.Errorf("pending = %q", got)
	}
	ms := decodeLines(t, ok(t, nil, "pending", "--json", "--dir", dir).stdout)
	if len(ms) != 2 || ms[0]["key"] != "a" || ms[0]["deleted"] != false || ms[1]["key"] != "b" || ms[1]["deleted"] != true {
		t.Errorf("pending --json = %v", ms)
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	remoteDir := t.TempDir()
	dir := filepath.Join(t.TempDir(), "r")
	id := strings.TrimSpace(ok(t, nil, "init", "--dir", dir, "--remote", remoteDir).out())
	ok(t, nil, "put", "--dir", dir, "a", "1")
	ok(t, nil, "put", "--dir", dir, "b", "1")
	ok(t, nil, "del", "--dir", dir, "b")

	st := decodeOne(t, ok(t, nil, "status", "--json", "--dir", dir).stdout)
	for _, f := range []string{"replica_id", "remote", "keys", "pending", "cursor", "last_push", "last_pull", "skew_capped", "max_skew_ns"} {
		if _, ok := st[f]; !ok {
			t.Errorf("status --json has no %q: %v", f, st)
		}
	}
	remoteURL := (&url.URL{Scheme: "file", Path: filepath.ToSlash(remoteDir)}).String()
	if st["replica_id"] != id || st["remote"] != remoteURL || st["keys"] != json.Number("1") ||
		st["pending"] != json.Number("2") || st["cursor"] != json.Number("0") || st["last_push"] != nil {
		t.Errorf("status --json = %v", st)
	}

	human := ok(t, nil, "status", "--dir", dir).out()
	for _, want := range []string{id, remoteURL, "keys        1", "pending     2", "last push   never"} {
		if !strings.Contains(human, want) {
			t.Errorf("status does not show %q:\n%s", want, human)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	if got := ok(t, nil, "version").out(); !strings.HasPrefix(got, "ebreplica ") || strings.Count(got, "\n") != 1 {
		t.Errorf("version = %q", got)
	}
	m := decodeOne(t, ok(t, nil, "version", "--json").stdout)
	if v, _ := m["version"].(string); v == "" || m["go"] == nil {
		t.Errorf("version --json = %v", m)
	}
	// version needs no replica and touches no directory.
	dir := filepath.Join(t.TempDir(), "none")
	ok(t, nil, "version", "--dir", dir)
	noDir(t, dir)
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"-help"}, {"--json", "--help"}} {
		got := ok(t, nil, args...).out()
		if !strings.Contains(got, "usage: ebreplica") || !strings.Contains(got, "import [FILE|-]") {
			t.Errorf("%q printed %q", args, got)
		}
	}
	for _, args := range [][]string{{"help", "put"}, {"put", "--help"}, {"put", "-h", "k"}} {
		if got := ok(t, nil, args...).out(); !strings.Contains(got, "usage: ebreplica put KEY [VALUE]") {
			t.Errorf("%q printed %q", args, got)
		}
	}
	failsWith(t, ExitUsage, nil, nil, "no command")
	failsWith(t, ExitUsage, nil, []string{"frobnicate"}, `unknown command "frobnicate"`)
	failsWith(t, ExitUsage, nil, []string{"help", "frobnicate"}, `unknown command "frobnicate"`)
	failsWith(t, ExitUsage, nil, []string{"--bogus", "len"}, "--bogus")
	failsWith(t, ExitUsage, nil, []string{"--dir"}, "needs a value")
}
