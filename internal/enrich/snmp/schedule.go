package snmp

import (
	"context"
	"maps"
	"net/netip"
	"time"
)

// idleWake is the scheduler's sleep when no poll or expiry is ahead: then only
// its channels bring work, so the length hardly matters.
const idleWake = time.Hour

// run is the scheduler: the only writer of the exporters map and of the
// exporters' scheduling fields. Each turn it notes which exporters sent flows,
// forgets the expired ones, starts the due polls and sleeps until the next
// deadline or event.
func (p *Poller) run(ctx context.Context) {
	defer p.wg.Done()
	timer := time.NewTimer(idleWake)
	defer timer.Stop()
	inflight := 0
	for {
		now := p.deps.Clock()
		wake := p.turn(ctx, now, &inflight)
		timer.Reset(wake)
		select {
		case <-ctx.Done():
			// The polls' contexts are ctx: they end promptly; done has room
			// for all of them (Workers), so none blocks on it.
			for ; inflight > 0; inflight-- {
				<-p.done
			}
			return
		case addr := <-p.seen:
			p.addSeen(addr)
		case e := <-p.done:
			inflight--
			e.busy = false
			after := p.cfg.Refresh
			if s := e.state.Load(); s != nil && s.streak > 0 {
				after = min(after, failureRetry)
			}
			e.next = p.deps.Clock().Add(after)
		case <-timer.C:
		}
	}
}

// turn does one scheduler pass at now and returns how long to sleep.
func (p *Poller) turn(ctx context.Context, now time.Time, inflight *int) time.Duration {
	m := *p.exporters.Load()
	var expired []key
	var due []*exporter
	wake := now.Add(idleWake)
	for k, e := range m {
		// A CAS: a flow noted between a load and a store would be lost.
		if e.active.CompareAndSwap(flowing, idle) {
			e.lastSeen = now
		}
		if e.busy {
			continue
		}
		if end := e.lastSeen.Add(p.cfg.Expire); !now.Before(end) {
			expired = append(expired, k)
			continue
		} else if end.Before(wake) {
			wake = end
		}
		if e.active.Load() == dormant {
			continue // polled once seen (add wakes it), forgotten if not
		}
		if !now.Before(e.next) {
			due = append(due, e)
		} else if e.next.Before(wake) {
			wake = e.next
		}
	}
	if len(expired) > 0 {
		m = maps.Clone(m)
		for _, k := range expired {
			delete(m, k)
		}
		p.exporters.Store(&m)
	}
	sortByNext(due)
	for _, e := range due {
		if *inflight >= p.cfg.Workers {
			break // the next done wakes us
		}
		*inflight++
		e.busy = true
		p.wg.Add(1)
		go p.pollOne(ctx, e)
	}
	return max(wake.Sub(now), time.Millisecond)
}

// addSeen adds first and the other queued addresses: a burst of new
// exporters (tmsd restarted under load) costs one copy of the map, not one each.
func (p *Poller) addSeen(first netip.Addr) {
	batch := []netip.Addr{first}
drain:
	for len(batch) < seenQueue {
		select {
		case a := <-p.seen:
			batch = append(batch, a)
		default:
			break drain
		}
	}
	p.add(batch, p.deps.Clock())
	// Deleted after add: Seen finds the exporter in one or the other.
	for _, a := range batch {
		p.pending.Delete(a)
	}
}

// add makes newly seen exporters known, due now, or wakes dormant ones: due
// when their cached names are Refresh old.
func (p *Poller) add(addrs []netip.Addr, now time.Time) {
	m := *p.exporters.Load()
	cloned := false
	for _, addr := range addrs {
		if e := m[addr.As16()]; e != nil {
			if e.active.Load() == dormant {
				e.active.Store(idle)
				e.lastSeen = now
			}
			continue
		}
		if !cloned {
			m, cloned = maps.Clone(m), true
		}
		e := &exporter{target: p.targetOf(addr), next: now, lastSeen: now}
		e.active.Store(idle)
		m[addr.As16()] = e
	}
	if cloned {
		p.exporters.Store(&m)
	}
}

// pollOne polls e, records the outcome and tells the scheduler.
func (p *Poller) pollOne(ctx context.Context, e *exporter) {
	defer p.wg.Done()
	start := time.Now()
	got, err := p.poll(ctx, e.target)
	if ctx.Err() == nil {
		// A poll cut by Stop is not the agent's failure.
		p.metrics.duration.Observe(time.Since(start).Seconds())
		p.metrics.polls.Inc()
		p.record(e, got, err, p.deps.Clock())
	}
	p.done <- e
}
