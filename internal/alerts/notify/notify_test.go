package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/alerts"
)

func sampleEvent(i int) alerts.Event {
	at := time.Date(2026, 12, 3, 15, 4, 0, 0, time.UTC)
	return alerts.Event{
		Kind:      alerts.KindFiring,
		Rule:      "https-spike",
		Severity:  "critical",
		Labels:    map[string]string{"team": "noc", "site-code": "seoul"},
		Scope:     "if=192.0.2.1:3&dir=in",
		Dim:       "dport",
		Key:       "443/tcp",
		Label:     "443/tcp https",
		Metric:    "bps",
		Value:     8.4e9,
		Threshold: 8e9,
		Baseline:  4e9,
		Since:     at.Add(-5 * time.Minute),
		At:        at,
		URL:       "https://tmsd.example/keys?dim=dport&key=443%2Ftcp&n=" + strconv.Itoa(i),
		Summary:   fmt.Sprintf("https on seoul-bb1 xe-0/0/1 in at 8.4 Gbps > 8 Gbps for 5m #%d", i),
	}
}

// recorder is an HTTP target. It runs outside any synctest bubble (its
// goroutines must not be in one), so it shares state by mutex only.
type recorder struct {
	srv *httptest.Server
	// status answers the i-th request (from 0); nil: 200.
	status func(i int) int
	header http.Header // added to every answer

	mu   sync.Mutex
	reqs []recorded
	got  chan recorded // successful requests, for tests without a bubble
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
	status       int
}

