// Package snmp owns exporter and interface names: it polls sysName, ifName (else ifDescr), ifAlias and ifHighSpeed of the exporters sending flows.
// Seen, on the ingest path, is a lock-free lookup or a non-blocking send; one scheduler goroutine starts the due polls, Workers at a time.
// Readers get an immutable snapshot per exporter: a failed poll keeps the last one, and each good one goes to the Cache to survive restarts.
package snmp

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Cache persists small named values: the shape of internal/store's metadata
// (*store.Store has these methods).
type Cache interface {
	PutMeta(name string, value []byte) error
	GetMeta(name string) ([]byte, bool, error)
	// Metas calls fn for every entry whose name starts with prefix.
	Metas(prefix string, fn func(name string, value []byte) error) error
}

// Dependencies of the poller.
type Dependencies struct {
	Registry *prometheus.Registry // may be nil
	Logger   *slog.Logger         // may be nil
	Cache    Cache                // may be nil: names are then lost at restart
	// Clock stamps polls and says when one is due; nil is time.Now.
	Clock func() time.Time
}

// Interface is what an exporter's agent says of one of its interfaces.
type Interface struct {
	Name        string // ifName, else ifDescr
	Description string // ifAlias
	SpeedMbps   uint64 // ifHighSpeed
}

// ExporterState is one exporter's polling state, for the API.
type ExporterState struct {
	Exporter    netip.Addr     `json:"exporter"`
	Agent       netip.AddrPort `json:"agent"`
	SysName     string         `json:"sysName"`
	Interfaces  int            `json:"interfaces"`
	LastSuccess time.Time      `json:"lastSuccess"` // zero: never
	LastAttempt time.Time      `json:"lastAttempt"` // zero: not polled since start
	LastError   string         `json:"lastError,omitempty"`
	// Failures counts failed polls since start; Streak the failures since the
	// last success (0: the last poll succeeded).
	Failures uint64 `json:"failures"`
	Streak   uint64 `json:"streak"`
}

// Errors.
var (
	// ErrConfig: a configuration New refuses.
	ErrConfig = errors.New("snmp: bad configuration")
	// ErrPoll: a poll failed (timeout, refused, authentication, agent error).
	ErrPoll = errors.New("snmp: poll failed")
	// ErrNoData: the agent answered with neither sysName nor interfaces (an
	// SNMP view hiding them); taken as a failure so the last names stay.
	ErrNoData = errors.New("snmp: agent gave no sysName and no interfaces")
	// ErrCache: reading or writing the cache failed.
	ErrCache = errors.New("snmp: cache")
)

// seenQueue bounds the new exporters waiting for the scheduler: ingest never
// waits on it, and more than this many new exporters within one scheduler
// turn is a flood (spoofed sources), whose extra ones are dropped and retried
// at their next flow.
const seenQueue = 1024

// failureRetry caps the wait before a failed poll is retried: a transient
// failure (agent rebooting) should not cost a whole Refresh of names.
const failureRetry = 5 * time.Minute

// Poller is the component.
type Poller struct {
	cfg     Configuration
	deps    Dependencies
	logger  *slog.Logger
	targets map[netip.Addr]target // listed exporters, read-only after New
	// poll does one exporter's poll; the SNMP one but in scheduler tests.
	poll func(ctx context.Context, t target) (*snapshot, error)

	// exporters is a copy-on-write map, replaced by the scheduler only (and
	// Start), so Seen and readers take no lock.
	exporters atomic.Pointer[map[key]*exporter]
	// pending are the addresses sent on seen and not yet taken by the
	// scheduler: one flood of flows from a new exporter queues it once.
	pending sync.Map
	seen    chan netip.Addr
	done    chan *exporter // polls finished, for the scheduler

	droppedLogged atomic.Bool
	cacheFailing  atomic.Bool

	cancel context.CancelFunc
	wg     sync.WaitGroup

	metrics metrics
}

// Exporter activity states (exporter.active).
const (
	// dormant: loaded from the cache, not seen since start; not polled.
	dormant uint32 = iota
	// idle: polled, no flow since the scheduler last looked.
	idle
	// flowing: a flow since the scheduler last looked.
	flowing
)

// key is an exporter's address in the exporters map: As16, IPv4 as
// IPv4-mapped. A [16]byte hashes faster than a netip.Addr (Seen is per packet).
type key = [16]byte

// exporter is one known exporter. Its snapshot is written by its poll (one at
// a time) or Start, read by anyone.
type exporter struct {
	target target
	active atomic.Uint32
	state  atomic.Pointer[snapshot]

	// Scheduler's own (no lock: only its goroutine touches them).
	next     time.Time // when the next poll is due
	lastSeen time.Time // when a flow was last noticed (Start's time for dormant ones)
	busy     bool      // a poll is in flight
}

// snapshot is an exporter's immutable state: replaced, never modified, so a
// reader holding one needs no lock.
type snapshot struct {
	sysName     string
	ifaces      map[uint32]Interface // shared between snapshots, never modified
	lastSuccess time.Time
	lastAttempt time.Time
	lastError   string
	failures    uint64
	streak      uint64
}

// New validates the configuration; it opens nothing.
func New(cfg Configuration, deps Dependencies) (*Poller, error) {
	targets, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	p := &Poller{
		cfg:     cfg,
		deps:    deps,
		logger:  logger.With("component", "snmp"),
		targets: targets,
		seen:    make(chan netip.Addr, seenQueue),
		done:    make(chan *exporter, cfg.Workers),
	}
	p.poll = p.snmpPoll
	p.exporters.Store(&map[key]*exporter{})
	if err := p.metrics.init(p, deps.Registry); err != nil {
		return nil, err
	}
	return p, nil
}

