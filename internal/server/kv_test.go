package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/server"
	"github.com/ebreplica/ebreplica/merge"
	"github.com/ebreplica/ebreplica/replica"
)

func TestHealthz(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	for _, a := range []answer{ts.do("GET", "/healthz", nil), ts.doUnix("GET", "/healthz", nil)} {
		if a.status != 200 || string(a.body) != "{\"ok\":true}\n" {
			t.Fatalf("healthz: %d %q", a.status, a.body)
		}
	}
}

// TestKV: put, get, delete; keys holding "/" and "%2F" (escaped and not),
// binary values, the content types.
func TestKV(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	keys := []string{"plain", "a/b/c", "with%2Fpercent", "a//b/../c", "späce é", "?#&="}
	for i, k := range keys {
		val := fmt.Sprintf("value %d \x00\xff", i)
		a := ts.do("PUT", "/v1/kv/"+url.PathEscape(k), []byte(val))
		if a.status != http.StatusNoContent {
			t.Fatalf("PUT %q: %d %q", k, a.status, a.body)
		}
		if got, _ := value(t, r, k); got != val {
			t.Fatalf("key %q holds %q, want %q", k, got, val)
		}
		a = ts.do("GET", "/v1/kv/"+url.PathEscape(k), nil)
		if a.status != 200 || string(a.body) != val || a.header.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("GET %q: %d %q %q", k, a.status, a.body, a.header.Get("Content-Type"))
		}
		if a.header.Get("X-Ebreplica-Context") == "" {
			t.Fatalf("GET %q: no X-Ebreplica-Context", k)
		}
	}
	// A "/" sent unescaped is part of the key too.
	if a := ts.do("GET", "/v1/kv/a/b/c", nil); a.status != 200 || string(a.body) != "value 1 \x00\xff" {
		t.Fatalf("GET unescaped a/b/c: %d %q", a.status, a.body)
	}
	if a := ts.do("DELETE", "/v1/kv/a%2Fb%2Fc", nil); a.status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %q", a.status, a.body)
	}
	if _, ok := value(t, r, "a/b/c"); ok {
		t.Fatal("deleted key still live")
	}
	ts.do("GET", "/v1/kv/a%2Fb%2Fc", nil).wantError(t, 404, "not_found", "a/b/c")
	ts.do("DELETE", "/v1/kv/a%2Fb%2Fc", nil).wantError(t, 404, "not_found")
	ts.do("GET", "/v1/kv/never", nil).wantError(t, 404, "not_found")
	if a := ts.do("HEAD", "/v1/kv/plain", nil); a.status != 200 || len(a.body) != 0 || a.header.Get("Content-Length") != "10" {
		t.Fatalf("HEAD: %d %q %v", a.status, a.body, a.header)
	}
	if n := r.Len(); n != int64(len(keys)-1) {
		t.Fatalf("Len %d", n)
	}
}

// TestBadKeys: an empty, too long or not UTF-8 key is 400 and writes
// nothing.
func TestBadKeys(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	long := strings.Repeat("k", replica.MaxKeyLen+1)
	for _, c := range []struct{ path, want string }{
		{"/v1/kv/", "empty key"},
		{"/v1/kv/" + long, "longer than"},
		{"/v1/kv/%FF%FE", "UTF-8"},
	} {
		for _, m := range []string{"PUT", "GET", "DELETE"} {
			ts.do(m, c.path, []byte("v")).wantError(t, 400, "bad_request", c.want)
		}
		ts.do("POST", "/v1/counter/"+strings.TrimPrefix(c.path, "/v1/kv/"), []byte(`{"delta":1}`)).wantError(t, 400, "bad_request", c.want)
		ts.do("POST", "/v1/set/"+strings.TrimPrefix(c.path, "/v1/kv/"), []byte(`{"add":["x"]}`)).wantError(t, 400, "bad_request", c.want)
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Len %d after bad keys, want 0", n)
	}
}

