package alerts

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dgraph-io/badger/v4/y"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// t0 is a Monday midnight, far from the wall clock.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func minute(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }

// noOpen is an aggregator with no open minutes: every minute is in the store.
type noOpen struct{}

func (noOpen) View(fn func(v aggregate.View) error) error { return fn(aggregate.View{}) }

// rolledAll says the hour and day tiers are rolled up: the tests write them.
type rolledAll struct{}

func (rolledAll) Rolled(store.Tier) time.Time { return time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) }

func newStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfiguration()
	cfg.Path = t.TempDir()
	cfg.MinFreeSpace = 0
	for _, tier := range store.Tiers {
		cfg.Retention[tier] = 100 * 365 * 24 * time.Hour
	}
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	return st
}

func ipKey(t testing.TB, ip string) topn.Key {
	k, err := topn.DimDstIP.ParseKey(ip)
	require.NoError(t, err)
	return k
}

// traffic is a rate in bps over d as counters (a packet per 1000 bytes).
func traffic(bps float64, d time.Duration) topn.Counters {
	b := uint64(bps * d.Seconds() / 8)
	return topn.Counters{Bytes: b, Packets: b / 1000, Flows: 1 + b/1_000_000}
}

func row(t testing.TB, ip string, bps float64, d time.Duration) topn.Entry {
	return topn.Entry{Key: ipKey(t, ip), Value: traffic(bps, d)}
}

// put writes one interval of the global scope with a dstip table of rows
// (bounded by threshold, in bps); its total is the rows' sum plus other.
func put(t testing.TB, st *store.Store, tier store.Tier, start time.Time, rows []topn.Entry, threshold, other float64) {
	t.Helper()
	d := tier.Duration()
	tab := &topn.Table{Entries: rows, Threshold: traffic(threshold, d)}
	tab.Total = traffic(other, d)
	for _, r := range rows {
		tab.Total.Add(r.Value)
	}
	require.NoError(t, st.PutInterval(start, store.Interval{Tier: tier, Start: start, Scope: topn.Scope{}, Total: tab.Total,
		Tables: map[topn.Dim]*topn.Table{topn.DimDstIP: tab}}))
}

// harness is an evaluator on a real store and query engine, on a clock the
// test sets, recording what it notifies and records.
type harness struct {
	t   *testing.T
	e   *Evaluator
	reg *prometheus.Registry

	mu       sync.Mutex
	now      time.Time
	notified []Event
}

// history is the event log, all of it.
func (h *harness) history() []Event {
	h.t.Helper()
	evs, _, err := h.e.History(HistoryQuery{To: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)})
	require.NoError(h.t, err)
	return evs
}

func newHarness(t *testing.T, st *store.Store, rules ...Rule) *harness {
	return newHarnessOpen(t, st, noOpen{}, rules...)
}

func newHarnessOpen(t *testing.T, st *store.Store, open query.Open, rules ...Rule) *harness {
	t.Helper()
	h := &harness{t: t, reg: prometheus.NewRegistry()}
	cfg := DefaultConfiguration()
	cfg.Rules = rules
	e, err := New(cfg, Dependencies{
		Source: query.New(st, open, query.WithProgress(rolledAll{})),
		Notify: func(targets []string, ev Event) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.notified = append(h.notified, ev)
		},
		Store: st,
		Clock: func() time.Time {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.now
		},
		Logger:       slog.New(slog.DiscardHandler),
		Registry:     h.reg,
		DashboardURL: "https://tmsd.example/",
	})
	require.NoError(t, err)
	h.e = e
	return h
}

// eval evaluates minutes [from, to) of t0, each once it is closed.
func (h *harness) eval(from, to int) {
	h.t.Helper()
	for i := from; i < to; i++ {
		h.mu.Lock()
		h.now = minute(i).Add(time.Minute + h.e.cfg.Grace)
		h.mu.Unlock()
		require.NoError(h.t, h.e.EvaluateMinute(minute(i)))
	}
}

// transition is what a test checks of an event.
type transition struct {
	Kind Kind
	Key  string
	At   int // minute of t0
}

func (h *harness) transitions(evs []Event) []transition {
	var out []transition
	for _, ev := range evs {
		out = append(out, transition{ev.Kind, ev.Key, int(ev.At.Sub(t0) / time.Minute)})
	}
	slices.SortStableFunc(out, func(a, b transition) int { return a.At - b.At })
	return out
}

func (h *harness) sent() []transition {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.transitions(h.notified)
}

