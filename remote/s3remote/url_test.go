package s3remote_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/ebreplica/ebreplica/internal/s3test"
	"github.com/ebreplica/ebreplica/remote/s3remote"
)

func TestParseURL(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		in   string
		want s3remote.URL
	}{
		{"s3://bkt", s3remote.URL{Bucket: "bkt"}},
		{"s3://bkt/", s3remote.URL{Bucket: "bkt"}},
		{"s3://bkt/a/b/", s3remote.URL{Bucket: "bkt", Prefix: "a/b"}},
		{"s3://bkt/a%20b", s3remote.URL{Bucket: "bkt", Prefix: "a b"}},
		{"s3://my.bucket-1/p?region=eu-west-3", s3remote.URL{Bucket: "my.bucket-1", Prefix: "p", Region: "eu-west-3"}},
		{"s3://bkt/p?endpoint=http://127.0.0.1:9000", s3remote.URL{Bucket: "bkt", Prefix: "p", Endpoint: "http://127.0.0.1:9000"}},
		{"s3://bkt?endpoint=https%3A%2F%2Fs3.example.com&path_style=false",
			s3remote.URL{Bucket: "bkt", Endpoint: "https://s3.example.com", PathStyle: &no}},
		{"s3://bkt?path_style=true&region=us-east-1&endpoint=http://localhost:7070/",
			s3remote.URL{Bucket: "bkt", Endpoint: "http://localhost:7070/", Region: "us-east-1", PathStyle: &yes}},
		{"s3://bkt?path_style=1", s3remote.URL{Bucket: "bkt", PathStyle: &yes}},
	} {
		got, err := s3remote.ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		if got.Bucket != tc.want.Bucket || got.Prefix != tc.want.Prefix || got.Endpoint != tc.want.Endpoint ||
			got.Region != tc.want.Region || !sameBool(got.PathStyle, tc.want.PathStyle) {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		// String round-trips.
		again, err := s3remote.ParseURL(got.String())
		if err != nil || again.String() != got.String() {
			t.Errorf("ParseURL(%q).String() = %q does not round-trip: %v", tc.in, got.String(), err)
		}
	}
	for _, in := range []string{
		"", "bkt/p", "file:///tmp/x", "s3:bkt", "s3:///p", "s3://bkt/a//b", "s3://bkt/a/../b",
		"s3://bkt?endpoint=127.0.0.1:9000", "s3://bkt?endpoint=ftp://host", "s3://bkt?endpoint=http://",
		"s3://bkt?path_style=maybe", "s3://bkt?region=", "s3://bkt?regoin=us-east-1",
		"s3://bkt?region=a&region=b", "s3://bkt#frag",
		"s3://AKIDEXAMPLE:supersecret@bkt/p", "s3://bkt?endpoint=http://u:supersecret@host",
		"s3://bkt?endpoint=http%3A%2F%2Fu%3Asupersecret%40host", "s3://AKID:supersecret@bkt?x=1",
	} {
		_, err := s3remote.ParseURL(in)
		if err == nil {
			t.Errorf("ParseURL(%q) succeeded, want an error", in)
			continue
		}
		if !strings.HasPrefix(err.Error(), "s3remote: ") || strings.Contains(err.Error(), "supersecret") {
			t.Errorf("ParseURL(%q): bad message %q", in, err)
		}
	}
}

func sameBool(a, b *bool) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// cleanAWSEnv unsets the AWS configuration variables for the test (and
// restores them after), pointing the shared config files to nowhere.
// AWS_CA_BUNDLE stays: Open must work with it set.
func cleanAWSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_EC2_METADATA_DISABLED",
	} {
		t.Setenv(k, "") // restores the old value at the end
		os.Unsetenv(k)
	}
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // no instance-metadata probing
}