// TestOversized: a value over the server's limit is 413 and writes
// nothing, whether the body says its length or is chunked; one the
// server passes but the replica's limit refuses is 413 too.
func TestOversized(t *testing.T) {
	r, _ := newReplica(t, "", "", &replica.Options{MaxValueSize: 3000})
	ts := start(t, r, server.Options{MaxValueSize: 1000, MaxBatchSize: 2000})
	ts.put("k", "before")
	big := bytes.Repeat([]byte("x"), 1001)
	ts.do("PUT", "/v1/kv/k", big).wantError(t, 413, "too_large", "limit")
	// Chunked: no Content-Length, so the limit stops the read.
	req, _ := http.NewRequest("PUT", ts.base+"/v1/kv/k", io.MultiReader(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := ts.tcp.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answer{resp.StatusCode, resp.Header, b}.wantError(t, 413, "too_large")
	if v, _ := value(t, r, "k"); v != "before" {
		t.Fatalf("k holds %q after oversized puts", v)
	}
	if n := r.Len(); n != 1 {
		t.Fatalf("Len %d", n)
	}
	// At the limit: written.
	ts.put("k", strings.Repeat("y", 1000))

	// A batch whose value is over the limit, or whose body is.
	ops := fmt.Sprintf(`{"ops":[{"op":"put","key":"b1","value":"ok"},{"op":"put","key":"b2","value":%q}]}`, big)
	a := ts.do("POST", "/v1/batch", []byte(ops))
	m := a.wantError(t, 413, "too_large", "ops[1].value")
	if m["op"] != 1.0 || m["field"] != "value" {
		t.Fatalf("413 names op %v field %v", m["op"], m["field"])
	}
	ops = fmt.Sprintf(`{"ops":[{"op":"put","key":"b1","value":%q},{"op":"put","key":"b2","value":%q}]}`, big[:990], big[:990])
	ts.do("POST", "/v1/batch", []byte(ops)).wantError(t, 413, "too_large")
	if n := r.Len(); n != 1 {
		t.Fatalf("Len %d after refused batches", n)
	}

	// The replica's own limit (the server's is above it).
	r2, _ := newReplica(t, "", "", &replica.Options{MaxValueSize: 100})
	ts2 := start(t, r2, server.Options{MaxValueSize: 1000})
	ts2.do("PUT", "/v1/kv/k", big[:500]).wantError(t, 413, "too_large")
	if n := r2.Len(); n != 0 {
		t.Fatalf("Len %d after a value over the replica's limit", n)
	}
}

// TestMalformedJSON: a body that is not the JSON expected is 400 naming
// the field at fault (or the byte offset), and writes nothing.
func TestMalformedJSON(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	for _, c := range []struct {
		path, body string
		want       []string
		field      string
	}{
		{"/v1/batch", `{"ops":[{"op":"put","key":"a","value":"x"},{"op":"put","key":5,"value":"x"}]}`, []string{"ops[1].key", "a JSON number", "a string"}, "key"},
		{"/v1/batch", `{"ops":[{"op":"put","key":"a","value":["x"]}]}`, []string{"ops[0].value", "a JSON array", "a string"}, "value"},
		{"/v1/batch", `{"ops":[7]}`, []string{"ops[0]", "not an object"}, ""},
		{"/v1/batch", `{"ops":{"op":"put"}}`, []string{`"ops"`, "an array"}, "ops"},
		{"/v1/batch", `{"ops":[{"op":"put","key":"k","value":"x"}`, []string{"ends inside"}, ""},
		{"/v1/batch", `{"ops":[{"op":"put" "key":"k"}]}`, []string{"malformed JSON at byte"}, ""},
		{"/v1/batch", ``, []string{"empty"}, ""},
		{"/v1/batch", `[1,2]`, []string{"an object was expected"}, ""},
		{"/v1/batch", `{"ops":[]} {}`, []string{"more data"}, ""},
		{"/v1/counter/c", `{"delta":"x"}`, []string{`"delta"`, "a JSON string", "a number"}, "delta"},
		{"/v1/counter/c", `{"delta":1.5}`, []string{`"delta"`}, "delta"},
		{"/v1/counter/c", `{}`, []string{`"delta" is missing`}, "delta"},
		{"/v1/set/s", `{"add":"x"}`, []string{`"add"`, "an array"}, "add"},
		{"/v1/set/s", `{"add":[1]}`, []string{`"add"`}, "add"},
		{"/v1/set/s", `{}`, []string{"empty"}, "add"},
	} {
		m := ts.do("POST", c.path, []byte(c.body)).wantError(t, 400, "bad_request", c.want...)
		if c.field != "" && m["field"] != c.field {
			t.Errorf("%s %s: field %v, want %s", c.path, c.body, m["field"], c.field)
		}
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Len %d after malformed bodies", n)
	}
}

// TestBatch: a batch is written whole, or (an op at fault, named by index
// and field) not at all.
func TestBatch(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	ts.put("gone", "x")
	body := `{"ops":[{"op":"put","key":"a","value":"1"},{"op":"put","key":"b","value_b64":"AP8="},{"op":"delete","key":"gone"},{"op":"put","key":"c","value":"3","future_field":1}]}`
	if a := ts.do("POST", "/v1/batch", []byte(body)); a.status != 204 {
		t.Fatalf("batch: %d %q", a.status, a.body)
	}
	for k, want := range map[string]string{"a": "1", "b": "\x00\xff", "c": "3"} {
		if v, _ := value(t, r, k); v != want {
			t.Fatalf("%s = %q, want %q", k, v, want)
		}
	}
	if _, ok := value(t, r, "gone"); ok {
		t.Fatal("deleted in batch, still live")
	}
	for _, c := range []struct {
		op, field, want string
	}{
		{`{"op":"put","key":"","value":"x"}`, "key", "empty key"},
		{`{"op":"put","value":"x"}`, "key", "missing"},
		{`{"op":"put","key":"` + strings.Repeat("k", replica.MaxKeyLen+1) + `","value":"x"}`, "key", "longer than"},
		{`{"op":"upsert","key":"k","value":"x"}`, "op", "upsert"},
		{`{"key":"k","value":"x"}`, "op", "missing"},
		{`{"op":"put","key":"k"}`, "value", "missing"},
		{`{"op":"put","key":"k","value":"x","value_b64":"eA=="}`, "value", "both"},
		{`{"op":"put","key":"k","value_b64":"!!"}`, "value_b64", "base64"},
		{`{"op":"delete","key":"k","value":"x"}`, "value", "no value"},
	} {
		body := `{"ops":[{"op":"put","key":"x1","value":"1"},{"op":"delete","key":"a"},` + c.op + `]}`
		a := ts.do("POST", "/v1/batch", []byte(body))
		m := a.wantError(t, 400, "bad_request", "ops[2]."+c.field, c.want, "nothing written")
		if m["op"] != 2.0 || m["field"] != c.field {
			t.Fatalf("batch with %s names op %v field %v", c.op, m["op"], m["field"])
		}
		if _, ok := value(t, r, "x1"); ok {
			t.Fatalf("batch with %s: op 0 was written", c.op)
		}
		if v, _ := value(t, r, "a"); v != "1" {
			t.Fatalf("batch with %s: op 1 deleted a", c.op)
		}
	}
	ts.do("POST", "/v1/batch", []byte(`{}`)).wantError(t, 400, "bad_request", `"ops"`)
	ts.do("GET", "/v1/batch", nil).wantError(t, 405, "bad_request")
}

// TestList pages through the live keys.
func TestList(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	var want []string
	err := r.Batch(context.Background(), func(b *replica.Batch) error {
		for i := range 25 {
			k := fmt.Sprintf("p/%02d", i)
			want = append(want, k)
			b.Put(k, []byte(strings.Repeat("v", i)))
		}
		b.Put("q", []byte("other"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		Key      string `json:"key"`
		Size     int    `json:"size"`
		Versions int    `json:"versions"`
		Conflict bool   `json:"conflict"`
	}
	var got []string
	after := ""
	pages := 0
	for {
		a := ts.do("GET", "/v1/kv?prefix=p/&limit=10&after="+url.QueryEscape(after), nil)
		if a.status != 200 {
			t.Fatalf("list: %d %q", a.status, a.body)
		}
		var page struct {
			Items []item  `json:"items"`
			Next  *string `json:"next"`
		}
		if err := json.Unmarshal(a.body, &page); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, it := range page.Items {
			if it.Size != len(got) || it.Versions != 1 || it.Conflict {
				t.Fatalf("item %+v", it)
			}
			got = append(got, it.Key)
		}
		if page.Next == nil {
			break
		}
		if *page.Next != got[len(got)-1] {
			t.Fatalf("next %q, last key %q", *page.Next, got[len(got)-1])
		}
		after = *page.Next
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages: %v", pages, got)
	}
	// Exactly a page's worth: next is null.
	a := ts.do("GET", "/v1/kv?limit=26", nil)
	if !strings.HasSuffix(string(a.body), `"next":null}`+"\n") || strings.Count(string(a.body), `"key"`) != 26 {
		t.Fatalf("list all: %q", a.body)
	}
	// after before the prefix starts at the prefix; after its last key,
	// nothing.
	if a := ts.do("GET", "/v1/kv?prefix=p/&after=a&limit=1", nil); !strings.Contains(string(a.body), `"key":"p/00"`) || !strings.HasSuffix(string(a.body), `"next":"p/00"}`+"\n") {
		t.Fatalf("after before the prefix: %q", a.body)
	}
	if a := ts.do("GET", "/v1/kv?prefix=p/&after=p/24", nil); string(a.body) != `{"items":[],"next":null}`+"\n" {
		t.Fatalf("after the last key: %q", a.body)
	}
	// The default and the cap.
	if a := ts.do("GET", "/v1/kv", nil); a.status != 200 || strings.Count(string(a.body), `"key"`) != 26 {
		t.Fatalf("default list: %d %q", a.status, a.body)
	}
	if a := ts.do("GET", "/v1/kv?limit=100000", nil); a.status != 200 {
		t.Fatalf("big limit: %d %q", a.status, a.body)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=x", "prefix=%FF", "after=%zz"} {
		ts.do("GET", "/v1/kv?"+q, nil).wantError(t, 400, "bad_request")
	}
}

func TestCountersAndSets(t *testing.T) {
	r := newReplicaPolicies(t, map[string]string{"c/": "counter", "s/": "set"})
	ts := start(t, r, server.Options{})
	ts.do("GET", "/v1/counter/c/hits", nil).wantError(t, 404, "not_found")
	for i, d := range []int{5, -2, 10} {
		a := ts.do("POST", "/v1/counter/c/hits", []byte(fmt.Sprintf(`{"delta":%d}`, d)))
		want := []string{`{"value":5}`, `{"value":3}`, `{"value":13}`}[i] + "\n"
		if a.status != 200 || string(a.body) != want {
			t.Fatalf("incr %d: %d %q", d, a.status, a.body)
		}
	}
	if a := ts.do("GET", "/v1/counter/c/hits", nil); string(a.body) != "{\"value\":13}\n" {
		t.Fatalf("counter: %q", a.body)
	}
	ts.do("POST", "/v1/counter/plain", []byte(`{"delta":1}`)).wantError(t, 400, "bad_request")
	ts.do("PUT", "/v1/kv/c/hits", []byte("7")).wantError(t, 400, "bad_request")

	ts.do("GET", "/v1/set/s/tags", nil).wantError(t, 404, "not_found")
	a := ts.do("POST", "/v1/set/s/tags", []byte(`{"add":["b","a","c"]}`))
	if a.status != 200 || string(a.body) != "{\"members\":[\"a\",\"b\",\"c\"]}\n" {
		t.Fatalf("sadd: %d %q", a.status, a.body)
	}
	a = ts.do("POST", "/v1/set/s/tags", []byte(`{"remove":["b"],"add":["d"]}`))
	if a.status != 200 || string(a.body) != "{\"members\":[\"a\",\"c\",\"d\"]}\n" {
		t.Fatalf("sadd/srem: %d %q", a.status, a.body)
	}
	a = ts.do("POST", "/v1/set/s/tags", []byte(`{"remove":["a","c","d"]}`))
	if a.status != 200 || string(a.body) != "{\"members\":[]}\n" {
		t.Fatalf("srem all: %d %q", a.status, a.body)
	}
	ts.do("POST", "/v1/set/plain", []byte(`{"add":["x"]}`)).wantError(t, 400, "bad_request")
	ts.do("PUT", "/v1/counter/c/hits", nil).wantError(t, 405, "bad_request")
	if v, _ := r.CounterValue("c/hits"); v != 13 {
		t.Fatalf("counter %d after refused writes", v)
	}
}

// TestUnknownPathsAndMethods: 404 and 405 as JSON errors.
func TestUnknownPathsAndMethods(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	for _, p := range []string{"/nope", "/v1", "/v1/", "/v1/kvx", "/v2/kv/a", "/", "/metrics", "/v1/cli"} {
		ts.do("GET", p, nil).wantError(t, 404, "not_found")
	}
	for _, c := range [][2]string{{"POST", "/v1/kv/a"}, {"OPTIONS", "/v1/kv/a"}, {"DELETE", "/v1/kv"}, {"POST", "/healthz"},
		{"GET", "/v1/sync"}, {"POST", "/v1/status"}, {"POST", "/v1/watch"}} {
		a := ts.do(c[0], c[1], nil)
		a.wantError(t, 405, "bad_request", c[0])
		if a.header.Get("Allow") == "" {
			t.Fatalf("%s %s: no Allow", c[0], c[1])
		}
	}
	if n := r.Len(); n != 0 {
		t.Fatal("written")
	}
}

// TestAuth: with a token, a TCP request without it, or with a wrong one,
// is 401 and changes nothing, on every path; the unix socket needs none.
func TestAuth(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{Token: "s3cret-token"})
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Bearer s3cret-toke"},
		{"Authorization", "Basic s3cret-token"}, {"Authorization", "s3cret-token"}, {"Authorization", "Bearer "}} {
		for _, c := range [][2]string{{"PUT", "/v1/kv/k"}, {"GET", "/v1/kv/k"}, {"DELETE", "/v1/kv/k"}, {"POST", "/v1/batch"},
			{"GET", "/healthz"}, {"GET", "/metrics"}, {"GET", "/"}, {"GET", "/nope"}, {"GET", "/v1/watch"}, {"POST", "/v1/sync"}} {
			a := ts.do(c[0], c[1], []byte(`{"ops":[{"op":"put","key":"k","value":"v"}]}`), hdr...)
			a.wantError(t, 401, "unauthorized")
			if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without WWW-Authenticate")
			}
		}
	}
	if n := r.Len(); n != 0 {
		t.Fatalf("Len %d after refused requests", n)
	}
	if a := ts.do("PUT", "/v1/kv/k", []byte("v"), "Authorization", "Bearer s3cret-token"); a.status != 204 {
		t.Fatalf("with the token: %d %q", a.status, a.body)
	}
	if a := ts.do("PUT", "/v1/kv/k2", []byte("v"), "Authorization", "bearer s3cret-token"); a.status != 204 {
		t.Fatalf("with the token, scheme in lower case: %d %q", a.status, a.body)
	}
	if a := ts.doUnix("PUT", "/v1/kv/k3", []byte("v")); a.status != 204 {
		t.Fatalf("on the socket: %d %q", a.status, a.body)
	}
	if n := r.Len(); n != 3 {
		t.Fatalf("Len %d", n)
	}
}

// TestPatch: PATCH /v1/kv/{key} applies a JSON merge patch to a json key
// (only the fields it names; counter and set operations too), and every
// bad patch is 400 (413 over the limit) and writes nothing.
func TestPatch(t *testing.T) {
	r := newReplicaPolicies(t, map[string]string{"doc/": merge.NameJSON})
	ts := start(t, r, server.Options{MaxValueSize: 1 << 10})
	if a := ts.do("PUT", "/v1/kv/doc%2Fme", []byte(`{"name":"Ann","email":"a@x"}`)); a.status != 204 {
		t.Fatalf("PUT: %d %q", a.status, a.body)
	}
	for _, p := range []string{`{"email":"ann@y","tags":{"$add":["b","a"]}}`, `{"visits":{"$inc":2}}`, `{"visits":{"$inc":3},"name":null}`} {
		if a := ts.do("PATCH", "/v1/kv/doc%2Fme", []byte(p), "Content-Type", "application/merge-patch+json"); a.status != 204 {
			t.Fatalf("PATCH %s: %d %q", p, a.status, a.body)
		}
	}
	want := `{"email":"ann@y","tags":["a","b"],"visits":5}`
	if a := ts.do("GET", "/v1/kv/doc%2Fme", nil); a.status != 200 || string(a.body) != want {
		t.Fatalf("GET: %d %s, want %s", a.status, a.body, want)
	}
	before, _ := r.Versions("doc/me")
	for _, c := range []struct{ path, body, status, code, says string }{
		{"/v1/kv/doc%2Fme", `[1,2]`, "400", "bad_request", "object"},
		{"/v1/kv/doc%2Fme", `{"visits":{"$inc":"x"}}`, "400", "bad_request", "$inc"},
		{"/v1/kv/doc%2Fme", `{"email":{"$inc":1}}`, "400", "bad_request", "email"},
		{"/v1/kv/doc%2Fme", `{"a":"` + strings.Repeat("x", 2000) + `"}`, "413", "too_large", ""},
		{"/v1/kv/plain", `{"a":1}`, "400", "bad_request", "json"},
	} {
		st, _ := strconv.Atoi(c.status)
		var says []string
		if c.says != "" {
			says = []string{c.says}
		}
		ts.do("PATCH", c.path, []byte(c.body)).wantError(t, st, c.code, says...)
	}
	after, _ := r.Versions("doc/me")
	if !reflect.DeepEqual(before, after) || r.Len() != 1 {
		t.Fatalf("a refused PATCH wrote: %v -> %v (%d keys)", before, after, r.Len())
	}
}

// stacksWith counts the goroutines running fn.
func stacksWith(fn string) int {
	buf := make([]byte, 4<<20)
	n := 0
	for _, g := range bytes.Split(buf[:runtime.Stack(buf, true)], []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// TestBatchBodiesBounded: at most four batches are read at once, so that
// many clients sending large batches slowly cannot make the server hold
// more than four bodies; a fifth waits, then is served when one ends.
func TestBatchBodiesBounded(t *testing.T) {
	r, _ := newReplica(t, "", "", nil)
	ts := start(t, r, server.Options{})
	addr := strings.TrimPrefix(ts.base, "http://")
	var conns []net.Conn
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		body := `{"ops":[{"op":"put","key":"slow","value":"v"}]}`
		if _, err := fmt.Fprintf(c, "POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n{", len(body)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	eventually(t, "four batches being read", func() bool { return stacksWith("server.readBody(") == 4 })
	fifth := make(chan answer, 1)
	go func() {
		fifth <- ts.doWith(&http.Client{}, ts.base, "POST", "/v1/batch", []byte(`{"ops":[{"op":"put","key":"fifth","value":"v"}]}`))
	}()
	eventually(t, "the fifth batch waiting", func() bool { return stacksWith("server.(*Server).batch(") == 5 })
	if n := stacksWith("server.readBody("); n != 4 {
		t.Fatalf("%d batch bodies read at once, want 4", n)
	}
	if _, err := io.WriteString(conns[0], `"ops":[{"op":"put","key":"slow","value":"v"}]}`); err != nil {
		t.Fatal(err)
	}
	if a := <-fifth; a.status != 204 {
		t.Fatalf("the fifth batch: %d %q", a.status, a.body)
	}
	if v, err := r.Get("fifth"); err != nil || string(v) != "v" {
		t.Fatalf("fifth: %q %v", v, err)
	}
}
