package s3remote

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ebreplica/ebreplica/remote"
)

// DefaultRegion is the region Open uses when neither the URL nor the AWS
// configuration names one.
const DefaultRegion = "us-east-1"

// URL is a parsed remote URL:
//
//	s3://bucket[/prefix][?endpoint=URL][&region=NAME][&path_style=BOOL]
type URL struct {
	Bucket string
	Prefix string // without leading or trailing "/"; "" = bucket root
	// Endpoint is the server's base URL (http:// or https://), "" for the
	// one the AWS configuration names (AWS_ENDPOINT_URL_S3,
	// AWS_ENDPOINT_URL, profile) or else AWS S3 itself.
	Endpoint string
	// Region is the signing region, "" for the AWS configuration's
	// (AWS_REGION, profile) or else DefaultRegion.
	Region string
	// PathStyle selects path-style addressing (http://host/bucket/key)
	// rather than virtual-hosted style (http://bucket.host/key). nil: not
	// given; Open then uses path style whenever an endpoint is set.
	PathStyle *bool
}

// String formats u back as an s3:// URL.
func (u URL) String() string {
	s := "s3://" + u.Bucket
	if u.Prefix != "" {
		s += "/" + u.Prefix
	}
	q := url.Values{}
	if u.Endpoint != "" {
		q.Set("endpoint", u.Endpoint)
	}
	if u.Region != "" {
		q.Set("region", u.Region)
	}
	if u.PathStyle != nil {
		q.Set("path_style", strconv.FormatBool(*u.PathStyle))
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// ParseURL parses s3://bucket/prefix?endpoint=..&region=..&path_style=..
// Unknown query parameters and credentials in the URL are refused
// (credentials come from the AWS configuration, never from the URL).
func ParseURL(rawURL string) (URL, error) {
	bad := func(format string, args ...any) (URL, error) {
		return URL{}, fmt.Errorf("s3remote: URL %q: %s", redact(rawURL), fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad("not a URL")
	}
	if u.Scheme != "s3" {
		return bad("scheme must be s3://")
	}
	if u.User != nil {
		return bad("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
	}
	if u.Opaque != "" {
		return bad("expected s3://bucket/prefix")
	}
	if u.Host == "" {
		return bad("missing bucket name (s3://bucket/prefix)")
	}
	if u.Fragment != "" {
		return bad("unexpected fragment")
	}
	p := URL{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if p.Prefix != "" {
		if err := remote.ValidateKey(p.Prefix); err != nil {
			return bad("prefix: %v", err)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %v", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("query parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return bad("endpoint %q: want http://host[:port] or https://host[:port]", v)
			}
			if e.User != nil {
				return bad("endpoint: credentials do not belong in the URL")
			}
			p.Endpoint = v
		case "region":
			if v == "" {
				return bad("empty region")
			}
			p.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return bad("path_style %q: want true or false", v)
			}
			p.PathStyle = &b
		default:
			return bad("unknown query parameter %q (known: endpoint, region, path_style)", name)
		}
	}
	return p, nil
}

// userinfo matches the user info of a URL or of a URL-encoded URL in a
// query parameter.
var userinfo = regexp.MustCompile(`(?i)(://|%3A%2F%2F)[^/?#@]*(@|%40)`)

// redact removes user info (a secret, maybe) from a URL before it goes into
// a message.
func redact(rawURL string) string {
	return userinfo.ReplaceAllString(rawURL, "${1}REDACTED@")
}

// Open returns a Backend for an s3:// URL (see ParseURL), with a client built
// from the standard AWS configuration chain (config.LoadDefaultConfig:
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, shared config files, AWS_CA_BUNDLE).
// The URL's query parameters override the configuration; path-style
// addressing is the default whenever an endpoint is set; the region defaults
// to DefaultRegion. ctx bounds the configuration loading only.
func Open(ctx context.Context, rawURL string, opts *Options) (*Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if _, err := opts.validate(); err != nil {
		return nil, err
	}
	load := []func(*config.LoadOptions) error{config.WithDefaultRegion(DefaultRegion)}
	if u.Region != "" {
		load = append(load, config.WithRegion(u.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("s3remote: open %s: loading the AWS configuration: %w", u, err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		// Runs after the configuration's endpoint was resolved into
		// o.BaseEndpoint.
		if u.Endpoint != "" {
			o.BaseEndpoint = aws.String(u.Endpoint)
		}
		if u.PathStyle != nil {
			o.UsePathStyle = *u.PathStyle
		} else if aws.ToString(o.BaseEndpoint) != "" {
			o.UsePathStyle = true
		}
		if o.Region == "" {
			o.Region = DefaultRegion
		}
	})
	return New(client, u.Bucket, u.Prefix, opts)
}
