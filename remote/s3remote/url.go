package s3remote

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/aws/smithy-go/logging"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
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
// Error messages never hold a secret: they quote the URL as RedactURL
// shows it.
func ParseURL(rawURL string) (URL, error) {
	shown := RedactURL(rawURL)
	bad := func(format string, args ...any) (URL, error) {
		return URL{}, fmt.Errorf("s3remote: URL %q: %s", shown, Redact(fmt.Sprintf(format, args...)))
	}
	// Anything that looks like a secret is refused first, so that no
	// later message can quote a part of it.
	if Redact(rawURL) != rawURL {
		return bad("credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad("not a URL") // url.Parse's detail may quote a part of the URL
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
		return bad("malformed query") // the detail may quote a value
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("query parameter %s given %d times", showParam(name), len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return bad("endpoint %q: want http://host[:port] or https://host[:port]", RedactURL(v))
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
				return bad("path_style: want true or false")
			}
			p.PathStyle = &b
		default:
			return bad("unknown query parameter %s (known: endpoint, region, path_style)", showParam(name))
		}
	}
	return p, nil
}

// The text patterns of Redact. Each separator may also be percent-encoded,
// to any depth ("%253A" is "%3A" encoded again), as in a query parameter
// holding a URL.
var (
	schemeSep   = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*(?::|%(?:25)*3a)(?:/|%(?:25)*2f){2}`)
	atSign      = regexp.MustCompile(`(?i)@|%(?:25)*40`)
	colon       = regexp.MustCompile(`(?i):|%(?:25)*3a`)
	slash       = regexp.MustCompile(`(?i)/|%(?:25)*2f`)
	secretParam = regexp.MustCompile(`(?i)((?:^|[?&;]|%(?:25)*(?:3f|26))[^=&;?\s]*(?:secret|passw|pwd|token|signature|credential|key)[^=&;?\s]*(?:=|%(?:25)*3d))[^&;#\s]*`)
)

// redacted replaces a secret in messages.
const redacted = "REDACTED"

// Redact returns s, a URL or a message that quotes URLs, with what may be
// a secret replaced by "REDACTED":
//
//   - user info after "scheme://" (up to the last "@" before the next
//     "scheme://"): the password after its first colon, or all of it
//     when it has no colon and no slash (a token used as user name);
//   - user info without "//" ("s3:user:pw@bkt", "user:pw@host"): what
//     follows the first colon;
//   - values of query parameters whose names say secret, password, pwd,
//     token, signature, credential or key.
//
// Colons, slashes, "@", "?", "&" and "=" are also recognised
// percent-encoded, to any depth. Redact works on text, word by word (a
// password with a space in it is not recognised), and errs on the side of
// redacting: a key that looks like "a:b@c" shows as "a:REDACTED@c".
func Redact(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i < 0 {
			i = len(s)
		}
		b.WriteString(redactWord(s[:i]))
		s = s[i:]
		j := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsSpace(r) })
		if j < 0 {
			j = len(s)
		}
		b.WriteString(s[:j])
		s = s[j:]
	}
	return b.String()
}

// redactWord is Redact for text without white space.
func redactWord(w string) string {
	seps := schemeSep.FindAllStringIndex(w, -1)
	var b strings.Builder
	first := len(w)
	if len(seps) > 0 {
		first = seps[0][0]
	}
	b.WriteString(redactUserinfo(w[:first], false))
	for i, sep := range seps {
		end := len(w)
		if i+1 < len(seps) {
			end = seps[i+1][0]
		}
		b.WriteString(w[sep[0]:sep[1]])
		b.WriteString(redactUserinfo(w[sep[1]:end], true))
	}
	out := b.String()
	if q := strings.IndexByte(out, '?'); q >= 0 {
		out = out[:q] + secretParam.ReplaceAllString(out[q:], "${1}"+redacted)
	}
	return out
}

// redactUserinfo redacts the user info that ends at the last "@" of seg;
// afterScheme: seg follows "scheme://".
func redactUserinfo(seg string, afterScheme bool) string {
	ats := atSign.FindAllStringIndex(seg, -1)
	if len(ats) == 0 {
		return seg
	}
	at := ats[len(ats)-1][0]
	info := seg[:at]
	if c := colon.FindStringIndex(info); c != nil {
		return info[:c[1]] + redacted + seg[at:]
	}
	if afterScheme && info != "" && !slash.MatchString(info) {
		return redacted + seg[at:]
	}
	return seg
}

// knownParams are the query parameters ParseURL takes; RedactURL shows
// their values.
var knownParams = map[string]bool{"endpoint": true, "region": true, "path_style": true}

// RedactURL returns rawURL as error messages may show it: Redact's
// result, with the values of query parameters other than endpoint, region
// and path_style (and their values too unless short, lower-case words),
// the names of parameters that do not look like parameter
// names, and the fragment replaced by "REDACTED". It is meant for any URL
// a user gave, not only s3:// ones.
func RedactURL(rawURL string) string {
	s := Redact(rawURL)
	base, query, hasQuery := strings.Cut(s, "?")
	query, _, hasFrag := strings.Cut(query, "#")
	if !hasQuery {
		base, _, hasFrag = strings.Cut(base, "#")
	}
	if hasQuery {
		params := strings.Split(query, "&")
		for i, p := range params {
			name, value, hasValue := strings.Cut(p, "=")
			n, err := url.QueryUnescape(name)
			switch {
			case err == nil && n == "endpoint":
			case err == nil && knownParams[n] && (!hasValue || plainValue.MatchString(value)):
			case err == nil && paramName.MatchString(n) && hasValue:
				params[i] = name + "=" + redacted
			case err == nil && paramName.MatchString(n):
			default:
				params[i] = redacted
			}
		}
		base += "?" + strings.Join(params, "&")
	}
	if hasFrag {
		base += "#" + redacted
	}
	return base
}

// paramName matches what may be shown of an unknown query parameter's
// name: a short lower-case word, not a secret put where a name goes.
var paramName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,31}$`)

// plainValue matches a region or path_style value that may be shown.
var plainValue = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// showParam quotes a query parameter's name for a message, if it looks
// like one.
func showParam(name string) string {
	if paramName.MatchString(name) {
		return strconv.Quote(name)
	}
	return "(name not shown)"
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
	// The SDK's own log lines (such as "WARN falling back to IMDSv1" when
	// no credentials are configured) are dropped: every failure comes back
	// as an error, which the caller words in one line.
	load := []func(*config.LoadOptions) error{config.WithDefaultRegion(DefaultRegion), config.WithLogger(logging.Nop{})}
	if u.Region != "" {
		load = append(load, config.WithRegion(u.Region))
	}
	if d := opts.timeout(); d > 0 {
		hc := awshttp.NewBuildableClient().WithTimeout(d).WithTransportOptions(func(tr *http.Transport) {
			tr.ResponseHeaderTimeout = d
		})
		load = append(load, config.WithHTTPClient(hc))
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

// timeout is Options.Timeout with its default.
func (o *Options) timeout() time.Duration {
	if o == nil || o.Timeout == 0 {
		return remote.DefaultTimeout
	}
	return o.Timeout
}