// Start loads the cached names and starts polling. Disabled, it does nothing.
func (p *Poller) Start() error {
	if !p.cfg.Enabled {
		return nil
	}
	if p.cancel != nil {
		return errors.New("snmp: poller already started")
	}
	if err := p.load(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.run(ctx)
	return nil
}

// Stop ends polling, interrupting the polls in flight, and waits.
func (p *Poller) Stop() error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	p.wg.Wait()
	p.cancel = nil
	return nil
}

// Seen tells that exporter sent a flow. It is on the ingest path: a known
// exporter costs a map lookup and an atomic load; a new one a non-blocking
// send, dropped (and counted) when the scheduler is that far behind.
func (p *Poller) Seen(exporter netip.Addr) {
	if !p.cfg.Enabled || !exporter.IsValid() {
		return
	}
	e := (*p.exporters.Load())[exporter.As16()]
	if e != nil {
		switch e.active.Load() {
		case flowing:
			return
		case idle:
			// A store only on change: the cache line stays shared across cores.
			e.active.Store(flowing)
			return
		}
		// dormant: the scheduler must start polling it, as for a new one.
	}
	exporter = exporter.Unmap().WithZone("")
	if e == nil && p.cfg.OnlyListed {
		if _, ok := p.targets[exporter]; !ok {
			return
		}
	}
	if len(p.seen) == cap(p.seen) {
		// Full: drop before touching pending, so a flood of new sources
		// costs ingest next to nothing.
		p.dropped(exporter)
		return
	}
	if _, queued := p.pending.LoadOrStore(exporter, struct{}{}); queued {
		return
	}
	select {
	case p.seen <- exporter:
	default:
		p.pending.Delete(exporter)
		p.dropped(exporter)
	}
}

// dropped counts a new exporter Seen could not queue, and logs the first.
func (p *Poller) dropped(exporter netip.Addr) {
	p.metrics.seenDropped.Inc()
	if !p.droppedLogged.Swap(true) {
		p.logger.Warn("new exporters arrive faster than they can be scheduled; dropped ones are retried at their next flow and counted in tmsd_snmp_seen_dropped_total",
			"exporter", exporter)
	}
}

// Interface returns what the exporter's agent said of interface ifIndex.
func (p *Poller) Interface(exporter netip.Addr, ifIndex uint32) (Interface, bool) {
	s := p.snapshot(exporter)
	if s == nil {
		return Interface{}, false
	}
	i, ok := s.ifaces[ifIndex]
	return i, ok
}

// Interfaces returns every interface known of the exporter (a copy).
func (p *Poller) Interfaces(exporter netip.Addr) map[uint32]Interface {
	s := p.snapshot(exporter)
	if s == nil {
		return nil
	}
	return maps.Clone(s.ifaces)
}

// SysName returns the exporter's sysName, if known and not empty.
func (p *Poller) SysName(exporter netip.Addr) (string, bool) {
	s := p.snapshot(exporter)
	if s == nil || s.sysName == "" {
		return "", false
	}
	return s.sysName, true
}

func (p *Poller) snapshot(exporter netip.Addr) *snapshot {
	e := (*p.exporters.Load())[exporter.As16()]
	if e == nil {
		return nil
	}
	return e.state.Load()
}

// Exporters returns the state of every known exporter, by address.
func (p *Poller) Exporters() []ExporterState {
	m := *p.exporters.Load()
	out := make([]ExporterState, 0, len(m))
	for _, e := range m {
		st := ExporterState{Exporter: e.target.exporter, Agent: e.target.agent}
		if s := e.state.Load(); s != nil {
			st.SysName, st.Interfaces = s.sysName, len(s.ifaces)
			st.LastSuccess, st.LastAttempt, st.LastError = s.lastSuccess, s.lastAttempt, s.lastError
			st.Failures, st.Streak = s.failures, s.streak
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ExporterState) int { return a.Exporter.Compare(b.Exporter) })
	return out
}

// targetOf resolves an exporter's credentials: its entry's, else the default.
func (p *Poller) targetOf(exporter netip.Addr) target {
	if t, ok := p.targets[exporter]; ok {
		return t
	}
	t, _ := p.cfg.Default.resolve(exporter) // validated by New
	return t
}

// record stores a poll's outcome as the exporter's new snapshot and logs the
// first failure of a streak and the recovery from one.
func (p *Poller) record(e *exporter, got *snapshot, err error, now time.Time) {
	prev := e.state.Load()
	if prev == nil {
		prev = &snapshot{}
	}
	next := *prev
	next.lastAttempt = now
	if err != nil {
		next.failures++
		next.streak++
		next.lastError = err.Error()
		e.state.Store(&next)
		p.metrics.failures.Inc()
		if next.streak == 1 {
			p.logger.Warn("SNMP poll failed; the last known names stay, and further failures are not logged until one succeeds",
				"exporter", e.target.exporter, "agent", e.target.agent, "error", err)
		}
		return
	}
	if next.streak > 0 {
		p.logger.Info("SNMP poll succeeded again", "exporter", e.target.exporter, "failures", next.streak)
	}
	next.sysName, next.ifaces = got.sysName, got.ifaces
	next.lastSuccess, next.streak = now, 0
	e.state.Store(&next)
	p.store(e.target.exporter, &next)
}

// sortByNext orders due exporters, most overdue first, so none starves when
// more are due than Workers.
func sortByNext(es []*exporter) {
	slices.SortFunc(es, func(a, b *exporter) int { return cmp.Compare(a.next.UnixNano(), b.next.UnixNano()) })
}