func newRecorder(t *testing.T, status func(i int) int) *recorder {
	r := &recorder{status: status, header: http.Header{}, got: make(chan recorded, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		r.mu.Lock()
		code := http.StatusOK
		if r.status != nil {
			code = r.status(len(r.reqs))
		}
		rec := recorded{req.Method, req.URL.Path, req.Header.Clone(), body, code}
		r.reqs = append(r.reqs, rec)
		for k, v := range r.header {
			w.Header()[k] = v
		}
		r.mu.Unlock()
		w.WriteHeader(code)
		if code < 300 {
			select {
			case r.got <- rec:
			default:
			}
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

// delivered returns the bodies answered with a 2xx.
func (r *recorder) delivered() [][]byte {
	var out [][]byte
	for _, q := range r.requests() {
		if q.status < 300 {
			out = append(out, q.body)
		}
	}
	return out
}

func (r *recorder) next(t *testing.T) recorded {
	t.Helper()
	select {
	case q := <-r.got:
		return q
	case <-time.After(10 * time.Second):
		t.Fatal("no request received within 10s")
		return recorded{}
	}
}

// start makes a started notifier that its test stops.
func start(t *testing.T, cfg Configuration, deps Dependencies) *Notifier {
	t.Helper()
	n, err := New(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, n.Start())
	t.Cleanup(func() { require.NoError(t, n.Stop()) })
	return n
}

// bubbleClient keeps no idle connection: a connection's reader goroutine,
// blocked on the network, would keep a synctest bubble from ever idling.
func bubbleClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func webhookConfig(url string) Configuration {
	cfg := DefaultConfiguration()
	cfg.Targets = []Target{{Name: "hook", Type: TypeWebhook, URL: url}}
	return cfg
}

func eventNumber(t *testing.T, body []byte) string {
	t.Helper()
	var ev alerts.Event
	require.NoError(t, json.Unmarshal(body, &ev))
	return ev.URL[len(ev.URL)-1:]
}

func TestValidation(t *testing.T) {
	mailTarget := func(f func(e *Email)) Target {
		e := &Email{Server: "smtp.example.org:587", From: "tmsd@example.org", To: []string{"ops@example.org"}}
		f(e)
		return Target{Name: "ops-mail", Type: TypeEmail, Email: e}
	}
	cases := []struct {
		name    string
		mutate  func(c *Configuration)
		wantErr string // "" for a valid configuration
	}{
		{"default", func(*Configuration) {}, ""},
		{"every type", func(c *Configuration) {
			c.Targets = []Target{
				{Name: "a", Type: TypeWebhook, URL: "https://h.example/x", Secret: "s", Headers: map[string]string{"X-A": "b"}},
				{Name: "b", Type: TypeSlack, URL: "https://hooks.slack.com/services/T/B/X"},
				{Name: "c", Type: TypeTeams, URL: "https://example.webhook.office.com/x"},
				{Name: "d", Type: TypeAlertmanager, URL: "http://am:9093"},
				mailTarget(func(e *Email) { e.TLS = TLSImplicit; e.Username = "u"; e.Password = "p" }),
			}
		}, ""},
		{"queue size", func(c *Configuration) { c.QueueSize = 0 }, "notify: queue_size: must be positive"},
		{"max age", func(c *Configuration) { c.MaxAge = 0 }, "notify: max_age: must be positive"},
		{"backoffs", func(c *Configuration) { c.MaxBackoff = c.MinBackoff / 2 }, "notify: max_backoff: below min_backoff"},
		{"timeout", func(c *Configuration) { c.Timeout = -1 }, "notify: timeout: must be positive"},
		{"no name", func(c *Configuration) {
			c.Targets = []Target{{Type: TypeWebhook, URL: "http://h"}}
		}, "notify: target #1: name: empty"},
		{"duplicate", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeWebhook, URL: "http://h"}, {Name: "x", Type: TypeSlack, URL: "http://h"}}
		}, `notify: target "x": name: duplicate`},
		{"unknown type", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: "pager", URL: "http://h"}}
		}, `notify: target "x": type: unknown "pager"`},
		{"no type", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", URL: "http://h"}}
		}, `notify: target "x": type: empty`},
		{"no url", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeSlack}}
		}, `notify: target "x": url: empty`},
		{"bad url", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeTeams, URL: "ftp://h/x"}}
		}, `notify: target "x": url: "ftp://h/x": not an http or https URL`},
		{"relative url", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeAlertmanager, URL: "/api"}}
		}, `notify: target "x": url: "/api": not an http or https URL`},
		{"secret on slack", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeSlack, URL: "http://h", Secret: "s"}}
		}, `notify: target "x": secret: only for type webhook`},
		{"email on webhook", func(c *Configuration) {
			c.Targets = []Target{{Name: "x", Type: TypeWebhook, URL: "http://h", Email: &Email{}}}
		}, `notify: target "x": email: only for type email`},
		{"email missing", func(c *Configuration) {
			c.Targets = []Target{{Name: "ops-mail", Type: TypeEmail}}
		}, `notify: target "ops-mail": email: missing`},
		{"email url", func(c *Configuration) {
			tg := mailTarget(func(*Email) {})
			tg.URL = "http://h"
			c.Targets = []Target{tg}
		}, `notify: target "ops-mail": url, secret, headers: not used by type email`},
		{"email to", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.To = nil })}
		}, `notify: target "ops-mail": email.to: empty`},
		{"email bad to", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.To = []string{"ops"} })}
		}, `notify: target "ops-mail": email.to: "ops": mail: missing '@' or angle-addr`},
		{"email from", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.From = "" })}
		}, `notify: target "ops-mail": email.from: empty`},
		{"email server", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.Server = "" })}
		}, `notify: target "ops-mail": email.server: empty`},
		{"email server port", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.Server = "smtp.example.org:smtp" })}
		}, `notify: target "ops-mail": email.server: "smtp.example.org:smtp": want host:port`},
		{"email server no port", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.Server = "smtp.example.org" })}
		}, `notify: target "ops-mail": email.server: address smtp.example.org: missing port in address`},
		{"email tls", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.TLS = "ssl" })}
		}, `notify: target "ops-mail": email.tls: unknown "ssl" (starttls, tls or none)`},
		{"email password alone", func(c *Configuration) {
			c.Targets = []Target{mailTarget(func(e *Email) { e.Password = "p" })}
		}, `notify: target "ops-mail": email.username: empty with a password`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			tc.mutate(&cfg)
			n, err := New(cfg, Dependencies{})
			if tc.wantErr == "" {
				require.NoError(t, err)
				require.Len(t, n.Pending(), len(cfg.Targets))
				return
			}
			require.EqualError(t, err, tc.wantErr)
			require.ErrorIs(t, err, ErrInvalidConfig)
		})
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	_, err := New(webhookConfig("http://127.0.0.1:1/"), Dependencies{Registry: reg})
	require.NoError(t, err)
	// The children exist from New, before any event.
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	require.Equal(t, 1+1+3+1, n)
	_, err = New(webhookConfig("http://127.0.0.1:1/"), Dependencies{Registry: reg})
	require.Error(t, err, "a second notifier on the same registry")
}

