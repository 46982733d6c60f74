package remoteurl_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/internal/cloudtest"
	"github.com/ebreplica/ebreplica/remote"
	"github.com/ebreplica/ebreplica/remote/azremote"
	"github.com/ebreplica/ebreplica/remote/gcsremote"
	"github.com/ebreplica/ebreplica/remote/remoteurl"
)

// clearAzureEnv unsets, for t, every variable azremote.Open reads.
func clearAzureEnv(t *testing.T) {
	for _, v := range []string{azremote.EnvConnectionString, azremote.EnvAccount, azremote.EnvKey, azremote.EnvSASToken} {
		t.Setenv(v, "")
	}
}

// openCheck opens url through remoteurl.Open, checks the backend's kind and
// name, and round-trips an object and the conditional-write probe.
func openCheck(t *testing.T, url, wantString string) remote.Backend {
	t.Helper()
	ctx := t.Context()
	b, err := remoteurl.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	if b.String() != wantString {
		t.Errorf("Open(%q).String() = %q, want %q", url, b.String(), wantString)
	}
	etag, err := b.PutIfAbsent(ctx, "hello", []byte("world"))
	if err != nil {
		t.Fatalf("PutIfAbsent through %q: %v", url, err)
	}
	if obj, err := b.Get(ctx, "hello"); err != nil || string(obj.Data) != "world" || obj.ETag != etag {
		t.Fatalf("Get through %q = %q %q %v", url, obj.Data, obj.ETag, err)
	}
	if err := remote.ProbeConditional(ctx, b); err != nil {
		t.Fatalf("ProbeConditional through %q: %v", url, err)
	}
	if err := b.Delete(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenGCS opens gs:// URLs on the emulator: with ?endpoint=, and with
// STORAGE_EMULATOR_HOST (the client library's own variable).
func TestOpenGCS(t *testing.T) {
	srv := cloudtest.GCSConfig(t)
	_, bucket := srv.NewBucket(t)
	t.Setenv(gcsremote.EnvEmulatorHost, "")
	b := openCheck(t, srv.URL(bucket, "some/prefix"), "gs://"+bucket+"/some/prefix")
	if _, ok := b.(*gcsremote.Backend); !ok {
		t.Fatalf("Open(gs://) = %T", b)
	}
	t.Setenv(gcsremote.EnvEmulatorHost, srv.Endpoint)
	openCheck(t, "gs://"+bucket+"/other", "gs://"+bucket+"/other")
	// A missing bucket shows on the first write.
	b, err := remoteurl.Open(t.Context(), srv.URL("no-such-bucket-ebr", "p"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutIfAbsent(t.Context(), "k", nil); !errors.Is(err, remote.ErrBucketNotFound) {
		t.Fatalf("PutIfAbsent in a missing bucket = %v, want ErrBucketNotFound", err)
	}
}

// TestOpenAzure opens az:// URLs on the emulator through each way of
// finding the account and its credentials.
func TestOpenAzure(t *testing.T) {
	srv := cloudtest.AzureConfig(t)
	_, container := srv.NewContainer(t)
	want := "az://" + container + "/some/prefix"

	t.Run("connection string", func(t *testing.T) {
		clearAzureEnv(t)
		t.Setenv(azremote.EnvConnectionString, srv.ConnectionString())
		openCheck(t, want, want)
	})
	t.Run("endpoint and key", func(t *testing.T) {
		clearAzureEnv(t)
		t.Setenv(azremote.EnvAccount, srv.Account)
		t.Setenv(azremote.EnvKey, srv.Key)
		openCheck(t, srv.URL(container, "some/prefix"), want)
	})
	t.Run("endpoint names the account", func(t *testing.T) {
		clearAzureEnv(t)
		t.Setenv(azremote.EnvKey, srv.Key)
		openCheck(t, srv.URL(container, "some/prefix"), want)
	})
	t.Run("wrong key", func(t *testing.T) {
		clearAzureEnv(t)
		const wrong = "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBrZXkgZm9yIHRlc3Rpbmc="
		t.Setenv(azremote.EnvConnectionString, strings.Replace(srv.ConnectionString(), srv.Key, wrong, 1))
		b, err := remoteurl.Open(t.Context(), want)
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.Put(t.Context(), "k", nil)
		if !errors.Is(err, remote.ErrAccessDenied) {
			t.Fatalf("Put with a wrong key = %v, want ErrAccessDenied", err)
		}
		for _, s := range []string{wrong, srv.Key} {
			if strings.Contains(err.Error(), s) {
				t.Fatalf("the message shows a key: %v", err)
			}
		}
	})
	t.Run("no account", func(t *testing.T) {
		clearAzureEnv(t)
		if _, err := remoteurl.Open(t.Context(), want); err == nil || !strings.Contains(err.Error(), azremote.EnvConnectionString) {
			t.Fatalf("Open without an account = %v, want an error naming %s", err, azremote.EnvConnectionString)
		}
	})
}

func TestNormalizeCloud(t *testing.T) {
	for _, ok := range []string{
		"gs://bkt", "gs://bkt/p/q", "gs://bkt/p?endpoint=http://127.0.0.1:4443",
		"az://ctr", "az://ctr/p/q", "az://ctr/p?endpoint=http://127.0.0.1:10000/devstoreaccount1", "az://ctr?account=acct1",
	} {
		if got, err := remoteurl.Normalize(ok); err != nil || got != ok {
			t.Errorf("Normalize(%q) = %q, %v", ok, got, err)
		}
	}
	for _, bad := range []string{
		"gs://", "gs://UPPER/p", "gs://bkt/a//b", "gs://bkt/p?region=x", "gs://bkt/p?endpoint=ftp://h",
		"az://", "az://a_b/p", "az://ctr/p?endpoint=x", "az://ctr/p?foo=bar", "az://ctr/a./b", "az://ctr?account=UP",
	} {
		if _, err := remoteurl.Normalize(bad); err == nil {
			t.Errorf("Normalize(%q) accepted", bad)
		}
	}
}

// No message of a refused gs:// or az:// URL shows a secret put in it.
func TestCloudErrorsNeverShowSecrets(t *testing.T) {
	for _, in := range []string{
		"gs://user:S3cr3tPW@bkt/p",
		"gs://bkt/p?token=S3cr3tPW",
		"gs://bkt/p?endpoint=http://u:S3cr3tPW@host:1",
		"gs://bkt/p?endpoint=http://host:1/?sig=S3cr3tPW",
		"az://user:S3cr3tPW@ctr/p",
		"az://ctr/p?sig=S3cr3tPW",
		"az://ctr/p?AccountKey=S3cr3tPW",
		"az://ctr/p?endpoint=http://u:S3cr3tPW@host:1",
		"az://ctr/p?endpoint=http://host:1/acct?sig=S3cr3tPW",
		"az://ctr/p%zz?sig=S3cr3tPW",
	} {
		_, nerr := remoteurl.Normalize(in)
		_, oerr := remoteurl.Open(context.Background(), in)
		for _, err := range []error{nerr, oerr} {
			if err == nil {
				t.Errorf("%q accepted", in)
			} else if strings.Contains(err.Error(), "S3cr3tPW") {
				t.Errorf("%q gives %q, which shows the secret", in, err)
			}
		}
	}
	// A connection string that does not parse is not quoted either.
	t.Setenv(azremote.EnvConnectionString, "AccountName=acct;AccountKey=S3cr3tPW;garbage")
	if _, err := remoteurl.Open(context.Background(), "az://ctr/p"); err == nil || strings.Contains(err.Error(), "S3cr3tPW") {
		t.Errorf("a bad connection string gives %v", err)
	}
}
