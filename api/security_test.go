package api

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/decode/listen"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

const (
	readToken  = "tmsd_read-token-for-tests-only-0123456789abcdef"
	adminToken = "tmsd_admin-token-for-tests-only-0123456789abcdef"
	wrongToken = "tmsd_nobody-knows-this-one"
)

func lockedConfig() Configuration {
	cfg := DefaultConfiguration()
	cfg.ReadTokens = []TokenHash{HashToken("tmsd_another-read-token"), HashToken(readToken)}
	cfg.AdminTokens = []TokenHash{HashToken(adminToken)}
	return cfg
}

// do sends a request with an optional Authorization header.
func do(h http.Handler, method, path, auth string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	return rr
}

func TestParseTokenHash(t *testing.T) {
	h := HashToken("secret")
	got, err := ParseTokenHash(h.ConfigValue())
	require.NoError(t, err)
	require.Equal(t, h, got)
	require.True(t, strings.HasPrefix(h.ConfigValue(), "sha256:"))
	for _, bad := range []string{
		"", "secret", "sha256:", "sha256:abc", "SHA256:" + h.ConfigValue()[7:], "sha512:" + h.ConfigValue()[7:],
		"sha256:" + strings.Repeat("g", 64), h.ConfigValue() + "00",
	} {
		_, err := ParseTokenHash(bad)
		require.ErrorIs(t, err, ErrTokenHash, bad)
	}
	// The hash never prints, whatever the verb or the container.
	for _, s := range []string{fmt.Sprint(h), fmt.Sprintf("%x %v %+v %#v %s", h, h, []TokenHash{h}, h, h)} {
		require.NotContains(t, s, h.ConfigValue()[7:17])
	}
	b, err := json.Marshal(map[string]any{"t": []TokenHash{h}})
	require.NoError(t, err)
	require.JSONEq(t, `{"t": ["redacted"]}`, string(b))

	a, b2 := NewToken(), NewToken()
	require.NotEqual(t, a, b2)
	require.Regexp(t, `^tmsd_[A-Za-z0-9_-]{43}$`, a)
}