const (
	G = 1e9
	M = 1e6
)

// A key at 1 Gbps with one minute at 10 Gbps: a rule above 5G fires at that
// minute and resolves resolve_for later, with exactly two notifications.
func TestSpike(t *testing.T) {
	st := newStore(t)
	for i := range 20 {
		bps := 1 * G
		if i == 10 {
			bps = 10 * G
		}
		put(t, st, store.TierMinute, minute(i), []topn.Entry{row(t, "192.0.2.10", bps, time.Minute)}, 0, 0)
	}
	h := newHarness(t, st, Rule{Name: "spike", Dim: "dstip", Key: "192.0.2.10", Threshold: "5G", ResolveFor: Duration(3 * time.Minute), Targets: []string{"ops"}})
	h.eval(0, 20)
	require.Equal(t, []transition{{KindFiring, "192.0.2.10", 10}, {KindResolved, "192.0.2.10", 13}}, h.sent())

	fire, res := h.notified[0], h.notified[1]
	require.Equal(t, 10*G, fire.Value)
	require.Equal(t, 5*G, fire.Threshold)
	require.Equal(t, "bps", fire.Metric)
	require.False(t, fire.Bounded)
	require.Equal(t, minute(10), fire.Since)
	require.Equal(t, "spike: dstip 192.0.2.10 at 10.00 Gbps > 5.00 Gbps since 00:10 UTC", fire.Summary)
	require.Equal(t, "https://tmsd.example/#/key?by=dstip&from=2026-03-01T23%3A10%3A00Z&key=192.0.2.10&to=2026-03-02T01%3A10%3A00Z", fire.URL)
	require.Equal(t, minute(11), res.EndsAt)
	require.Equal(t, 1*G, res.Value, "the resolved event carries the last minute's figures")
	require.Equal(t, h.notified, h.history())
	require.Equal(t, 2.0, testutil.ToFloat64(h.e.notifications))
	require.Equal(t, 20.0, testutil.ToFloat64(h.e.evaluations))
	n, err := testutil.GatherAndCount(h.reg)
	require.NoError(t, err)
	require.Equal(t, 4+len(Severities), n, "three counters, the evaluation time, a firing gauge per severity")
	require.Empty(t, h.e.Alerts())
}

// A slow rise through 2 Gbps with for=5m: pending from the first minute
// above, firing at the fifth; a dip before that resets it, with no event.
func TestSlowRiseWithFor(t *testing.T) {
	st := newStore(t)
	gbps := []float64{1, 1.25, 1.5, 1.75, 2, 2.25, 2.5, 1.5, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.5, 1.5, 1.5}
	for i, v := range gbps {
		put(t, st, store.TierMinute, minute(i), nil, 0, v*G)
	}
	h := newHarness(t, st, Rule{Name: "rise", Threshold: "2Gbps", For: Duration(5 * time.Minute), ResolveFor: Duration(time.Minute)})
	h.eval(0, 6)
	al := h.e.Alerts()
	require.Len(t, al, 1)
	require.Equal(t, StatePending, al[0].State)
	require.Equal(t, minute(5), al[0].Since)
	h.eval(6, 8) // the dip at minute 7 ends it
	require.Empty(t, h.e.Alerts())
	h.eval(8, 12)
	require.Equal(t, StatePending, h.e.Alerts()[0].State)
	require.Empty(t, h.sent(), "nothing is sent while pending")
	h.eval(12, len(gbps))
	require.Equal(t, []transition{{KindFiring, "", 12}, {KindResolved, "", 15}}, h.sent())
	require.Equal(t, minute(8), h.notified[0].Since)
	require.Equal(t, "https://tmsd.example/#/top?from=2026-03-01T23%3A08%3A00Z&to=2026-03-02T01%3A12%3A00Z", h.notified[0].URL)
}

// A value flapping around the threshold notifies no flapping: it fires once,
// stays firing through dips shorter than resolve_for, and resolves once it
// has stayed under for that long; with for=2m, isolated minutes over the
// threshold never fire.
func TestFlappingAroundTheThreshold(t *testing.T) {
	st := newStore(t)
	gbps := []float64{6, 4, 6, 4, 4, 6, 4, 6, 4, 4, 6, 4, 4, 4, 4, 4}
	for i, v := range gbps {
		put(t, st, store.TierMinute, minute(i), nil, 0, v*G)
	}
	h := newHarness(t, st,
		Rule{Name: "flap", Threshold: "5G", ResolveFor: Duration(3 * time.Minute)},
		Rule{Name: "flap-for", Threshold: "5G", For: Duration(2 * time.Minute), ResolveFor: Duration(3 * time.Minute)})
	h.eval(0, len(gbps))
	var got []string
	for _, ev := range h.notified {
		got = append(got, fmt.Sprintf("%s %s %d", ev.Rule, ev.Kind, int(ev.At.Sub(t0)/time.Minute)))
	}
	require.Equal(t, []string{"flap firing 0", "flap resolved 13"}, got)
}

