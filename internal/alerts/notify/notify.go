// Package notify owns alert delivery of alerts.Event to webhook, Slack, Teams,
// Alertmanager and e-mail targets (docs/ALERTS.md): one bounded FIFO queue per
// target, drained in order by one goroutine retrying its head with backoff.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/alerts"
)

// Target types.
const (
	TypeWebhook      = "webhook"
	TypeSlack        = "slack"
	TypeTeams        = "teams"
	TypeAlertmanager = "alertmanager"
	TypeEmail        = "email"
)

// E-mail TLS modes.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

var (
	// ErrInvalidConfig wraps every validation error of New.
	ErrInvalidConfig = errors.New("notify: invalid configuration")
	// ErrUnknownTarget is returned by Send for a target name not configured.
	ErrUnknownTarget = errors.New("notify: unknown target")
	// ErrRefused marks a delivery the target refused for good (an HTTP 4xx
	// other than 408 and 429, an SMTP 5xx reply): it is not retried.
	ErrRefused = errors.New("notify: refused by target")
	// ErrStopped is returned by Send after Stop and by Start when called twice.
	ErrStopped = errors.New("notify: stopped")
)

// Configuration of the notifier.
type Configuration struct {
	Targets []Target `yaml:"targets"`
	// QueueSize is how many events wait per target (plus the one being
	// delivered); when full, the oldest waiting event is dropped.
	QueueSize int `yaml:"queue_size"`
	// MaxAge: an event not delivered this long after Send is dropped. It is
	// well over an hour so that a target down for an hour loses nothing.
	MaxAge time.Duration `yaml:"max_age"`
	// MinBackoff doubles after each failed attempt up to MaxBackoff.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
}

// Target is one destination.
type Target struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// URL is the webhook URL, or for Alertmanager its base URL
	// (alerts are posted to URL + "/api/v2/alerts").
	URL string `yaml:"url"`
	// Secret, for a webhook, is the HMAC-SHA256 key of the X-Tmsd-Signature header.
	Secret  string            `yaml:"secret"`
	Headers map[string]string `yaml:"headers"`
	Email   *Email            `yaml:"email"`
}

// Email is the SMTP configuration of an e-mail target.
type Email struct {
	Server string `yaml:"server"` // host:port
	// TLS is "starttls" (default: STARTTLS is required), "tls" (implicit
	// TLS, usually port 465) or "none".
	TLS                string   `yaml:"tls"`
	Username           string   `yaml:"username"`
	Password           string   `yaml:"password"`
	From               string   `yaml:"from"`
	To                 []string `yaml:"to"`
	InsecureSkipVerify bool     `yaml:"insecure_skip_verify"`
}

// DefaultConfiguration returns the default configuration (no targets).
func DefaultConfiguration() Configuration {
	return Configuration{
		QueueSize:  10000,
		MaxAge:     2 * time.Hour,
		MinBackoff: time.Second,
		MaxBackoff: 5 * time.Minute,
		Timeout:    10 * time.Second,
	}
}

// Dependencies of the notifier. Time comes from the time package so that
// tests run the notifier inside testing/synctest, where clock and timers agree.
type Dependencies struct {
	Registry prometheus.Registerer // nil: metrics are not registered
	Logger   *slog.Logger          // nil: discard
	// HTTPClient for HTTP targets; nil: one with Configuration.Timeout that
	// does not follow redirects (a redirected POST would become a GET).
	HTTPClient *http.Client
	// Store keeps the events not delivered at Stop for the next Start
	// (outbox.go); nil: they are lost with the process.
	Store Store
}

// Notifier delivers events to the configured targets.
type Notifier struct {
	cfg     Configuration
	log     *slog.Logger
	targets map[string]*target
	order   []*target
	store   Store

	mu      sync.Mutex
	started bool
	stopped bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New validates the configuration and prepares the queues and metrics. It
// opens no connection.
func New(cfg Configuration, deps Dependencies) (*Notifier, error) {
	if err := validate(&cfg); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{
			Timeout: cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	m := newMetrics()
	if deps.Registry != nil {
		for _, c := range m.collectors() {
			if err := deps.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("notify: register metrics: %w", err)
			}
		}
	}
	n := &Notifier{cfg: cfg, log: deps.Logger, store: deps.Store, targets: make(map[string]*target)}
	for i := range cfg.Targets {
		tc := &cfg.Targets[i]
		deliver, err := newDeliverer(tc, deps.HTTPClient, cfg.Timeout)
		if err != nil {
			return nil, &configError{fmt.Sprintf("target %q: %s", tc.Name, err)}
		}
		t := newTarget(tc.Name, tc.Type, cfg.QueueSize, deliver, m)
		n.targets[tc.Name] = t
		n.order = append(n.order, t)
	}
	return n, nil
}

// Start starts one delivery goroutine per target.
func (n *Notifier) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.stopped {
		return fmt.Errorf("notify: start: %w", ErrStopped)
	}
	n.started = true
	if err := n.loadOutbox(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	for _, t := range n.order {
		n.wg.Go(func() { n.run(ctx, t) })
		if t.typ == TypeAlertmanager {
			n.wg.Go(func() { n.keepalive(ctx, t) })
		}
	}
	return nil
}

// Stop ends the delivery goroutines, cancelling attempts in flight, and
// waits for them. Events not delivered stay counted by Pending; with a
// Store they are kept there for the next Start (the one in flight first:
// its receiver may have had it, so it may arrive twice, never not at all),
// else logged with their count per target.
func (n *Notifier) Stop() error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	cancel := n.cancel
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	n.wg.Wait()
	if n.store != nil {
		return n.saveOutbox()
	}
	for _, t := range n.order {
		if p := t.pending(); p > 0 {
			n.log.Warn("notify: events not delivered at stop", "target", t.name, "count", p)
		}
	}
	return nil
}

