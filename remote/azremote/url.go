package azremote

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Environment variables Open reads, the names the Azure SDKs and the az
// command line use.
const (
	// EnvConnectionString holds a storage connection string
	// ("AccountName=..;AccountKey=..;BlobEndpoint=.." or
	// "UseDevelopmentStorage=true" for Azurite's well-known account).
	EnvConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
	// EnvAccount names the storage account.
	EnvAccount = "AZURE_STORAGE_ACCOUNT"
	// EnvKey holds the account's shared key.
	EnvKey = "AZURE_STORAGE_KEY"
	// EnvSASToken holds a shared access signature ("sv=..&sig=..").
	EnvSASToken = "AZURE_STORAGE_SAS_TOKEN"
)

// The development storage account of Azurite (and the old storage
// emulator), which "UseDevelopmentStorage=true" names; its key is public.
const (
	devAccount  = "devstoreaccount1"
	devKey      = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devEndpoint = "http://127.0.0.1:10000/devstoreaccount1"
)

// URL is a parsed remote URL:
//
//	az://container[/prefix][?endpoint=URL][&account=NAME]
type URL struct {
	Container string
	Prefix    string // without leading or trailing "/"; "" = container root
	// Endpoint is the blob service's URL (http:// or https://), e.g.
	// http://127.0.0.1:10000/devstoreaccount1 for Azurite; "" for the one
	// the connection string names, else https://ACCOUNT.blob.core.windows.net.
	Endpoint string
	// Account is the storage account, "" for the connection string's or
	// AZURE_STORAGE_ACCOUNT.
	Account string
}

// String formats u back as an az:// URL.
func (u URL) String() string {
	s := "az://" + u.Container
	if u.Prefix != "" {
		s += "/" + u.Prefix
	}
	q := url.Values{}
	if u.Endpoint != "" {
		q.Set("endpoint", u.Endpoint)
	}
	if u.Account != "" {
		q.Set("account", u.Account)
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// ParseURL parses az://container/prefix?endpoint=URL&account=NAME.
// Credentials in the URL and unknown query parameters are refused
// (credentials come from the environment, never from the URL), and no
// message quotes what may be one: a refused URL is shown as
// az://container/prefix at most.
func ParseURL(rawURL string) (URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return URL{}, fmt.Errorf("azremote: not a URL (want az://container/prefix)")
	}
	shown := "az://" + u.Host + u.EscapedPath()
	bad := func(format string, args ...any) (URL, error) {
		return URL{}, fmt.Errorf("azremote: URL %q: %s", shown, fmt.Sprintf(format, args...))
	}
	switch {
	case u.Scheme != "az":
		return URL{}, fmt.Errorf("azremote: URL scheme must be az:// (az://container/prefix)")
	case u.User != nil:
		return bad("credentials do not belong in the URL; use %s or %s", EnvConnectionString, EnvKey)
	case u.Opaque != "":
		return bad("expected az://container/prefix")
	case u.Host == "":
		return bad("missing container name (az://container/prefix)")
	case u.Fragment != "":
		return bad("unexpected fragment")
	}
	if err := checkContainer(u.Host); err != nil {
		return bad("%v", err)
	}
	p := URL{Container: u.Host, Prefix: strings.Trim(u.Path, "/")}
	if err := CheckPrefix(p.Prefix); err != nil {
		return bad("%v", err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("malformed query")
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return bad("a query parameter is given %d times", len(vals))
		}
		switch name {
		case "endpoint":
			e, err := url.Parse(vals[0])
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil ||
				e.RawQuery != "" || e.Fragment != "" {
				return bad("endpoint: want http(s)://host[:port][/account], without credentials or query")
			}
			p.Endpoint = strings.TrimSuffix(vals[0], "/")
		case "account":
			if !validAccount(vals[0]) {
				return bad("account: want 3 to 24 lower-case letters and digits")
			}
			p.Account = vals[0]
		default:
			return bad("unknown query parameter (known: endpoint, account)")
		}
	}
	return p, nil
}

func validAccount(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// connString is the part of a storage connection string Open uses.
type connString struct {
	protocol, account, key, sas, endpoint, suffix string
}

// parseConnString parses "Key=Value;..." pairs. Its errors name the keys
// at most, never a value.
func parseConnString(s string) (connString, error) {
	var c connString
	dev := false
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return c, fmt.Errorf("azremote: %s: a part has no \"=\"", EnvConnectionString)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "defaultendpointsprotocol":
			c.protocol = v
		case "accountname":
			c.account = v
		case "accountkey":
			c.key = v
		case "sharedaccesssignature":
			c.sas = strings.TrimPrefix(v, "?")
		case "blobendpoint":
			c.endpoint = strings.TrimSuffix(v, "/")
		case "endpointsuffix":
			c.suffix = v
		case "usedevelopmentstorage":
			dev = strings.EqualFold(v, "true")
		}
	}
	if dev {
		if c.account == "" {
			c.account, c.key = devAccount, devKey
		}
		if c.endpoint == "" {
			c.endpoint = devEndpoint
		}
	}
	if c.endpoint == "" && c.account != "" {
		if c.protocol == "" {
			c.protocol = "https"
		}
		if c.suffix == "" {
			c.suffix = "core.windows.net"
		}
		c.endpoint = fmt.Sprintf("%s://%s.blob.%s", c.protocol, c.account, c.suffix)
	}
	return c, nil
}