func TestAuthMatrix(t *testing.T) {
	cfg := lockedConfig()
	cfg.Static = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html>") })
	a := newTestAPIWith(t, cfg, func(d *Dependencies) {
		d.Config = map[string]any{"http": ":8080"}
	})
	h := a.Handler()
	const open, read, admin = "open", "read", "admin"
	endpoints := []struct {
		method, path, route, scope string
		ok                         int // the status once let in (0: 200): these requests carry no body
	}{
		{"GET", "/healthz", "/healthz", open, 0},
		{"GET", "/index.html", "/*", open, 0},
		{"GET", "/api/v1/top?by=app", "/api/v1/top", read, 0},
		{"GET", "/api/v1/series", "/api/v1/series", read, 0},
		{"GET", "/api/v1/report?by=app", "/api/v1/report", read, 0},
		{"GET", "/api/v1/exporters", "/api/v1/exporters", read, 0},
		{"GET", "/api/v1/rejected", "/api/v1/rejected", read, 0},
		{"GET", "/api/v1/capabilities", "/api/v1/capabilities", read, 0},
		{"GET", "/api/v1/data", "/api/v1/data", read, 0},
		{"POST", "/api/v1/peer/query", "/api/v1/peer/query", read, 400},
		{"GET", "/api/v1/openapi.json", "/api/v1/openapi.json", read, 0},
		{"GET", "/metrics", "/metrics", read, 0},
		{"GET", "/api/v1/config", "/api/v1/config", admin, 0},
		{"DELETE", "/api/v1/exporters/192.0.2.1", "/api/v1/exporters/:addr", admin, 0},
		{"POST", "/api/v1/admin/reload", "/api/v1/admin/reload", admin, 0},
		{"GET", "/debug/pprof/cmdline", "/debug/pprof/*", admin, 0},
		{"GET", "/api/v1/alerts", "/api/v1/alerts", read, 0},
		{"GET", "/api/v1/alerts/active", "/api/v1/alerts/active", read, 0},
		{"GET", "/api/v1/alerts/rules", "/api/v1/alerts/rules", read, 0},
		{"GET", "/api/v1/alerts/rules/x", "/api/v1/alerts/rules/:name", read, 404},
		{"GET", "/api/v1/alerts/silences", "/api/v1/alerts/silences", read, 0},
		{"PUT", "/api/v1/alerts/rules", "/api/v1/alerts/rules", admin, 400},
		{"PUT", "/api/v1/alerts/rules/x", "/api/v1/alerts/rules/:name", admin, 400},
		{"DELETE", "/api/v1/alerts/rules/x", "/api/v1/alerts/rules/:name", admin, 404},
		{"POST", "/api/v1/alerts/silences", "/api/v1/alerts/silences", admin, 400},
		{"DELETE", "/api/v1/alerts/silences/1", "/api/v1/alerts/silences/:id", admin, 404},
	}
	// Every route the API serves is in the matrix: a new endpoint must
	// decide its scope here.
	covered := map[string]bool{}
	for _, e := range endpoints {
		covered[e.method+" "+e.route] = true
	}
	for _, r := range a.echo.Routes() {
		if r.Path == "/api/v1" || r.Path == "/api/v1/*" {
			continue // the group's catch-all, behind read: see TestUnknownPathNeedsToken
		}
		require.True(t, covered[r.Method+" "+r.Path], "route %s %s has no row in the auth matrix", r.Method, r.Path)
	}

	want := map[string]map[string]int{ // scope → token → status
		open:  {"none": 200, "wrong": 200, "read": 200, "admin": 200, "basic": 200},
		read:  {"none": 401, "wrong": 401, "read": 200, "admin": 200, "basic": 401},
		admin: {"none": 401, "wrong": 401, "read": 403, "admin": 200, "basic": 401},
	}
	headers := map[string]string{
		"none": "", "wrong": "Bearer " + wrongToken, "read": "Bearer " + readToken, "admin": "bearer " + adminToken,
		"basic": "Basic " + readToken,
	}
	for _, e := range endpoints {
		for tok, auth := range headers {
			rr := do(h, e.method, e.path, auth)
			code := want[e.scope][tok]
			if code == 200 && e.ok != 0 {
				code = e.ok
			}
			require.Equal(t, code, rr.Code, "%s %s with %s token: %s", e.method, e.path, tok, rr.Body)
			switch code {
			case 401, 403:
				require.Contains(t, rr.Header().Get("WWW-Authenticate"), "Bearer")
				var body map[string]string
				require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &body))
				require.NotEmpty(t, body["error"])
			}
		}
	}
	require.Contains(t, do(h, "GET", "/api/v1/top?by=app", "Bearer "+wrongToken).Header().Get("WWW-Authenticate"), `error="invalid_token"`)
	require.Contains(t, do(h, "GET", "/api/v1/config", "Bearer "+readToken).Header().Get("WWW-Authenticate"), `error="insufficient_scope"`)

	// Refusals are counted by reason.
	reg := prometheus.NewRegistry()
	a2 := newTestAPIWith(t, lockedConfig(), func(d *Dependencies) { d.Registry = reg })
	do(a2.Handler(), "GET", "/api/v1/top", "")
	do(a2.Handler(), "GET", "/api/v1/top", "Bearer "+wrongToken)
	do(a2.Handler(), "GET", "/api/v1/top", "Bearer "+wrongToken)
	do(a2.Handler(), "GET", "/api/v1/config", "Bearer "+readToken)
	rr := do(a2.Handler(), "GET", "/metrics", "Bearer "+readToken)
	require.Equal(t, 200, rr.Code)
	require.Contains(t, rr.Body.String(), `tmsd_api_auth_failures_total{reason="missing"} 1`)
	require.Contains(t, rr.Body.String(), `tmsd_api_auth_failures_total{reason="invalid"} 2`)
	require.Contains(t, rr.Body.String(), `tmsd_api_auth_failures_total{reason="insufficient_scope"} 1`)
}