// An any-key rule on dstip: each key fires and resolves at its own minutes;
// a bounded row fires marked bounded; a key the table no longer lists keeps
// its state while the table's threshold is above the rule's.
func TestAnyKey(t *testing.T) {
	st := newStore(t)
	type minuteRows struct {
		rows      map[string]float64 // Gbps
		bounded   float64            // C's row error, Gbps
		threshold float64
	}
	sched := map[int]minuteRows{}
	for i := range 16 {
		mr := minuteRows{rows: map[string]float64{"192.0.2.1": 1, "192.0.2.2": 1, "192.0.2.3": 1}, threshold: 0.1}
		if i >= 2 && i <= 4 {
			mr.rows["192.0.2.1"] = 8
		}
		if i >= 6 && i <= 9 {
			mr.rows["192.0.2.2"] = 8
		}
		switch {
		case i == 8:
			mr.rows["192.0.2.3"], mr.bounded = 6, 1
		case i == 9 || i == 10: // C dropped by a table that may have cut 7 Gbps
			delete(mr.rows, "192.0.2.3")
			mr.threshold = 7
		case i >= 11:
			delete(mr.rows, "192.0.2.3")
			mr.threshold = 0.5
		}
		sched[i] = mr
	}
	for i := range 16 {
		mr := sched[i]
		var rows []topn.Entry
		for ip, g := range mr.rows {
			r := row(t, ip, g*G, time.Minute)
			if ip == "192.0.2.3" && mr.bounded > 0 {
				r.Error = traffic(mr.bounded*G, time.Minute)
			}
			rows = append(rows, r)
		}
		put(t, st, store.TierMinute, minute(i), rows, mr.threshold*G, 0)
	}
	h := newHarness(t, st, Rule{Name: "any", Dim: "dstip", Key: "*", Threshold: "5G", ResolveFor: Duration(2 * time.Minute)})
	h.eval(0, 16)
	got := h.sent()
	slices.SortStableFunc(got, func(a, b transition) int {
		if a.At != b.At {
			return a.At - b.At
		}
		return int(a.Key[len(a.Key)-1]) - int(b.Key[len(b.Key)-1])
	})
	require.Equal(t, []transition{
		{KindFiring, "192.0.2.1", 2},
		{KindResolved, "192.0.2.1", 6},
		{KindFiring, "192.0.2.2", 6},
		{KindFiring, "192.0.2.3", 8},
		{KindResolved, "192.0.2.2", 11},
		{KindResolved, "192.0.2.3", 12},
	}, got)
	for _, ev := range h.notified {
		if ev.Key == "192.0.2.3" && ev.Kind == KindFiring {
			require.True(t, ev.Bounded)
			require.Equal(t, 6*G, ev.Value)
			require.Equal(t, 1*G, ev.Error)
			require.Contains(t, ev.Summary, "at ≥ 6.00 Gbps (≤ 7.00 Gbps)")
		}
	}
}

// A rule with a repeat interval repeats while firing, and only then.
func TestRepeat(t *testing.T) {
	st := newStore(t)
	for i := range 14 {
		bps := 1 * G
		if i >= 2 && i < 11 {
			bps = 10 * G
		}
		put(t, st, store.TierMinute, minute(i), nil, 0, bps)
	}
	h := newHarness(t, st, Rule{Name: "r", Threshold: "5G", ResolveFor: Duration(2 * time.Minute), Repeat: Duration(3 * time.Minute)})
	h.eval(0, 14)
	require.Equal(t, []transition{{KindFiring, "", 2}, {KindRepeat, "", 5}, {KindRepeat, "", 8}, {KindResolved, "", 12}}, h.sent())
}