// accountOf derives the account name from a blob service URL:
// https://ACCOUNT.blob.core.windows.net, or http://host:port/ACCOUNT (an
// emulator's).
func accountOf(endpoint string) string {
	e, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	if p := strings.Trim(e.Path, "/"); p != "" {
		return strings.Split(p, "/")[0]
	}
	if host, _, ok := strings.Cut(e.Hostname(), "."); ok {
		return host
	}
	return ""
}

// Open returns a Backend for an az:// URL (see ParseURL), with a client
// built with ClientOptions(opts). The service URL is the URL's endpoint,
// else the connection string's (AZURE_STORAGE_CONNECTION_STRING: its
// BlobEndpoint, or one built from AccountName and EndpointSuffix), else
// https://ACCOUNT.blob.core.windows.net for the URL's account or
// AZURE_STORAGE_ACCOUNT. Credentials are the first of:
//
//   - the connection string's AccountKey (shared key) or
//     SharedAccessSignature;
//   - AZURE_STORAGE_KEY (shared key, for the account of the URL,
//     AZURE_STORAGE_ACCOUNT or the endpoint) or AZURE_STORAGE_SAS_TOKEN;
//   - the Azure identity chain (azidentity.DefaultAzureCredential:
//     AZURE_CLIENT_ID/AZURE_TENANT_ID with a secret or certificate,
//     workload identity, managed identity, the az and azd command lines),
//     whose token is asked for on the first request.
//
// Open sends no request; ctx is not used beyond the checks.
func Open(ctx context.Context, rawURL string, opts *Options) (*Backend, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("azremote: open %s: %w", u, err)
	}
	copts, err := ClientOptions(opts)
	if err != nil {
		return nil, err
	}
	var cs connString
	if s := os.Getenv(EnvConnectionString); s != "" {
		if cs, err = parseConnString(s); err != nil {
			return nil, err
		}
	}
	account := u.Account
	if account == "" {
		account = cs.account
	}
	if account == "" {
		account = os.Getenv(EnvAccount)
	}
	endpoint := u.Endpoint
	if endpoint == "" && u.Account == "" {
		endpoint = cs.endpoint
	}
	if endpoint == "" && account != "" {
		endpoint = "https://" + account + ".blob.core.windows.net"
	}
	if endpoint == "" {
		return nil, fmt.Errorf("azremote: open %s: no storage account: give ?endpoint= or ?account= in the URL, or set %s or %s",
			u, EnvConnectionString, EnvAccount)
	}
	if account == "" {
		account = accountOf(endpoint)
	}
	serviceURL := endpoint + "/"

	var client *azblob.Client
	key, sas := cs.key, cs.sas
	if key == "" && sas == "" {
		key, sas = os.Getenv(EnvKey), strings.TrimPrefix(os.Getenv(EnvSASToken), "?")
	}
	switch {
	case key != "":
		if account == "" {
			return nil, fmt.Errorf("azremote: open %s: a shared key needs the account name: set %s or ?account=", u, EnvAccount)
		}
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			// The SDK's message may quote the key: never shown.
			return nil, fmt.Errorf("azremote: open %s: the account key is not valid base64", u)
		}
		client, err = azblob.NewClientWithSharedKeyCredential(serviceURL, cred, copts)
		if err != nil {
			return nil, fmt.Errorf("azremote: open %s: %s", u, Redact(err.Error()))
		}
	case sas != "":
		client, err = azblob.NewClientWithNoCredential(serviceURL+"?"+sas, copts)
		if err != nil {
			return nil, fmt.Errorf("azremote: open %s: %s", u, Redact(err.Error()))
		}
	default:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("azremote: open %s: the Azure identity chain: %s", u, Redact(err.Error()))
		}
		client, err = azblob.NewClient(serviceURL, markedCredential{cred}, copts)
		if err != nil {
			return nil, fmt.Errorf("azremote: open %s: %s", u, Redact(err.Error()))
		}
	}
	return New(client, u.Container, u.Prefix, opts)
}

// markedCredential marks the errors of a token credential, so that
// mapError reports them as refused credentials.
type markedCredential struct{ azcore.TokenCredential }

func (c markedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil && ctx.Err() == nil {
		err = &credentialError{err}
	}
	return tok, err
}