// roundTrip checks that be reaches the test server.
func roundTrip(t *testing.T, be *s3remote.Backend) {
	t.Helper()
	ctx := t.Context()
	data := []byte("hello " + t.Name())
	if _, err := be.Put(ctx, "x/y", data); err != nil {
		t.Fatalf("Put via %s: %v", be, err)
	}
	obj, err := be.Get(ctx, "x/y")
	if err != nil || !bytes.Equal(obj.Data, data) {
		t.Fatalf("Get via %s = %q, %v", be, obj.Data, err)
	}
}

func TestOpen(t *testing.T) {
	srv := s3test.Config(t)
	_, bucket := s3test.NewBucket(t)
	creds := func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	}
	ctx := t.Context()

	t.Run("query", func(t *testing.T) {
		cleanAWSEnv(t)
		creds(t)
		be, err := s3remote.Open(ctx, "s3://"+bucket+"/q/r?endpoint="+srv.Endpoint+"&region=us-east-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if be.Bucket() != bucket || be.Prefix() != "q/r" || be.String() != "s3://"+bucket+"/q/r" {
			t.Errorf("Open = %s (bucket %q prefix %q)", be, be.Bucket(), be.Prefix())
		}
		o := be.Client().Options()
		if !o.UsePathStyle || aws.ToString(o.BaseEndpoint) != srv.Endpoint || o.Region != "us-east-1" {
			t.Errorf("client: path style %v, endpoint %q, region %q", o.UsePathStyle, aws.ToString(o.BaseEndpoint), o.Region)
		}
		roundTrip(t, be)
	})
	t.Run("AWS_ENDPOINT_URL_S3", func(t *testing.T) {
		cleanAWSEnv(t)
		creds(t)
		t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1") // the S3 one wins
		t.Setenv("AWS_ENDPOINT_URL_S3", srv.Endpoint)
		be, err := s3remote.Open(ctx, "s3://"+bucket+"/env-s3", nil)
		if err != nil {
			t.Fatal(err)
		}
		if o := be.Client().Options(); !o.UsePathStyle || o.Region != s3remote.DefaultRegion {
			t.Errorf("client: path style %v, region %q; want true, %s", o.UsePathStyle, o.Region, s3remote.DefaultRegion)
		}
		roundTrip(t, be)
	})
	t.Run("AWS_ENDPOINT_URL", func(t *testing.T) {
		cleanAWSEnv(t)
		creds(t)
		t.Setenv("AWS_ENDPOINT_URL", srv.Endpoint)
		t.Setenv("AWS_REGION", "us-east-1")
		be, err := s3remote.Open(ctx, "s3://"+bucket+"/env", nil)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, be)
	})
	t.Run("query overrides env", func(t *testing.T) {
		cleanAWSEnv(t)
		creds(t)
		t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
		be, err := s3remote.Open(ctx, "s3://"+bucket+"?endpoint="+srv.Endpoint, nil)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, be)
	})
	t.Run("profile", func(t *testing.T) {
		cleanAWSEnv(t)
		config := filepath.Join(t.TempDir(), "config")
		err := os.WriteFile(config, []byte("[profile ebr]\n"+
			"aws_access_key_id = "+srv.AccessKey+"\n"+
			"aws_secret_access_key = "+srv.SecretKey+"\n"+
			"region = us-east-1\n"+
			"endpoint_url = "+srv.Endpoint+"\n"), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CONFIG_FILE", config)
		t.Setenv("AWS_PROFILE", "ebr")
		be, err := s3remote.Open(ctx, "s3://"+bucket+"/profile", nil)
		if err != nil {
			t.Fatal(err)
		}
		if o := be.Client().Options(); !o.UsePathStyle {
			t.Error("an endpoint from the profile did not select path style")
		}
		roundTrip(t, be)
	})
}

