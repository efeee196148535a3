package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/api"
)

const (
	testReadToken  = "tmsd_cmd-test-read-token-0123456789abcdefghijkl"
	testAdminToken = "tmsd_cmd-test-admin-token-0123456789abcdefghijk"
)

// writeTLSPair writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files, and returns their paths.
func writeTLSPair(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

func TestSecurityConfig(t *testing.T) {
	certFile, keyFile := writeTLSPair(t)
	p := writeConfig(t, `
listener:
  allow: ["192.0.2.0/24", "2001:db8::/32", 198.51.100.7]
api:
  read_tokens: ["`+api.HashToken(testReadToken).ConfigValue()+`"]
  admin_tokens:
    - `+api.HashToken(testAdminToken).ConfigValue()+`
  max_n: 500
  max_range: 30d
`)
	cfg, _, err := parseFlags("serve", []string{"--config", p, "--tls-cert", certFile, "--tls-key", keyFile}, io.Discard)
	require.NoError(t, err)
	var got api.Configuration
	cfg.API.apply(&got)
	require.Equal(t, []api.TokenHash{api.HashToken(testReadToken)}, got.ReadTokens)
	require.Equal(t, []api.TokenHash{api.HashToken(testAdminToken)}, got.AdminTokens)
	require.Equal(t, certFile, got.TLSCert)
	require.Equal(t, keyFile, got.TLSKey)
	require.Equal(t, 500, got.MaxN)
	require.Equal(t, 30*24*time.Hour, got.MaxRange)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32")}, allowPrefixes(cfg.Listener.Allow))

	// Defaults: open API, the API package's caps, everyone may send.
	cfg, _, err = parseFlags("serve", nil, io.Discard)
	require.NoError(t, err)
	cfg.API.apply(&got)
	require.Empty(t, got.ReadTokens)
	require.Equal(t, api.DefaultConfiguration().MaxN, got.MaxN)
	require.Equal(t, api.DefaultConfiguration().MaxRange, got.MaxRange)
	require.Empty(t, cfg.Listener.Allow)
}

func TestBadSecurityConfig(t *testing.T) {
	f := func(body, wantLine, wantReason string) { requireConfigError(t, body, wantLine, wantReason) }
	// A token pasted where its hash belongs is refused, and not repeated.
	f("api:\n  read_tokens:\n    - "+testReadToken+"\n", "3: api.read_tokens", `"sha256:" and 64 hex digits`)
	p := writeConfig(t, "api:\n  admin_tokens: [\""+testAdminToken+"\"]\n")
	_, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
	require.Error(t, err)
	require.NotContains(t, err.Error(), testAdminToken)
	require.NotContains(t, err.Error(), "0123456789")

	p = writeConfig(t, "api:\n  read_tokens: "+testReadToken+"\n")
	_, _, err = parseFlags("serve", []string{"--config", p}, io.Discard)
	require.ErrorContains(t, err, p+":2: api.read_tokens: want a list (the value is not shown here")
	require.NotContains(t, err.Error(), "0123456789")
	f("api:\n  read_tokens: [\"sha256:abcd\"]\n", "2: api.read_tokens", "sha256")
	f("api:\n  read_tokens: [\"md5:"+strings.Repeat("0", 32)+"\"]\n", "2: api.read_tokens", "sha256")
	f("api:\n  max_n: 10\n  tls_crt: x.pem\n", "3: api.tls_crt", "unknown key: api takes read_tokens, admin_tokens, tls_cert, tls_key")
	f("http: \":8080\"\napi:\n  tls_cert: c.pem\n", "3: api.tls_cert", "given without api.tls_key: give both or neither")
	f("api:\n  max_n: 0\n", "2: api.max_n", "want a whole number >= 1, got 0")
	f("api:\n  max_range: -1d\n", "2: api.max_range", "bad duration")
	f("listener:\n  allow:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n", "4: listener.allow", `"10.0.0.0/33" is not a CIDR`)
	f("listener:\n  allow: [router1]\n", "2: listener.allow", `"router1" is not a CIDR`)
	f("listener:\n  allow: [10.1.2.3/8]\n", "2: listener.allow", "did you mean 10.0.0.0/8")

	// The pair is loaded at start-up, before anything opens: a missing or
	// mismatched file is named by its key and line, or by its flag.
	certFile, keyFile := writeTLSPair(t)
	f("api:\n  tls_cert: "+certFile+"\n  tls_key: /nonexistent/key.pem\n", "2: api.tls_cert", "cannot load the TLS certificate and key: open /nonexistent/key.pem")
	f("api:\n  tls_cert: "+certFile+"\n  tls_key: "+certFile+"\n", "2: api.tls_cert", "cannot load the TLS certificate and key")
	_, _, err = parseFlags("serve", []string{"--tls-cert", certFile, "--tls-key", "/nonexistent/key.pem"}, io.Discard)
	require.ErrorContains(t, err, "--tls-cert: cannot load the TLS certificate and key")
	_, _, err = parseFlags("serve", []string{"--tls-cert", certFile, "--tls-key", keyFile}, io.Discard)
	require.NoError(t, err)

	_, _, err = parseFlags("serve", []string{"--tls-key", "k.pem"}, io.Discard)
	require.ErrorContains(t, err, "--tls-key: given without --tls-cert: give both or neither")
}

func TestTokenCommand(t *testing.T) {
	for _, admin := range []bool{false, true} {
		var out bytes.Buffer
		args := []string{"token"}
		if admin {
			args = append(args, "--admin")
		}
		require.NoError(t, run(args, &out, io.Discard))
		token, snippet, ok := strings.Cut(out.String(), "\n")
		require.True(t, ok)
		require.Regexp(t, `^tmsd_[A-Za-z0-9_-]{43}$`, token)
		require.NotContains(t, snippet, token)

		// What it prints is a configuration tmsd loads, granting that token.
		p := filepath.Join(t.TempDir(), "tmsd.yaml")
		require.NoError(t, os.WriteFile(p, []byte(snippet), 0o600))
		cfg, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
		require.NoError(t, err)
		var got api.Configuration
		cfg.API.apply(&got)
		want := []api.TokenHash{api.HashToken(token)}
		if admin {
			require.Equal(t, want, got.AdminTokens)
			require.Empty(t, got.ReadTokens)
		} else {
			require.Equal(t, want, got.ReadTokens)
			require.Empty(t, got.AdminTokens)
		}
	}
	require.Error(t, run([]string{"token", "extra"}, io.Discard, io.Discard))
}

func TestEffectiveConfigRoundTrips(t *testing.T) {
	p := writeConfig(t, `
retention: 30d
apps:
  - "erp-db = 10.1.2.0/24,2001:db8::/48 tcp/5432,udp/10000-20000,0/7"
sampling:
  192.0.2.1: 100
listener:
  allow: [192.0.2.0/24]
api:
  read_tokens: ["`+api.HashToken(testReadToken).ConfigValue()+`"]
aggregate:
  grace: 90s
`)
	cfg, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
	require.NoError(t, err)
	eff, err := effectiveConfig(cfg)
	require.NoError(t, err)
	b, err := json.Marshal(eff)
	require.NoError(t, err)
	s := string(b)
	require.Contains(t, s, `"read_tokens":["redacted"]`)
	require.NotContains(t, s, hex.EncodeToString(func() []byte { h := api.HashToken(testReadToken); return h[:] }()))
	require.Contains(t, s, `"retention":{"day":"1825d","hour":"400d","minute":"30d"}`)
	require.Contains(t, s, `"grace":"1m30s"`)
	require.Contains(t, s, `"allow":["192.0.2.0/24"]`)
	require.Contains(t, s, `"192.0.2.1":100`)

	// The shown configuration, token hashes and secrets apart, is one tmsd loads back to the same.
	out, err := json.Marshal(eff)
	require.NoError(t, err)
	var generic map[string]any
	require.NoError(t, json.Unmarshal(out, &generic))
	delete(generic["api"].(map[string]any), "read_tokens")
	require.Equal(t, "redacted", generic["snmp"].(map[string]any)["community"], "an SNMP community is a secret")
	delete(generic["snmp"].(map[string]any), "community")
	back, err := json.Marshal(generic)
	require.NoError(t, err)
	p2 := writeConfig(t, string(back)) // JSON is YAML
	cfg2, _, err := parseFlags("serve", []string{"--config", p2}, io.Discard)
	require.NoError(t, err)
	cfg.API.ReadTokens, cfg2.API.AdminTokens = nil, nil // [] and nil
	require.Len(t, cfg2.Apps, 1)
	require.Equal(t, cfg.Apps, cfg2.Apps)
	cfg.Apps, cfg2.Apps = nil, nil
	require.Equal(t, cfg, cfg2)
}

// A locked-down tmsd end to end: the allow-list refuses a source, every
// endpoint answers its scope, and neither the tokens nor their hashes show
// in the logs, /metrics or any answer.
func TestLockedDownServe(t *testing.T) {
	readHash, adminHash := api.HashToken(testReadToken), api.HashToken(testAdminToken)
	p := writeConfig(t, `
netflow: ["127.0.0.1:0"]
sflow: []
http: "127.0.0.1:0"
listener:
  sockets: 1
  allow: [127.0.0.1/32]
api:
  read_tokens: ["`+readHash.ConfigValue()+`"]
  admin_tokens: ["`+adminHash.ConfigValue()+`"]
`)
	cfg, _, err := parseFlags("serve", []string{"--config", p, "--data", t.TempDir()}, io.Discard)
	require.NoError(t, err)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pl, err := newPipeline(cfg, logger, time.Now)
	require.NoError(t, err)
	require.NoError(t, pl.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, pl.stop()) })
	base := "http://" + pl.api.Addr().String()
	target := pl.listeners[0].Addrs()[0].(*net.UDPAddr)

	first := firstDatagram(t, "../../testdata/pcaps/softflowd-v5.pcap")
	send := func(src string, n int) {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, target)
		require.NoError(t, err)
		defer c.Close()
		for range n {
			_, err := c.Write(first)
			require.NoError(t, err)
		}
	}
	send("127.0.0.1", 2)
	send("127.0.0.2", 5)
	send("127.0.0.3", 1)

	var answers bytes.Buffer // everything the API said, to look for secrets in
	call := func(method, path, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		answers.Write(body)
		for _, v := range resp.Header {
			answers.WriteString(strings.Join(v, " "))
		}
		return resp.StatusCode, body
	}

	var rejected struct {
		Total   uint64
		Sources []struct {
			Source    string
			Datagrams uint64
		}
	}
	require.Eventually(t, func() bool {
		code, body := call("GET", "/api/v1/rejected", testReadToken)
		return code == 200 && json.Unmarshal(body, &rejected) == nil && rejected.Total == 6
	}, 10*time.Second, 5*time.Millisecond)
	require.Len(t, rejected.Sources, 2)
	require.Equal(t, "127.0.0.2", rejected.Sources[0].Source)
	require.EqualValues(t, 5, rejected.Sources[0].Datagrams)
	require.Equal(t, "127.0.0.3", rejected.Sources[1].Source)

	var ex struct{ Exporters []struct{ Address string } }
	require.Eventually(t, func() bool {
		code, body := call("GET", "/api/v1/exporters", testReadToken)
		return code == 200 && json.Unmarshal(body, &ex) == nil && len(ex.Exporters) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "127.0.0.1", ex.Exporters[0].Address, "refused sources never reach the decoder")

	f := func(method, path, token string, want int) []byte {
		t.Helper()
		code, body := call(method, path, token)
		require.Equal(t, want, code, "%s %s: %s", method, path, body)
		return body
	}
	f("GET", "/healthz", "", 200)
	f("GET", "/", "", 200)
	f("GET", "/api/v1/top?by=app", "", 401)
	f("GET", "/api/v1/top?by=app", testReadToken+"x", 401)
	f("GET", "/api/v1/top?by=app", testReadToken, 200)
	f("GET", "/api/v1/series", testAdminToken, 200)
	f("GET", "/debug/pprof/cmdline", testReadToken, 403)
	f("GET", "/debug/pprof/cmdline", testAdminToken, 200)
	f("GET", "/api/v1/config", testReadToken, 403)
	conf := f("GET", "/api/v1/config", testAdminToken, 200)
	require.Contains(t, string(conf), `"read_tokens":["redacted"]`)
	require.Contains(t, string(conf), `"admin_tokens":["redacted"]`)
	require.Contains(t, string(conf), `"allow":["127.0.0.1/32"]`)
	f("DELETE", "/api/v1/exporters/127.0.0.1", testReadToken, 403)
	f("DELETE", "/api/v1/exporters/127.0.0.1", testAdminToken, 200)
	f("GET", "/metrics", "", 401)
	metrics := f("GET", "/metrics", testReadToken, 200)
	require.Contains(t, string(metrics), `tmsd_rejected_datagrams_total{listener="netflow"} 6`)
	require.Contains(t, string(metrics), `tmsd_api_auth_failures_total{reason="invalid"} 1`)

	require.Contains(t, logs.String(), "outside the allow-list", "the refusal is logged, so the check ran")
	require.Contains(t, logs.String(), "invalid bearer token")
	for _, secret := range []string{testReadToken, testAdminToken, readHash.ConfigValue()[7:], adminHash.ConfigValue()[7:],
		readHash.ConfigValue()[7:23], adminHash.ConfigValue()[7:23]} {
		require.NotContains(t, logs.String(), secret)
		require.NotContains(t, answers.String(), secret)
	}
}

// syncBuffer is a bytes.Buffer the logger's goroutines can share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
