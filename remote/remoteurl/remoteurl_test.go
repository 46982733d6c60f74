package remoteurl_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebreplica/ebreplica/remote/remoteurl"
)

func TestNormalize(t *testing.T) {
	dir := t.TempDir()
	for in, want := range map[string]string{
		dir:                       "file://" + filepath.ToSlash(dir),
		"file://" + dir:           "file://" + dir,
		"file://localhost" + dir:  "file://localhost" + dir,
		"s3://bkt/p?region=x":     "s3://bkt/p?region=x",
		"mem://name":              "mem://name",
		"mem://name/with/slashes": "mem://name/with/slashes",
	} {
		got, err := remoteurl.Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := remoteurl.Normalize("ftp://host/x"); !errors.Is(err, remoteurl.ErrUnsupported) {
		t.Errorf("Normalize(ftp) = %v, want ErrUnsupported", err)
	}
}

// Every error path of Normalize and Open, with a secret planted where a
// user might put one: no message shows it.
func TestErrorsNeverShowSecrets(t *testing.T) {
	for _, tc := range []struct {
		path, in string
		secrets  []string
	}{
		{"not a URL", "s3://AKID:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bkt/p", []string{"wJalrXUtnFEMI", "K7MDENG", "bPxRfiCY"}},
		{"not a URL, other scheme", "ftp://AKID:S3cr3t/PW@host/x", []string{"S3cr3t"}},
		{"not a URL, query", "mem://x/%zz?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"unsupported scheme", "ftp://u:S3cr3tPW@host/x", []string{"S3cr3tPW"}},
		{"unsupported scheme, query", "ftp://host/x?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"file with credentials", "file://u:S3cr3tPW@localhost/tmp/x", []string{"S3cr3tPW"}},
		{"file with a host", "file://u:S3cr3tPW@host/tmp/x", []string{"S3cr3tPW"}},
		{"file with a host, query", "file://host/tmp/x?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"file relative", "file://localhost?token=S3cr3tPW", []string{"S3cr3tPW"}},
		{"mem with credentials", "mem://u:S3cr3tPW@name", []string{"S3cr3tPW"}},
		{"mem without a name", "mem://?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"s3 credentials", "s3://AKID:S3cr3tPW@bkt/p", []string{"S3cr3tPW"}},
		{"s3 endpoint credentials", "s3://bkt/p?endpoint=http://user:S3cr3tPW@host:9000", []string{"S3cr3tPW"}},
		{"s3 unknown parameter", "s3://bkt/p?foo=S3cr3tPW", []string{"S3cr3tPW"}},
	} {
		_, nerr := remoteurl.Normalize(tc.in)
		_, oerr := remoteurl.Open(context.Background(), tc.in)
		for _, err := range []error{nerr, oerr} {
			if err == nil {
				t.Errorf("%s: %q accepted, want an error", tc.path, tc.in)
				continue
			}
			for _, s := range tc.secrets {
				if strings.Contains(err.Error(), s) {
					t.Errorf("%s: %q gives %q, which shows the secret %q", tc.path, tc.in, err, s)
				}
			}
		}
	}
}

func TestRedact(t *testing.T) {
	if got, want := remoteurl.Redact(`remote "s3://u:pw@bkt": x`), `remote "s3://u:REDACTED@bkt": x`; got != want {
		t.Errorf("Redact = %q, want %q", got, want)
	}
}
