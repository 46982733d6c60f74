package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote"
)

// Reaching the remote fails in one line that says what to do (issue 15).
func TestRemoteProblemMessages(t *testing.T) {
	// Not parallel: it sets the environment.
	missing := filepath.Join(t.TempDir(), "no", "such")
	failsWith(t, ExitError, nil, []string{"init", "--dir", filepath.Join(t.TempDir(), "r"), "--remote", missing},
		"directory "+missing+" does not exist", "mkdir -p")

	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	dir := filepath.Join(t.TempDir(), "r")
	r := failsWith(t, ExitError, nil, []string{"init", "--dir", dir, "--remote", "s3://bkt/p?endpoint=http://127.0.0.1:9"},
		"AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
	if strings.Contains(r.stderr, "IMDS") || strings.Contains(r.stderr, "SDK") {
		t.Errorf("SDK noise: %q", r.stderr)
	}
	noDir(t, dir)

	for _, tc := range []struct {
		url  string
		err  error
		want string
	}{
		{"file:///srv/x", fmt.Errorf("fileremote: put a: %w", remote.ErrAccessDenied), "permission denied on the remote's directory"},
		{"", fmt.Errorf("fileremote: put a: %w", remote.ErrAccessDenied), "check its owner and mode"},
		{"s3://b/p", fmt.Errorf("s3remote: get: %w", remote.ErrAccessDenied), "check the credentials"},
		{"s3://b/p", fmt.Errorf("s3remote: get: %w", remote.ErrBucketNotFound), "the bucket does not exist"},
		{"s3://b/p", errors.New(`s3remote: get "store.json" in s3://bkt/p: remote: transient failure: operation error S3: GetObject, exceeded maximum number of attempts, 5, https response error StatusCode: 0, RequestID: , HostID: , request send failed, Get "http://127.0.0.1:1/bkt/p/store.json?x-id=GetObject": dial tcp 127.0.0.1:1: connect: connection refused`),
			"cannot connect to 127.0.0.1:1: connection refused (check the endpoint"},
		{"s3://b/p", errors.New(`operation error S3: GetObject, get identity: get credentials: failed to refresh cached credentials, no EC2 IMDS role found, operation error ec2imds: GetMetadata`), "no AWS credentials found"},
	} {
		if got := remoteProblem(tc.url, tc.err); !strings.Contains(got, tc.want) || len(got) > 200 {
			t.Errorf("%q, %v: %q, want %q", tc.url, tc.err, got, tc.want)
		}
	}
}

// verify --remote gives the same one-line messages.
func TestVerifyRemoteProblem(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "gone")
	failsWith(t, ExitError, nil, []string{"verify", "--remote", missing}, "directory "+missing+" does not exist")
}
