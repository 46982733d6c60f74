package s3remote

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// TestOpenDropsSDKLogs: with no credentials configured the SDK falls back
// to the EC2 metadata service and, when its token request is refused,
// logs "WARN falling back to IMDSv1" on stderr before the error comes
// back; Open's client logs nothing (the error alone is worded for the
// user). The metadata service is a local server that refuses everything.
func TestOpenDropsSDKLogs(t *testing.T) {
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer imds.Close()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_EC2_METADATA_DISABLED"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.URL)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	b, err := Open(context.Background(), "s3://bucket/p?endpoint=http://127.0.0.1:1", nil)
	if err == nil {
		_, err = b.Get(context.Background(), "x")
	}
	os.Stderr = stderr
	w.Close()
	logged, _ := io.ReadAll(r)
	if err == nil {
		t.Fatal("a Get with no credentials succeeded")
	}
	if len(logged) != 0 {
		t.Fatalf("the SDK logged on stderr: %q", logged)
	}
}
