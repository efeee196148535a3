package notify

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/alerts"
)

// The outbox carries the events a stop left undelivered to the next start,
// per target and in order, with the time each was first queued, so that
// max_age counts from then: a target down across a restart still gets every
// event, once it is back.

// Store is where the outbox is kept: *store.Store.
type Store interface {
	PutMeta(name string, value []byte) error
	GetMeta(name string) ([]byte, bool, error)
}

const metaOutbox = "alerts/outbox"

// outbox is what the store keeps: the queues, and the alerts firing at
// each Alertmanager target (alertmanager.go), which must go on being
// re-posted after a restart.
type outbox struct {
	Queued map[string][]outboxEntry  `json:"queued"`
	Firing map[string][]alerts.Event `json:"firing,omitempty"`
}

type outboxEntry struct {
	Event    alerts.Event `json:"event"`
	Enqueued time.Time    `json:"enqueued"`
}

// saveOutbox writes what every target has left, after the workers ended.
func (n *Notifier) saveOutbox() error {
	box := outbox{Queued: map[string][]outboxEntry{}, Firing: map[string][]alerts.Event{}}
	total := 0
	for _, t := range n.order {
		t.mu.Lock()
		var es []outboxEntry
		if t.inflight {
			es = append(es, outboxEntry{t.cur.ev, t.cur.enqueued})
		}
		for i := range t.n {
			q := t.buf[(t.head+i)%len(t.buf)]
			if !q.keepalive {
				es = append(es, outboxEntry{q.ev, q.enqueued})
			}
		}
		for _, ev := range t.firing {
			box.Firing[t.name] = append(box.Firing[t.name], ev)
		}
		t.mu.Unlock()
		if len(es) > 0 {
			box.Queued[t.name] = es
			total += len(es)
		}
	}
	b, err := json.Marshal(box)
	if err == nil {
		err = n.store.PutMeta(metaOutbox, b)
	}
	if err != nil {
		return fmt.Errorf("notify: keeping %d undelivered events: %w", total, err)
	}
	if total > 0 {
		n.log.Info("notify: events not delivered at stop are kept for the next start", "count", total)
	}
	return nil
}

// loadOutbox queues what the last stop left, before any new event, and
// empties the outbox. A target no longer configured loses its events, logged.
func (n *Notifier) loadOutbox() error {
	if n.store == nil {
		return nil
	}
	b, ok, err := n.store.GetMeta(metaOutbox)
	if err != nil {
		return fmt.Errorf("notify: reading the undelivered events: %w", err)
	}
	if !ok || len(b) == 0 {
		return nil
	}
	var box outbox
	if err := json.Unmarshal(b, &box); err != nil {
		n.log.Warn("notify: the undelivered events kept are unreadable: dropped", "err", err)
		box = outbox{}
	}
	for name, evs := range box.Firing {
		if t := n.targets[name]; t != nil {
			t.mu.Lock()
			for i := range evs {
				t.trackLocked(&evs[i])
			}
			t.mu.Unlock()
		}
	}
	for name, es := range box.Queued {
		t := n.targets[name]
		if t == nil {
			n.log.Warn("notify: undelivered events of a target no longer configured: dropped", "target", name, "count", len(es))
			continue
		}
		for _, e := range es {
			t.push(queued{ev: e.Event, enqueued: e.Enqueued})
		}
	}
	if err := n.store.PutMeta(metaOutbox, []byte("{}")); err != nil {
		return fmt.Errorf("notify: emptying the outbox: %w", err)
	}
	return nil
}