// SetRules refuses a bad set and keeps the rules in force; an unchanged
// rule keeps its firing alert (no second firing), a changed one starts over.
func TestSetRules(t *testing.T) {
	st := newStore(t)
	for i := range 10 {
		put(t, st, store.TierMinute, minute(i), nil, 0, 10*G)
	}
	a := Rule{Name: "a", Threshold: "5G"}
	b := Rule{Name: "b", Threshold: "6G"}
	h := newHarness(t, st, a, b)
	h.eval(0, 2)
	require.Len(t, h.sent(), 2)

	err := h.e.SetRules([]Rule{a, {Name: "bad", Threshold: "8X"}})
	require.ErrorIs(t, err, ErrInvalidRule)
	require.EqualError(t, err, `invalid alert rule: alerts: rule "bad": threshold: "8X": unknown suffix`)
	require.Len(t, h.e.Rules(), 2)

	require.Error(t, h.e.SetRules([]Rule{a, a}))
	require.NoError(t, h.e.SetRules([]Rule{a, {Name: "b", Threshold: "7G"}}))
	h.eval(2, 4)
	require.Equal(t, []transition{{KindFiring, "", 0}, {KindFiring, "", 0}, {KindFiring, "", 2}}, h.sent())
	require.Equal(t, "b", h.notified[2].Rule)
	require.Equal(t, 2.0, testutil.ToFloat64(h.e.firing["warning"]))
}

// The loop evaluates each minute once it is closed by Grace: the minute at
// 00:03 at 00:06 (1m + 2m grace), not before; on start, only the last closed
// minute, not history; an early-warning rule looks at the open minute every
// EarlyEvery. Driven by synctest's clock.
func TestStartStop(t *testing.T) {
	// The store lives in the bubble: a read from the bubble makes channels
	// Badger's goroutines close, which must be in the bubble too. But Badger
	// shares one zstd encoder and decoder (made on first use) between every
	// store of the process: made in the bubble, their channels would be
	// bubble-bound, and the next test's store outside it would die on them
	// (fatal error: receive on synctest channel from outside bubble). So
	// they are made here first, outside.
	packed, err := y.ZSTDCompress(nil, []byte("tmsd"), 1)
	require.NoError(t, err)
	_, err = y.ZSTDDecompress(nil, packed)
	require.NoError(t, err)
	synctest.Test(t, func(t *testing.T) {
		st := newStore(t)
		// synctest's clock starts at 2000-01-01 00:00 UTC.
		base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := -10; i < 10; i++ {
			bps := 1 * G
			if i == -5 || i == 3 {
				bps = 10 * G
			}
			put(t, st, store.TierMinute, base.Add(time.Duration(i)*time.Minute), nil, 0, bps)
		}
		var mu sync.Mutex
		var got []string
		cfg := DefaultConfiguration()
		cfg.Rules = []Rule{
			{Name: "s", Threshold: "5G", ResolveFor: Duration(time.Minute)},
			// Early looks every 15 s read minute 3, stored whole, at
			// 10 Gbps × 60 s / 15 s = 40 Gbps so far at 00:03:15.
			{Name: "e", Threshold: "30G", ResolveFor: Duration(time.Minute), EarlyWarning: true},
		}
		e, err := New(cfg, Dependencies{
			Source: query.New(st, noOpen{}),
			Notify: func(_ []string, ev Event) {
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprintf("%s %s %s at %s", ev.Rule, ev.Kind, ev.At.Format("15:04"), time.Now().UTC().Format("15:04:05")))
			},
			Logger: slog.New(slog.DiscardHandler),
		})
		require.NoError(t, err)
		require.Equal(t, base, time.Now().UTC())
		require.NoError(t, e.Start())
		t.Cleanup(func() { require.NoError(t, e.Stop()) })
		seen := func() []string {
			synctest.Wait()
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(got)
		}
		require.Empty(t, seen(), "the spike at -5 is history: not replayed")
		time.Sleep(3*time.Minute + 14*time.Second)
		require.Empty(t, seen())
		time.Sleep(time.Second)
		require.Equal(t, []string{"e firing 00:03 at 00:03:15"}, seen())
		time.Sleep(6*time.Minute - 3*time.Minute - 15*time.Second - time.Second)
		require.Len(t, seen(), 1, "00:03 is not closed before 00:06")
		time.Sleep(time.Second)
		require.Equal(t, []string{"e firing 00:03 at 00:03:15", "s firing 00:03 at 00:06:00", "e resolved 00:03 at 00:06:00"}, seen())
		time.Sleep(time.Minute)
		require.Equal(t, "s resolved 00:04 at 00:07:00", seen()[3])
		require.NoError(t, e.Stop())
		require.NoError(t, e.Stop(), "a second Stop is harmless")
		require.Len(t, seen(), 4)
	})
}

