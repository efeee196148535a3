package notify

import (
	"context"
	"time"

	"github.com/tmsd/tmsd/internal/alerts"
)

// Alertmanager ends an alert at its endsAt, or resolve_timeout (5m by
// default) after it was last posted, unless the client posts it again: as
// Prometheus does, tmsd re-posts each alert firing at an Alertmanager target
// every amResend, with endsAt amHold ahead, so that the alert stays open as
// long as it fires and closes by itself within amHold if tmsd stops. The
// alerts firing at a target are tracked from the events queued to it and
// kept in the outbox across a restart (the evaluator does not re-send a
// firing alert after one).

const (
	amResend = time.Minute
	amHold   = 4 * amResend // as Prometheus' default: 4 × its resend delay
)

// track keeps the alerts firing at an Alertmanager target (t.mu held).
func (t *target) trackLocked(ev *alerts.Event) {
	if t.typ != TypeAlertmanager {
		return
	}
	fp := ev.Fingerprint()
	switch ev.Kind {
	case alerts.KindFiring, alerts.KindRepeat:
		if t.firing == nil {
			t.firing = map[string]alerts.Event{}
		}
		t.firing[fp] = *ev
	case alerts.KindResolved, alerts.KindSilenced:
		delete(t.firing, fp)
	}
}

// keepalive re-posts the target's firing alerts every amResend, unless its
// queue is not empty: what waits there is newer, and a backlog must not grow
// by a re-post a minute while the target is down.
func (n *Notifier) keepalive(ctx context.Context, t *target) {
	tick := time.NewTicker(amResend)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.mu.Lock()
		busy := t.pendingLocked() > 0
		var evs []alerts.Event
		if !busy {
			for _, ev := range t.firing {
				evs = append(evs, ev)
			}
		}
		t.mu.Unlock()
		now := time.Now()
		for _, ev := range evs {
			t.push(queued{ev: ev, enqueued: now, keepalive: true})
		}
	}
}
