package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// TokenHash is the SHA-256 of an API bearer token. Tokens are 256 random
// bits (NewToken), so a plain hash is as hard to invert as the token is to
// guess: no salt or slow hash is needed, and the configuration holds no secret
// that would let one call the API. It prints, logs and marshals as "redacted"
// all the same; ConfigValue is the one way to spell it out.
type TokenHash [sha256.Size]byte

const tokenHashPrefix = "sha256:"

// ErrTokenHash is returned (wrapped) by ParseTokenHash.
var ErrTokenHash = errors.New(`token hash must be "sha256:" and 64 hex digits, as printed by "tmsd token"`)

// ParseTokenHash reads a hash in its configuration form, "sha256:<64 hex digits>".
func ParseTokenHash(s string) (TokenHash, error) {
	var h TokenHash
	hexPart, ok := strings.CutPrefix(s, tokenHashPrefix)
	if !ok || len(hexPart) != 2*len(h) {
		return h, ErrTokenHash
	}
	if _, err := hex.Decode(h[:], []byte(hexPart)); err != nil {
		return h, fmt.Errorf("%w: %v", ErrTokenHash, err)
	}
	return h, nil
}

// HashToken hashes a presented token.
func HashToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// NewToken returns a new random token: "tmsd_" (so that secret scanners can
// spot a leaked one) and 32 random bytes in unpadded base64url.
func NewToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return "tmsd_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// ConfigValue spells the hash out as the configuration file takes it.
func (h TokenHash) ConfigValue() string { return tokenHashPrefix + hex.EncodeToString(h[:]) }

// String, GoString, LogValue and MarshalText keep the hash out of logs,
// error messages and the configuration the API shows.
func (TokenHash) String() string                  { return "redacted" }
func (TokenHash) GoString() string                { return `"redacted"` }
func (TokenHash) LogValue() slog.Value            { return slog.StringValue("redacted") }
func (TokenHash) MarshalText() ([]byte, error)    { return []byte("redacted"), nil }
func (h TokenHash) Format(f fmt.State, verb rune) { fmt.Fprint(f, "redacted") }

// scope is what a request may do. Each scope includes the ones below it.
type scope uint8

const (
	scopeNone  scope = iota
	scopeRead        // top, series, report, exporters, rejected, /metrics
	scopeAdmin       // configuration, deletes, /debug/pprof
)

var scopeNames = [...]string{scopeNone: "none", scopeRead: "read", scopeAdmin: "admin"}

// authenticator checks bearer tokens against the configured hashes.
type authenticator struct {
	read, admin []TokenHash
	clock       func() time.Time
	logger      *slog.Logger
	logEvery    time.Duration
	lastLog     atomic.Int64

	missing, invalid, forbidden prometheus.Counter
}

func newAuthenticator(cfg Configuration, deps Dependencies) (*authenticator, error) {
	a := &authenticator{read: cfg.ReadTokens, admin: cfg.AdminTokens, clock: deps.Clock, logger: deps.Logger, logEvery: time.Minute}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tmsd_api_auth_failures_total",
		Help: "API requests refused: no bearer token (missing), an unknown one (invalid), or a read token on an admin endpoint (insufficient_scope).",
	}, []string{"reason"})
	if err := deps.Registry.Register(failures); err != nil {
		return nil, fmt.Errorf("api: metrics: %w", err)
	}
	a.missing = failures.WithLabelValues("missing")
	a.invalid = failures.WithLabelValues("invalid")
	a.forbidden = failures.WithLabelValues("insufficient_scope")
	return a, nil
}

// enabled tells whether any token is configured; if none, the API is open.
func (a *authenticator) enabled() bool { return len(a.read)+len(a.admin) > 0 }

// scopeOf returns the scope a presented token grants, and whether a token was
// presented at all. The presented token's hash is compared with every
// configured hash, in constant time and without stopping at a match, so the
// time taken tells neither whether nor which hash matched.
func (a *authenticator) scopeOf(r *http.Request) (scope, bool) {
	token, ok := bearerToken(r.Header.Get(echo.HeaderAuthorization))
	if !ok {
		return scopeNone, false
	}
	h := HashToken(token)
	read, admin := 0, 0
	for i := range a.read {
		read |= subtle.ConstantTimeCompare(h[:], a.read[i][:])
	}
	for i := range a.admin {
		admin |= subtle.ConstantTimeCompare(h[:], a.admin[i][:])
	}
	switch {
	case admin == 1:
		return scopeAdmin, true
	case read == 1:
		return scopeRead, true
	}
	return scopeNone, true
}

// bearerToken extracts the token of an "Authorization: Bearer TOKEN" header.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// require lets a request through when its token grants need: 401 when the
// token is absent or unknown, 403 when it is valid but too weak.
func (a *authenticator) require(need scope) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !a.enabled() {
				return next(c)
			}
			got, presented := a.scopeOf(c.Request())
			if got >= need {
				return next(c)
			}
			h := c.Response().Header()
			switch {
			case !presented:
				a.missing.Inc()
				h.Set(echo.HeaderWWWAuthenticate, `Bearer realm="tmsd"`)
				return c.JSON(http.StatusUnauthorized, map[string]string{"error": "a bearer token is required (Authorization: Bearer TOKEN)"})
			case got == scopeNone:
				a.invalid.Inc()
				a.logInvalid(c)
				h.Set(echo.HeaderWWWAuthenticate, `Bearer realm="tmsd", error="invalid_token"`)
				return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid bearer token"})
			}
			a.forbidden.Inc()
			h.Set(echo.HeaderWWWAuthenticate, fmt.Sprintf(`Bearer realm="tmsd", error="insufficient_scope", scope=%q`, scopeNames[need]))
			return c.JSON(http.StatusForbidden, map[string]string{"error": fmt.Sprintf("this endpoint needs an %s token", scopeNames[need])})
		}
	}
}

// logInvalid logs a refused token at most once per logEvery: the counter
// tells how many, the log tells from where. The token itself is never logged.
func (a *authenticator) logInvalid(c echo.Context) {
	now := a.clock().UnixNano()
	last := a.lastLog.Load()
	if last != 0 && now-last < int64(a.logEvery) || !a.lastLog.CompareAndSwap(last, now) {
		return
	}
	a.logger.Warn("API request with an invalid bearer token refused (logged once a minute; see tmsd_api_auth_failures_total)",
		"remote", c.Request().RemoteAddr, "path", c.Request().URL.Path)
}
