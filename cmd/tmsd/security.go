package main

// The configuration of the API's protection and of the exporter allow-list,
// the `tmsd token` command, and the redacted view of the configuration that
// GET /api/v1/config shows.

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
)

// APIConfig is the `api:` section.
type APIConfig struct {
	ReadTokens  []TokenHash `yaml:"read_tokens"`
	AdminTokens []TokenHash `yaml:"admin_tokens"`
	TLSCert     string      `yaml:"tls_cert"`
	TLSKey      string      `yaml:"tls_key"`
	MaxN        int         `yaml:"max_n"`
	MaxRange    Duration    `yaml:"max_range"`
	// Peers are the other aggregators' base URLs: queries answer for all.
	Peers []string `yaml:"peers,omitempty"`
}

func defaultAPIConfig() APIConfig {
	d := api.DefaultConfiguration()
	return APIConfig{MaxN: d.MaxN, MaxRange: Duration(d.MaxRange)}
}

// apply sets the API configuration from the section.
func (c APIConfig) apply(to *api.Configuration) {
	to.ReadTokens, to.AdminTokens = tokenHashes(c.ReadTokens), tokenHashes(c.AdminTokens)
	to.TLSCert, to.TLSKey = c.TLSCert, c.TLSKey
	to.MaxN, to.MaxRange = c.MaxN, time.Duration(c.MaxRange)
	to.Peers = c.Peers
}

func tokenHashes(in []TokenHash) []api.TokenHash {
	out := make([]api.TokenHash, len(in))
	for i, h := range in {
		out[i] = h.TokenHash
	}
	return out
}

// TokenHash is a bearer token's hash in the configuration, "sha256:<hex>".
type TokenHash struct{ api.TokenHash }

// UnmarshalYAML parses the hash. The error never repeats the value: it may be
// the token itself, pasted where its hash belongs.
func (h *TokenHash) UnmarshalYAML(n *yaml.Node) error {
	v, err := api.ParseTokenHash(n.Value)
	if err != nil {
		return lineError(n, "a token must be given by its hash, \"sha256:\" and 64 hex digits; run tmsd token to make one (the value is not shown here: it may be a secret)")
	}
	h.TokenHash = v
	return nil
}

// secret marks a value no error may repeat (decodeValue).
func (*TokenHash) secret() {}

// MarshalYAML redacts the hash.
func (TokenHash) MarshalYAML() (any, error) { return "redacted", nil }

// Prefix is an allow-list entry: a CIDR, or an address for itself alone.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML parses the prefix, with its line in the error.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	s := n.Value
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return lineError(n, "%q is not a CIDR or an IP address", s)
		}
		p.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return nil
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return lineError(n, "%q is not a CIDR or an IP address", s)
	}
	if v.Masked() != v {
		return lineError(n, "%q has host bits set; did you mean %s?", s, v.Masked())
	}
	p.Prefix = v
	return nil
}

// MarshalYAML writes the CIDR.
func (p Prefix) MarshalYAML() (any, error) { return p.String(), nil }

func allowPrefixes(in []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(in))
	for i, p := range in {
		out[i] = p.Prefix
	}
	return out
}

// MarshalYAML writes the duration as the file takes it.
func (d Duration) MarshalYAML() (any, error) {
	v := time.Duration(d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d", nil
	}
	return v.String(), nil
}

// MarshalYAML writes the rule as the file takes it (apps.Rule.String reads back to the same rule).
func (r AppRule) MarshalYAML() (any, error) { return r.Rule.String(), nil }

// effectiveConfig is the configuration as GET /api/v1/config shows it: the
// file's keys, after defaults and flags, with secrets redacted by their
// types' MarshalYAML. A YAML round trip rather than JSON tags, so that a key
// added to Config shows without more code.
func effectiveConfig(cfg Config) (map[string]any, error) {
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	out := map[string]any{}
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out, nil
}

// tokenCommand prints a new API token and the configuration lines with its hash.
func tokenCommand(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token")
	admin := fs.Bool("admin", false, "print the lines for api.admin_tokens (configuration and deletes) instead of api.read_tokens")
	if err := parseArgs(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("token", "takes no arguments")
	}
	list := "read_tokens"
	if *admin {
		list = "admin_tokens"
	}
	token := api.NewToken()
	_, err := fmt.Fprintf(stdout, "%s\n"+
		"# The line above is the token: give it to the API's clients (Authorization: Bearer TOKEN).\n"+
		"# tmsd keeps only its hash. Add it to tmsd's configuration:\n"+
		"api:\n  %s:\n    - \"%s\"\n", token, list, api.HashToken(token).ConfigValue())
	return err
}