// TestOpenSettings checks how Open combines the URL and the environment,
// without network.
func TestOpenSettings(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name      string
		env       map[string]string
		url       string
		endpoint  string
		region    string
		pathStyle bool
	}{
		{"aws", nil, "s3://b/p", "", "us-east-1", false},
		{"env region", map[string]string{"AWS_REGION": "eu-west-3"}, "s3://b", "", "eu-west-3", false},
		{"query region wins", map[string]string{"AWS_REGION": "eu-west-3"}, "s3://b?region=ap-south-1", "", "ap-south-1", false},
		{"query endpoint", nil, "s3://b?endpoint=http://h:1", "http://h:1", "us-east-1", true},
		{"env endpoint", map[string]string{"AWS_ENDPOINT_URL_S3": "http://e:2"}, "s3://b", "http://e:2", "us-east-1", true},
		{"path style off", map[string]string{"AWS_ENDPOINT_URL": "http://e:3"}, "s3://b?path_style=false", "http://e:3", "us-east-1", false},
		{"path style on for AWS", nil, "s3://b?path_style=true", "", "us-east-1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cleanAWSEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			be, err := s3remote.Open(ctx, tc.url, &s3remote.Options{PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			o := be.Client().Options()
			if aws.ToString(o.BaseEndpoint) != tc.endpoint || o.Region != tc.region || o.UsePathStyle != tc.pathStyle {
				t.Errorf("endpoint %q region %q path style %v; want %q %q %v",
					aws.ToString(o.BaseEndpoint), o.Region, o.UsePathStyle, tc.endpoint, tc.region, tc.pathStyle)
			}
		})
	}
	if _, err := s3remote.Open(ctx, "s3://b?bogus=1", nil); err == nil {
		t.Error("Open accepted an unknown parameter")
	}
	if _, err := s3remote.Open(ctx, "s3://b", &s3remote.Options{PageSize: 5000}); err == nil {
		t.Error("Open accepted bad options")
	}
}