func TestSendUnknownTargetAndQueueFull(t *testing.T) {
	rec := newRecorder(t, nil)
	reg := prometheus.NewRegistry()
	cfg := webhookConfig(rec.srv.URL)
	cfg.QueueSize = 2
	n, err := New(cfg, Dependencies{Registry: reg})
	require.NoError(t, err)

	err = n.Send([]string{"nope", "hook", "hook"}, sampleEvent(0))
	require.ErrorIs(t, err, ErrUnknownTarget)
	require.ErrorContains(t, err, `"nope"`)
	require.Equal(t, map[string]int{"hook": 1}, n.Pending(), "known target still gets it, once")

	for i := 1; i < 5; i++ {
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(i)))
	}
	require.Equal(t, map[string]int{"hook": 2}, n.Pending())
	require.Equal(t, 3.0, testutil.ToFloat64(n.targets["hook"].droppedFull))
	require.Equal(t, 2.0, testutil.ToFloat64(n.targets["hook"].queueLen))

	require.NoError(t, n.Start())
	t.Cleanup(func() { require.NoError(t, n.Stop()) })
	// The oldest were dropped: the two newest arrive, in order.
	require.Equal(t, "3", eventNumber(t, rec.next(t).body))
	require.Equal(t, "4", eventNumber(t, rec.next(t).body))
}

func TestDownTargetLosesNothing(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rec := newRecorder(t, func(int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		n := start(t, webhookConfig(rec.srv.URL), Dependencies{Registry: reg, HTTPClient: bubbleClient()})
		tg := n.targets["hook"]
		for i := range 5 {
			require.NoError(t, n.Send([]string{"hook"}, sampleEvent(i)))
		}

		time.Sleep(time.Hour)
		synctest.Wait()
		attempts := len(rec.requests())
		require.Empty(t, rec.delivered())
		// 1s doubling to 5m: 9 attempts in the first 511s, then one per 5m.
		require.Equal(t, 9+(3600-511)/300+1, attempts)
		require.Equal(t, float64(attempts), testutil.ToFloat64(tg.failures))
		require.Equal(t, map[string]int{"hook": 5}, n.Pending())
		require.Equal(t, 5.0, testutil.ToFloat64(tg.queueLen))

		down.Store(false)
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		var got []string
		for _, b := range rec.delivered() {
			got = append(got, eventNumber(t, b))
		}
		require.Equal(t, []string{"0", "1", "2", "3", "4"}, got, "every event, once, in order")
		require.Equal(t, attempts+5, len(rec.requests()), "no retry after success")
		require.Equal(t, 5.0, testutil.ToFloat64(tg.sent))
		require.Equal(t, 0.0, testutil.ToFloat64(tg.droppedOld))
		require.Equal(t, map[string]int{"hook": 0}, n.Pending())
		require.Equal(t, 0.0, testutil.ToFloat64(tg.queueLen))
	})
}