func TestOpenWithoutTokens(t *testing.T) {
	h := newTestAPI(t)
	for _, path := range []string{"/api/v1/top?by=app", "/metrics", "/api/v1/config", "/api/v1/rejected"} {
		require.Equal(t, 200, do(h, "GET", path, "").Code, path)
		require.Equal(t, 200, do(h, "GET", path, "Bearer anything").Code, path)
	}
}

func TestUnknownPathNeedsToken(t *testing.T) {
	h := newTestAPIWith(t, lockedConfig(), nil).Handler()
	require.Equal(t, 401, do(h, "GET", "/api/v1/nope", "").Code, "what exists is not told without a token")
	require.Equal(t, 404, do(h, "GET", "/api/v1/nope", "Bearer "+readToken).Code)
}

func TestAuthLogsThrottled(t *testing.T) {
	var logs bytes.Buffer
	clock := now
	a := newTestAPIWith(t, lockedConfig(), func(d *Dependencies) {
		d.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		d.Clock = func() time.Time { return clock }
	})
	for range 5 {
		do(a.Handler(), "GET", "/api/v1/exporters", "Bearer "+wrongToken)
	}
	require.Equal(t, 1, strings.Count(logs.String(), "invalid bearer token"), logs.String())
	clock = clock.Add(time.Minute)
	do(a.Handler(), "GET", "/api/v1/exporters", "Bearer "+wrongToken)
	require.Equal(t, 2, strings.Count(logs.String(), "invalid bearer token"), logs.String())
	require.NotContains(t, logs.String(), wrongToken)
}

func TestNewValidatesSecurityConfig(t *testing.T) {
	deps := newTestAPIWith(t, DefaultConfiguration(), nil).deps
	f := func(mutate func(*Configuration), want string) {
		t.Helper()
		cfg := DefaultConfiguration()
		mutate(&cfg)
		deps.Registry = nil
		_, err := New(cfg, deps)
		require.ErrorContains(t, err, want)
	}
	f(func(c *Configuration) { c.TLSCert = "cert.pem" }, "set both or neither")
	f(func(c *Configuration) { c.TLSKey = "key.pem" }, "set both or neither")
	f(func(c *Configuration) { c.MaxRange = 0 }, "max_range")
	f(func(c *Configuration) { c.MaxN = 0 }, "max_n")
	f(func(c *Configuration) { c.ReadTimeout = 0 }, "timeouts")
	f(func(c *Configuration) { c.MaxBodyBytes = 0 }, "size limits")
}

func TestCaps(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxN = 50
	cfg.MaxRange = 2 * time.Hour
	h := newTestAPIWith(t, cfg, nil).Handler()
	f := func(path string, code int, param string) {
		t.Helper()
		var body map[string]any
		require.Equal(t, code, get(t, h, path, &body), path)
		if param != "" {
			require.Equal(t, param, body["parameter"], path)
		}
	}
	f("/api/v1/top?by=app&n=50", 200, "")
	f("/api/v1/top?by=app&n=51", 400, "n")
	f("/api/v1/top?by=app&from=-2h", 200, "")
	f("/api/v1/top?by=app&from=-3h", 400, "from")
	f("/api/v1/series?from=-3h", 400, "from")
	f("/api/v1/top?by=app&from=2026-11-01T00:00:00Z&to=2026-11-01T02:00:00Z", 200, "")
	f("/api/v1/top?by=app&from=2026-11-01T00:00:00Z&to=2026-11-01T02:01:00Z", 400, "from")
}

// startServer serves a on 127.0.0.1, port chosen by the kernel.
func startServer(t *testing.T, a *API) string {
	t.Helper()
	a.cfg.Listen = "127.0.0.1:0"
	require.NoError(t, a.Start())
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	return a.Addr().String()
}