// Every error path of ParseURL, with a secret planted where a user might
// put one: no message shows it, or any part of it.
func TestParseURLNeverShowsSecrets(t *testing.T) {
	for _, tc := range []struct {
		path, in string
		secrets  []string // none may appear in the message
	}{
		{"credentials", "s3://AKID:S3cr3tPW@bkt/p", []string{"S3cr3tPW"}},
		{"credentials, @ in the password", "s3://AKID:S3cr@3tPW@bkt/p", []string{"S3cr", "3tPW"}},
		{"credentials, user name only", "s3://T0kenS3cr3t@bkt/p", []string{"T0kenS3cr3t"}},
		{"credentials, encoded", "s3://AKID:S3cr3t%2FPW@bkt", []string{"S3cr3t"}},
		{"not a URL: slash in the password", "s3://AKID:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bkt/p",
			[]string{"wJalrXUtnFEMI", "K7MDENG", "bPxRfiCY"}},
		{"not a URL: bad escape", "s3://AKID:S3cr3tPW@bkt/%zz", []string{"S3cr3tPW"}},
		{"not a URL: query secret", "s3://bkt/%zz?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"not a URL: space", "s3://AKID:S3cr3tPW@bkt /p", []string{"S3cr3tPW"}},
		{"scheme", "s4://AKID:S3cr3tPW@bkt", []string{"S3cr3tPW"}},
		{"scheme, query", "https://bkt?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"opaque", "s3:AKID:S3cr3tPW@bkt", []string{"S3cr3tPW"}},
		{"opaque, query", "s3:bkt?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"missing bucket", "s3:/AKID:S3cr3tPW@bkt", []string{"S3cr3tPW"}},
		{"missing bucket, three slashes", "s3:///AKID:S3cr3tPW@bkt", []string{"S3cr3tPW"}},
		{"missing bucket, query", "s3:///p?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"fragment", "s3://bkt/p#S3cr3tPW", []string{"S3cr3tPW"}},
		{"fragment after query", "s3://bkt/p?region=x#S3cr3tPW", []string{"S3cr3tPW"}},
		{"prefix", "s3://bkt/a//b?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"prefix holding the password", "s3://AKID:123/S3cr//3tPW@bkt", []string{"S3cr", "3tPW"}},
		{"malformed query", "s3://bkt?foo=S3cr3tPW;x=1", []string{"S3cr3tPW"}},
		{"malformed query escape", "s3://bkt?foo=%zzS3cr3tPW", []string{"S3cr3tPW"}},
		{"repeated parameter", "s3://bkt?foo=S3cr3tPW&foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"repeated endpoint", "s3://bkt?endpoint=http://u:S3cr3tPW@h&endpoint=http://h", []string{"S3cr3tPW"}},
		{"endpoint credentials", "s3://bkt/p?endpoint=http://user:S3cr3tPW@host:9000", []string{"S3cr3tPW"}},
		{"endpoint token", "s3://bkt/p?endpoint=http://T0kenS3cr3t@host:9000", []string{"T0kenS3cr3t"}},
		{"endpoint credentials, encoded", "s3://bkt?endpoint=http%3A%2F%2Fu%3AS3cr3tPW%40host", []string{"S3cr3tPW"}},
		{"endpoint credentials, encoded twice", "s3://bkt?endpoint=http%253A%252F%252Fu%253AS3cr3tPW%2540host", []string{"S3cr3tPW"}},
		{"endpoint scheme", "s3://bkt?endpoint=ftp://u:S3cr3tPW@host", []string{"S3cr3tPW"}},
		{"endpoint not a URL", "s3://bkt?endpoint=http://u:S3cr3t/PW@host", []string{"S3cr3t"}},
		{"endpoint and another secret", "s3://bkt?endpoint=127.0.0.1&foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"empty region", "s3://bkt?region=&foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"path_style", "s3://bkt?path_style=S3cr3tPW", []string{"S3cr3tPW"}},
		{"unknown parameter", "s3://bkt/p?foo=S3cr3tPW", []string{"S3cr3tPW"}},
		{"unknown secret parameter", "s3://bkt/p?aws_secret_access_key=S3cr3tPW", []string{"S3cr3tPW"}},
		{"unknown parameter named by the secret", "s3://bkt/p?wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY", []string{"wJalrXUtnFEMI"}},
	} {
		_, err := s3remote.ParseURL(tc.in)
		if err == nil {
			t.Errorf("%s: ParseURL(%q) succeeded, want an error", tc.path, tc.in)
			continue
		}
		for _, s := range tc.secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("%s: ParseURL(%q) = %q shows the secret %q", tc.path, tc.in, err, s)
			}
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://u:pw@bkt/p": "s3://u:REDACTED@bkt/p",
		"s3://u:p@ss@bkt": "s3://u:REDACTED@bkt",
		"s3://tok@bkt":    "s3://REDACTED@bkt",
		"s3:/u:pw@bkt":    "s3:REDACTED@bkt",
		"remote s3://bkt/p?endpoint=http://u:pw@h:9 x": "remote s3://bkt/p?endpoint=http://u:REDACTED@h:9 x",
		"endpoint=http%3A%2F%2Fu%3Apw%40h":             "endpoint=http%3A%2F%2Fu%3AREDACTED%40h",
		"s3://bkt?x=1&aws_secret_access_key=k&token=t": "s3://bkt?x=1&aws_secret_access_key=REDACTED&token=REDACTED",
		// Not secrets.
		`key "a@b" not found`: `key "a@b" not found`,
		"s3://bkt/a@b":        "s3://bkt/a@b",
		"s3://bkt/p?region=x": "s3://bkt/p?region=x",
	} {
		if got := s3remote.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"s3://bkt/p?endpoint=http://h&region=r&path_style=1": "s3://bkt/p?endpoint=http://h&region=r&path_style=1",
		"s3://bkt/p?foo=bar&Wh4tEver":                        "s3://bkt/p?foo=REDACTED&REDACTED",
		"s3://bkt/p#frag":                                    "s3://bkt/p#REDACTED",
		"mem://u:pw@x?a=b#c":                                 "mem://u:REDACTED@x?a=REDACTED#REDACTED",
	} {
		if got := s3remote.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