// Pending returns, per target, the events queued or in delivery.
func (n *Notifier) Pending() map[string]int {
	p := make(map[string]int, len(n.order))
	for _, t := range n.order {
		p[t.name] = t.pending()
	}
	return p
}

// Send queues ev for each named target and returns at once. Unknown names
// are reported with an error wrapping ErrUnknownTarget, but the known
// targets still get the event: a typo in one rule's target list must not
// silence the others.
func (n *Notifier) Send(targets []string, ev alerts.Event) error {
	n.mu.Lock()
	stopped := n.stopped
	n.mu.Unlock()
	if stopped {
		return fmt.Errorf("notify: send: %w", ErrStopped)
	}
	now := time.Now()
	var errs []error
	seen := make(map[string]bool, len(targets))
	for _, name := range targets {
		if seen[name] {
			continue
		}
		seen[name] = true
		t, ok := n.targets[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%w %q", ErrUnknownTarget, name))
			continue
		}
		if t.push(queued{ev: ev, enqueued: now}) {
			n.log.Error("notify: queue full, oldest events dropped",
				"target", t.name, "queue_size", n.cfg.QueueSize)
		}
	}
	return errors.Join(errs...)
}

// configError reads "notify: target "ops-mail": email.to: empty" and is
// ErrInvalidConfig for errors.Is.
type configError struct{ msg string }

func (e *configError) Error() string        { return "notify: " + e.msg }
func (e *configError) Is(target error) bool { return target == ErrInvalidConfig }

func validate(cfg *Configuration) error {
	bad := func(format string, args ...any) error {
		return &configError{fmt.Sprintf(format, args...)}
	}
	switch {
	case cfg.QueueSize <= 0:
		return bad("queue_size: must be positive")
	case cfg.MaxAge <= 0:
		return bad("max_age: must be positive")
	case cfg.MinBackoff <= 0:
		return bad("min_backoff: must be positive")
	case cfg.MaxBackoff < cfg.MinBackoff:
		return bad("max_backoff: below min_backoff")
	case cfg.Timeout <= 0:
		return bad("timeout: must be positive")
	}
	seen := make(map[string]bool)
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if t.Name == "" {
			return bad("target #%d: name: empty", i+1)
		}
		if seen[t.Name] {
			return bad("target %q: name: duplicate", t.Name)
		}
		seen[t.Name] = true
		if err := validateTarget(t); err != nil {
			return bad("target %q: %s", t.Name, err)
		}
	}
	return nil
}

func validateTarget(t *Target) error {
	switch t.Type {
	case TypeWebhook, TypeSlack, TypeTeams, TypeAlertmanager:
		if t.Email != nil {
			return fmt.Errorf("email: only for type %s", TypeEmail)
		}
		if t.Secret != "" && t.Type != TypeWebhook {
			return fmt.Errorf("secret: only for type %s", TypeWebhook)
		}
		if t.URL == "" {
			return errors.New("url: empty")
		}
		u, err := url.Parse(t.URL)
		if err != nil {
			return fmt.Errorf("url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url: %q: not an http or https URL", t.URL)
		}
		return nil
	case TypeEmail:
	case "":
		return errors.New("type: empty")
	default:
		return fmt.Errorf("type: unknown %q", t.Type)
	}
	if t.URL != "" || t.Secret != "" || len(t.Headers) > 0 {
		return fmt.Errorf("url, secret, headers: not used by type %s", TypeEmail)
	}
	e := t.Email
	if e == nil {
		return errors.New("email: missing")
	}
	if e.Server == "" {
		return errors.New("email.server: empty")
	}
	host, port, err := net.SplitHostPort(e.Server)
	if err != nil {
		return fmt.Errorf("email.server: %w", err)
	}
	if p, err := strconv.Atoi(port); host == "" || err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("email.server: %q: want host:port", e.Server)
	}
	switch e.TLS {
	case "", TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("email.tls: unknown %q (starttls, tls or none)", e.TLS)
	}
	if e.Password != "" && e.Username == "" {
		return errors.New("email.username: empty with a password")
	}
	if e.From == "" {
		return errors.New("email.from: empty")
	}
	if _, err := mail.ParseAddress(e.From); err != nil {
		return fmt.Errorf("email.from: %w", err)
	}
	if len(e.To) == 0 {
		return errors.New("email.to: empty")
	}
	for _, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("email.to: %q: %w", to, err)
		}
	}
	return nil
}