func TestServerLimits(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.MaxHeaderBytes = 1 << 10
	cfg.MaxBodyBytes = 100
	cfg.ReadHeaderTimeout = 200 * time.Millisecond
	addr := startServer(t, newTestAPIWith(t, cfg, nil))
	client := &http.Client{Timeout: 10 * time.Second}

	// net/http allows MaxHeaderBytes plus 4 KiB of slack before answering 431.
	req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("a", 8<<10))
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	for _, size := range []int{100, 101} {
		resp, err = client.Post("http://"+addr+"/api/v1/exporters", "application/json", bytes.NewReader(make([]byte, size)))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if int64(size) > cfg.MaxBodyBytes {
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode, string(body))
			require.Contains(t, string(body), `"error"`)
		} else {
			require.NotEqual(t, http.StatusRequestEntityTooLarge, resp.StatusCode, "within the limit, the body reaches routing: %s", body)
		}
	}

	// A client that never finishes its headers is cut off after ReadHeaderTimeout.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	start := time.Now()
	_, err = bufio.NewReader(conn).ReadByte()
	require.ErrorIs(t, err, io.EOF, "the server closes the connection (not our deadline)")
	require.Less(t, time.Since(start), 5*time.Second)
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tmsd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	cfg := lockedConfig()
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	addr := startServer(t, newTestAPIWith(t, cfg, nil))

	trusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, err := http.NewRequest("GET", "https://"+addr+"/api/v1/exporters", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+readToken)
	resp, err := trusting.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode, string(body))
	require.Contains(t, string(body), "192.0.2.1")
	require.NotNil(t, resp.TLS)
	require.GreaterOrEqual(t, resp.TLS.Version, uint16(tls.VersionTLS12))

	// A client that does not trust the certificate fails the handshake.
	_, err = (&http.Client{Timeout: 10 * time.Second}).Get("https://" + addr + "/healthz")
	var unknown x509.UnknownAuthorityError
	require.True(t, errors.As(err, &unknown), "%v", err)

	// Plain HTTP to the TLS port is refused.
	resp, err = (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestTLSBadFilesStopStart(t *testing.T) {
	certFile, _, _ := selfSigned(t)
	cfg := DefaultConfiguration()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCert, cfg.TLSKey = certFile, certFile // a certificate is no key
	a := newTestAPIWith(t, cfg, nil)
	require.ErrorContains(t, a.Start(), "TLS certificate and key")
	require.NoError(t, a.Stop())
}

func TestOpenNonLoopbackWarns(t *testing.T) {
	f := func(cfg Configuration, listen string, wantWarn bool) {
		t.Helper()
		var logs bytes.Buffer
		a := newTestAPIWith(t, cfg, func(d *Dependencies) { d.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
		a.cfg.Listen = listen
		require.NoError(t, a.Start())
		require.NoError(t, a.Stop())
		require.Equal(t, wantWarn, strings.Contains(logs.String(), "open to anyone"), logs.String())
	}
	f(DefaultConfiguration(), "127.0.0.1:0", false)
	f(DefaultConfiguration(), ":0", true)
	f(lockedConfig(), ":0", false)
}

func TestForgetExporter(t *testing.T) {
	dec, err := decode.New(decode.DefaultConfiguration())
	require.NoError(t, err)
	h := newTestAPIWith(t, lockedConfig(), func(d *Dependencies) { d.Exporters = dec }).Handler()
	var exporter netip.Addr
	var last []byte
	datagrams := 0
	_, err = pcapsrc.Read("../testdata/pcaps/softflowd-v9.pcap", func(d pcapsrc.Datagram) error {
		exporter = d.Src.Addr()
		datagrams++
		recs, err := dec.Decode(d.Src.Addr(), d.Payload, d.Time, nil)
		if err == nil && len(recs) > 0 {
			last = append(last[:0], d.Payload...)
		}
		return err
	})
	require.NoError(t, err)
	require.NotNil(t, last)
	stats := dec.Exporters()
	require.Len(t, stats, 1)
	require.Positive(t, stats[0].Templates)

	admin := "Bearer " + adminToken
	f := func(path string, code int, wantBody string) {
		t.Helper()
		rr := do(h, "DELETE", path, admin)
		require.Equal(t, code, rr.Code, rr.Body.String())
		require.Contains(t, rr.Body.String(), wantBody)
	}
	f("/api/v1/exporters/router1", 400, `"parameter":"addr"`)
	f("/api/v1/exporters/192.0.2.99", 404, "unknown exporter 192.0.2.99")
	f("/api/v1/exporters/"+exporter.String(), 200, `"forgotten":"`+exporter.String()+`"`)
	f("/api/v1/exporters/"+exporter.String(), 404, "unknown exporter")
	require.Empty(t, dec.Exporters())

	// Its templates went too: data alone cannot be decoded any more (it is
	// held, waiting for a template).
	recs, err := dec.Decode(exporter, last, now, nil)
	require.NoError(t, err)
	require.Empty(t, recs)
	stats = dec.Exporters()
	require.EqualValues(t, 1, stats[0].Datagrams, "counters start again")
	require.Equal(t, 1, stats[0].Holding)

	// An IPv4-mapped spelling names the same exporter.
	f("/api/v1/exporters/::ffff:"+exporter.String(), 200, "forgotten")
}

type fakeOffenders []listen.Offender

func (f fakeOffenders) Snapshot() (uint64, []listen.Offender) { return 42, f }

func TestRejected(t *testing.T) {
	seen := time.Date(2026, 11, 1, 10, 29, 0, 0, time.UTC)
	h := newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) {
		d.Offenders = fakeOffenders{{Source: netip.MustParseAddr("198.51.100.7"), Datagrams: 40, Error: 1, LastSeen: seen}}
	}).Handler()
	rr := do(h, "GET", "/api/v1/rejected", "")
	require.Equal(t, 200, rr.Code)
	require.JSONEq(t, `{"total": 42, "sources": [{"source": "198.51.100.7", "datagrams": 40, "error": 1, "last_seen": "2026-11-01T10:29:00Z"}]}`, rr.Body.String())

	rr = do(newTestAPI(t), "GET", "/api/v1/rejected", "")
	require.JSONEq(t, `{"total": 0, "sources": []}`, rr.Body.String())
}

func TestCapabilitiesEndpoint(t *testing.T) {
	f := func(caps Capabilities, want string) {
		t.Helper()
		h := newTestAPIWith(t, DefaultConfiguration(), func(d *Dependencies) { d.Capabilities = caps }).Handler()
		rr := do(h, "GET", "/api/v1/capabilities", "")
		require.Equal(t, 200, rr.Code)
		require.JSONEq(t, want, rr.Body.String())
	}
	f(Capabilities{}, `{"scopes": ["exporter", "proto"], "off": {}}`)
	f(Capabilities{Scopes: []string{"exporter", "proto", "app", "ip"}, Off: map[string]string{"if": "aggregate.scope_interface"}},
		`{"scopes": ["exporter", "proto", "app", "ip"], "off": {"if": "aggregate.scope_interface"}}`)
}

func TestConfigEndpoint(t *testing.T) {
	h := newTestAPIWith(t, lockedConfig(), func(d *Dependencies) {
		d.Config = map[string]any{"http": ":8080", "api": map[string]any{"read_tokens": []TokenHash{HashToken(readToken)}}}
	}).Handler()
	rr := do(h, "GET", "/api/v1/config", "Bearer "+adminToken)
	require.Equal(t, 200, rr.Code)
	require.JSONEq(t, `{"http": ":8080", "api": {"read_tokens": ["redacted"]}}`, rr.Body.String())
}