// startAggregator runs a real aggregator on st whose flusher never fires on
// its own: the minutes it counts stay open, read through its view.
func startAggregator(t *testing.T, st *store.Store, now time.Time) (*aggregate.Aggregator, *ring.Broadcast) {
	t.Helper()
	cls, err := apps.New(nil)
	require.NoError(t, err)
	cfg := aggregate.DefaultConfiguration()
	cfg.Shards, cfg.FlushInterval, cfg.CheckpointInterval = 1, time.Hour, 0
	r := ring.NewBroadcast(1<<10, aggregate.Shards(cfg))
	a, err := aggregate.New(cfg, aggregate.Dependencies{Ring: r, Store: st, Classifier: cls,
		Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	t.Cleanup(func() { require.NoError(t, a.Stop()) })
	return a, r
}

// An early-warning rule fires on the open minute's rate so far, At that
// minute, once; the closed minute, under the threshold, resolves it. A rule
// without early_warning waits for the closed minute.
func TestEarlyWarning(t *testing.T) {
	st := newStore(t)
	m := minute(0)
	agg, r := startAggregator(t, st, m.Add(30*time.Second))
	// 30 s at 12 Gbps: 45 GB, in 30 records of a second each.
	for i := range 30 {
		at := m.Add(time.Duration(i) * time.Second).UnixMilli()
		rec := flow.Record{Exporter: flow.AddrFromV4([]byte{192, 0, 2, 1}), SrcAddr: flow.AddrFromV4([]byte{198, 51, 100, 1}),
			DstAddr: flow.AddrFromV4([]byte{192, 0, 2, 10}), SrcPort: 4000, DstPort: 443, Proto: 6,
			Bytes: 1_500_000_000, Packets: 1_000_000, Received: at, End: at}
		require.True(t, r.Push(&rec))
	}
	require.NoError(t, agg.Sync(10*time.Second))

	h := newHarnessOpen(t, st, agg,
		Rule{Name: "early", Dim: "dstip", Key: "*", Threshold: "10G", ResolveFor: Duration(time.Minute), EarlyWarning: true},
		Rule{Name: "late", Threshold: "5G", ResolveFor: Duration(time.Minute)})
	require.NoError(t, h.e.EvaluateOpen(m.Add(5*time.Second)), "too early in the minute to tell")
	require.Empty(t, h.sent())
	require.NoError(t, h.e.EvaluateOpen(m.Add(30*time.Second)))
	require.Equal(t, []transition{{KindFiring, "192.0.2.10", 0}}, h.sent())
	ev := h.notified[0]
	require.Equal(t, 12*G, ev.Value)
	require.Equal(t, minute(0), ev.Since)
	require.Contains(t, ev.Summary, "(early warning: the open minute's rate so far)")
	require.NoError(t, h.e.EvaluateOpen(m.Add(45*time.Second)), "no second firing")
	require.Len(t, h.sent(), 1)

	// Closed, the minute holds 45 GB: 6 Gbps, under the early rule's 10G
	// (a false minute: with resolve_for 1m it resolves at once) and over the
	// late rule's 5G (it fires now, and resolves on the empty next minute).
	h.eval(0, 2)
	require.Equal(t, []transition{{KindFiring, "192.0.2.10", 0}, {KindResolved, "192.0.2.10", 0}, {KindFiring, "", 0}, {KindResolved, "", 1}}, h.sent())
	require.Equal(t, "late", h.notified[2].Rule)
}

// A rule whose read fails keeps its state, counts the error and lets the
// other minutes go on: here the store stops while an alert fires, and starts
// again.
func TestEvaluationError(t *testing.T) {
	st := newStore(t)
	for i := range 4 {
		put(t, st, store.TierMinute, minute(i), nil, 0, 10*G)
	}
	h := newHarness(t, st, Rule{Name: "r", Threshold: "5G", ResolveFor: Duration(time.Minute)})
	h.eval(0, 1)
	require.NoError(t, st.Stop())
	err := h.e.EvaluateMinute(minute(1))
	require.ErrorIs(t, err, store.ErrNotStarted)
	require.ErrorContains(t, err, `alerts: rule "r" at 2026-03-02T00:01:00Z`)
	require.Equal(t, 1.0, testutil.ToFloat64(h.e.evalErrors))
	require.Equal(t, StateFiring, h.e.Alerts()[0].State, "kept")
	require.NoError(t, st.Start())
	h.eval(2, 5)
	require.Equal(t, []transition{{KindFiring, "", 0}, {KindResolved, "", 4}}, h.sent())
}
