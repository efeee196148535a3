package notify

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmsd/tmsd/internal/alerts"
)

// logEvery throttles the failure logs of a target that stays down.
const logEvery = 10 * time.Minute

type metrics struct {
	sent     *prometheus.CounterVec
	failures *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	queue    *prometheus.GaugeVec
}

func newMetrics() *metrics {
	return &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmsd_alerts_notifications_sent_total",
			Help: "Alert notifications delivered, per target.",
		}, []string{"target", "type"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmsd_alerts_delivery_failures_total",
			Help: "Failed delivery attempts (each retry counts), per target.",
		}, []string{"target"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tmsd_alerts_events_dropped_total",
			Help: "Alert events given up, per target and reason (queue_full, too_old, refused).",
		}, []string{"target", "reason"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmsd_alerts_queue_length",
			Help: "Alert events queued or in delivery, per target.",
		}, []string{"target"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sent, m.failures, m.dropped, m.queue}
}

type queued struct {
	ev       alerts.Event
	enqueued time.Time
	// keepalive: an Alertmanager re-post of an alert still firing
	// (alertmanager.go), not an event of its own.
	keepalive bool
}

// deliverFunc makes one delivery attempt. An error wrapping ErrRefused is
// final; an error implementing retryAfter sets the least wait before the next.
type deliverFunc func(ctx context.Context, ev *alerts.Event) error

type target struct {
	name, typ string
	deliver   deliverFunc

	sent, failures                  prometheus.Counter
	droppedFull, droppedOld, refuse prometheus.Counter
	queueLen                        prometheus.Gauge

	mu sync.Mutex
	// buf is a ring of n waiting events from head; inflight is the one the
	// worker is delivering, kept here so that Pending counts it.
	buf         []queued
	head, n     int
	inflight    bool
	cur         queued                  // the one in flight, for the outbox at Stop
	firing      map[string]alerts.Event // Alertmanager targets: the alerts firing there, by fingerprint
	wake        chan struct{}
	lastFullLog time.Time

	// Worker-only state, for throttled logs.
	failing int
	lastLog time.Time
}

func newTarget(name, typ string, size int, deliver deliverFunc, m *metrics) *target {
	return &target{
		name:        name,
		typ:         typ,
		deliver:     deliver,
		sent:        m.sent.WithLabelValues(name, typ),
		failures:    m.failures.WithLabelValues(name),
		droppedFull: m.dropped.WithLabelValues(name, "queue_full"),
		droppedOld:  m.dropped.WithLabelValues(name, "too_old"),
		refuse:      m.dropped.WithLabelValues(name, "refused"),
		queueLen:    m.queue.WithLabelValues(name),
		buf:         make([]queued, size),
		wake:        make(chan struct{}, 1),
	}
}

// push queues q; when full it drops the oldest waiting event, since the
// newer ones carry the alert's latest state (a resolution after a firing).
// It reports whether a drop is due a log line, at most one per logEvery.
func (t *target) push(q queued) (logDrop bool) {
	t.mu.Lock()
	if t.n == len(t.buf) {
		t.buf[t.head] = queued{}
		t.head = (t.head + 1) % len(t.buf)
		t.n--
		t.droppedFull.Inc()
		if q.enqueued.Sub(t.lastFullLog) >= logEvery {
			t.lastFullLog = q.enqueued
			logDrop = true
		}
	}
	t.buf[(t.head+t.n)%len(t.buf)] = q
	t.n++
	if !q.keepalive {
		t.trackLocked(&q.ev)
	}
	t.queueLen.Set(float64(t.pendingLocked()))
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return logDrop
}

// next takes the oldest event as the one in flight, waiting for one.
func (t *target) next(ctx context.Context) (queued, bool) {
	for {
		t.mu.Lock()
		if t.n > 0 {
			q := t.buf[t.head]
			t.buf[t.head] = queued{}
			t.head = (t.head + 1) % len(t.buf)
			t.n--
			t.inflight, t.cur = true, q
			t.mu.Unlock()
			return q, true
		}
		t.mu.Unlock()
		select {
		case <-t.wake:
		case <-ctx.Done():
			return queued{}, false
		}
	}
}

func (t *target) done() {
	t.mu.Lock()
	t.inflight, t.cur = false, queued{}
	t.queueLen.Set(float64(t.pendingLocked()))
	t.mu.Unlock()
}

func (t *target) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pendingLocked()
}

func (t *target) pendingLocked() int {
	if t.inflight {
		return t.n + 1
	}
	return t.n
}

// run delivers the target's events in order. A head that keeps failing
// blocks those behind it: order is kept and nothing is skipped until the
// head is delivered, refused or older than MaxAge.
func (n *Notifier) run(ctx context.Context, t *target) {
	for {
		q, ok := t.next(ctx)
		if !ok {
			return
		}
		if !n.deliver(ctx, t, &q) {
			return // stopped: q stays counted as in flight
		}
		t.done()
	}
}

// deliver retries q until it is delivered or dropped (true) or ctx ends
// (false). Backoff doubles from MinBackoff to MaxBackoff without jitter:
// each target has one attempt in flight at a time, so there is no herd.
func (n *Notifier) deliver(ctx context.Context, t *target, q *queued) bool {
	backoff := n.cfg.MinBackoff
	for {
		now := time.Now()
		if age := now.Sub(q.enqueued); age > n.cfg.MaxAge {
			t.droppedOld.Inc()
			n.log.Error("notify: event dropped, older than max_age",
				"target", t.name, "rule", q.ev.Rule, "key", q.ev.Key, "age", age.Round(time.Second))
			return true
		}
		actx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		err := t.deliver(actx, &q.ev)
		cancel()
		if err == nil {
			t.sent.Inc()
			if t.failing > 0 {
				n.log.Info("notify: target recovered", "target", t.name, "failed_attempts", t.failing)
				t.failing = 0
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		t.failures.Inc()
		if errors.Is(err, ErrRefused) {
			t.refuse.Inc()
			n.log.Error("notify: event refused by target, not retried",
				"target", t.name, "rule", q.ev.Rule, "key", q.ev.Key, "err", err)
			return true
		}
		t.failing++
		if t.failing == 1 || now.Sub(t.lastLog) >= logEvery {
			t.lastLog = now
			n.log.Warn("notify: delivery failed, retrying",
				"target", t.name, "failed_attempts", t.failing, "retry_in", backoff, "err", err)
		}
		wait := backoff
		var ra retryAfter
		if errors.As(err, &ra) && ra.RetryAfter() > wait {
			wait = min(ra.RetryAfter(), n.cfg.MaxBackoff)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
		backoff = min(backoff*2, n.cfg.MaxBackoff)
	}
}

// retryAfter is an error carrying the wait a target asked for (HTTP 429
// or 503 with Retry-After).
type retryAfter interface {
	error
	RetryAfter() time.Duration
}