func TestMaxAgeDrops(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rec := newRecorder(t, func(int) int {
		if down.Load() {
			return http.StatusBadGateway
		}
		return http.StatusNoContent
	})
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		cfg := webhookConfig(rec.srv.URL)
		cfg.MaxAge = 30 * time.Minute
		n := start(t, cfg, Dependencies{Registry: reg, HTTPClient: bubbleClient()})
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(0)))
		time.Sleep(10 * time.Minute)
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(1)))

		// At 35m the first is past MaxAge, the second (sent at 10m) not.
		time.Sleep(25 * time.Minute)
		synctest.Wait()
		require.Equal(t, 1.0, testutil.ToFloat64(n.targets["hook"].droppedOld))
		require.Equal(t, map[string]int{"hook": 1}, n.Pending())
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tmsd_alerts_events_dropped_total Alert events given up, per target and reason (queue_full, too_old, refused).
# TYPE tmsd_alerts_events_dropped_total counter
tmsd_alerts_events_dropped_total{reason="queue_full",target="hook"} 0
tmsd_alerts_events_dropped_total{reason="refused",target="hook"} 0
tmsd_alerts_events_dropped_total{reason="too_old",target="hook"} 1
`), "tmsd_alerts_events_dropped_total"))

		down.Store(false)
		time.Sleep(5*time.Minute + time.Second)
		synctest.Wait()
		bodies := rec.delivered()
		require.Len(t, bodies, 1)
		require.Equal(t, "1", eventNumber(t, bodies[0]))
		require.Equal(t, 1.0, testutil.ToFloat64(n.targets["hook"].droppedOld))
	})
}

func TestRefusedNotRetried(t *testing.T) {
	rec := newRecorder(t, func(i int) int {
		if i == 0 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	synctest.Test(t, func(t *testing.T) {
		n := start(t, webhookConfig(rec.srv.URL), Dependencies{HTTPClient: bubbleClient()})
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(0)))
		require.NoError(t, n.Send([]string{"hook"}, sampleEvent(1)))
		time.Sleep(time.Hour)
		synctest.Wait()
		reqs := rec.requests()
		require.Len(t, reqs, 2, "the refused event is not retried, the next goes on")
		require.Equal(t, "0", eventNumber(t, reqs[0].body))
		require.Equal(t, "1", eventNumber(t, reqs[1].body))
		tg := n.targets["hook"]
		require.Equal(t, 1.0, testutil.ToFloat64(tg.refuse))
		require.Equal(t, 1.0, testutil.ToFloat64(tg.failures))
		require.Equal(t, 1.0, testutil.ToFloat64(tg.sent))
	})
}

func TestRetryStatuses(t *testing.T) {
	f := func(status int, retryAfter string, wantWait time.Duration) {
		t.Helper()
		rec := newRecorder(t, func(i int) int {
			if i == 0 {
				return status
			}
			return http.StatusOK
		})
		if retryAfter != "" {
			rec.header.Set("Retry-After", retryAfter)
		}
		synctest.Test(t, func(t *testing.T) {
			n := start(t, webhookConfig(rec.srv.URL), Dependencies{HTTPClient: bubbleClient()})
			require.NoError(t, n.Send([]string{"hook"}, sampleEvent(0)))
			time.Sleep(wantWait - time.Millisecond)
			synctest.Wait()
			require.Len(t, rec.requests(), 1, "status %d: retried too early", status)
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			require.Len(t, rec.requests(), 2, "status %d: not retried", status)
			require.Len(t, rec.delivered(), 1)
		})
	}
	f(http.StatusRequestTimeout, "", time.Second)
	f(http.StatusTooManyRequests, "120", 120*time.Second)
	f(http.StatusServiceUnavailable, "7200", 5*time.Minute) // capped at MaxBackoff
	f(http.StatusInternalServerError, "", time.Second)
}

func TestRedirectNotFollowed(t *testing.T) {
	rec := newRecorder(t, func(i int) int {
		if i == 0 {
			return http.StatusTemporaryRedirect
		}
		return http.StatusOK
	})
	rec.header.Set("Location", "/elsewhere")
	n, err := New(webhookConfig(rec.srv.URL+"/hook"), Dependencies{})
	require.NoError(t, err)
	ev := sampleEvent(0)
	err = n.targets["hook"].deliver(t.Context(), &ev)
	require.ErrorContains(t, err, "HTTP 307")
	require.NotErrorIs(t, err, ErrRefused)
	require.Len(t, rec.requests(), 1)
}

func TestStopReportsPending(t *testing.T) {
	rec := newRecorder(t, func(int) int { return http.StatusServiceUnavailable })
	synctest.Test(t, func(t *testing.T) {
		n, err := New(webhookConfig(rec.srv.URL), Dependencies{HTTPClient: bubbleClient()})
		require.NoError(t, err)
		require.NoError(t, n.Start())
		require.ErrorIs(t, n.Start(), ErrStopped)
		for i := range 3 {
			require.NoError(t, n.Send([]string{"hook"}, sampleEvent(i)))
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		require.NoError(t, n.Stop())
		require.Equal(t, map[string]int{"hook": 3}, n.Pending(), "the one in flight counts")
		require.ErrorIs(t, n.Send([]string{"hook"}, sampleEvent(4)), ErrStopped)
		require.NoError(t, n.Stop())
	})
}

func TestStopWithoutStart(t *testing.T) {
	n, err := New(webhookConfig("http://127.0.0.1:1/"), Dependencies{})
	require.NoError(t, err)
	require.NoError(t, n.Send([]string{"hook"}, sampleEvent(0)))
	require.NoError(t, n.Stop())
	require.Equal(t, map[string]int{"hook": 1}, n.Pending())
	require.True(t, errors.Is(n.Start(), ErrStopped))
}
