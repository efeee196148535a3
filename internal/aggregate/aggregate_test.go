package aggregate

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

var base = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

type harness struct {
	agg     *Aggregator
	ring    *ring.Broadcast
	store   *store.Store
	stopped bool
}

// newStore starts an in-memory store whose retention keeps base's minutes; it
// stops at the end of the test, and outlives the aggregators a test crashes.
func newStore(t *testing.T, deps store.Dependencies) *store.Store {
	t.Helper()
	scfg := store.DefaultConfiguration()
	scfg.InMemory = true
	scfg.Retention[store.TierMinute] = 100 * 365 * 24 * time.Hour
	st, err := store.New(scfg, deps)
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	return st
}

// startAggregator starts a store and an aggregator; the flusher and the
// checkpointer never fire on their own (tests call FlushBefore and checkpoint),
// and both stop at the end of the test.
func startAggregator(t *testing.T, mod func(*Configuration)) *harness {
	t.Helper()
	st := newStore(t, store.Dependencies{})
	return startOn(t, st, st, mod, func() time.Time { return base })
}

// startOn starts an aggregator on st, writing through s (st or a wrapper of it).
func startOn(t *testing.T, st *store.Store, s Store, mod func(*Configuration), clock func() time.Time) *harness {
	t.Helper()
	cls, err := apps.New(nil)
	require.NoError(t, err)
	return startClassified(t, st, s, mod, clock, cls)
}

// startClassified is startOn with the application classifier cls.
func startClassified(t *testing.T, st *store.Store, s Store, mod func(*Configuration), clock func() time.Time, cls Classifier) *harness {
	t.Helper()
	cfg := DefaultConfiguration()
	cfg.Shards = 2
	cfg.FlushInterval = time.Hour
	cfg.CheckpointInterval = time.Hour
	if mod != nil {
		mod(&cfg)
	}
	r := ring.NewBroadcast(1<<12, Shards(cfg))
	a, err := New(cfg, Dependencies{Ring: r, Store: s, Classifier: cls, Clock: clock, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, a.Start())
	h := &harness{agg: a, ring: r, store: st}
	t.Cleanup(func() {
		if !h.stopped {
			require.NoError(t, a.Stop())
		}
	})
	return h
}

// crash ends the aggregator as kill -9 would: its goroutines stop, nothing is
// flushed or checkpointed, and what it held in memory is gone.
func (h *harness) crash() {
	close(h.agg.stop)
	h.agg.wg.Wait()
	h.stopped = true
}

func (h *harness) push(t *testing.T, recs ...flow.Record) {
	t.Helper()
	// Sync after each ring-full so a batch larger than the ring never races
	// the shards for space.
	for len(recs) > 0 {
		n := min(len(recs), h.ring.Cap())
		for i := range recs[:n] {
			require.True(t, h.ring.Push(&recs[i]))
		}
		require.NoError(t, h.agg.Sync(10*time.Second))
		recs = recs[n:]
	}
}

func addr(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }

func rec(src, dst string, sport, dport uint16, bytes uint64, received time.Time) flow.Record {
	return flow.Record{Exporter: addr("192.0.2.1"), SrcAddr: addr(src), DstAddr: addr(dst), SrcPort: sport, DstPort: dport,
		Proto: 6, Bytes: bytes, Packets: bytes / 100, Received: received.UnixMilli(), End: received.UnixMilli()}
}

// top sums stored and open minutes of [from, to) the way the query engine does.
func (h *harness) top(t *testing.T, sc topn.Scope, d topn.Dim, from, to time.Time) *topn.Table {
	t.Helper()
	mg := topn.NewMerger(16)
	require.NoError(t, h.agg.View(func(v View) error {
		bounded := false
		if err := h.store.Range(store.TierMinute, sc, d, from, to, func(_ time.Time, tb *topn.Table) error {
			bounded = bounded || !tb.Exact()
			mg.Add(tb)
			return nil
		}); err != nil {
			return err
		}
		for _, tb := range v.Tables(sc, d, from, to, bounded) {
			mg.Add(tb)
		}
		return nil
	}))
	return mg.Table()
}

func TestMinuteTablesAndFlush(t *testing.T) {
	h := startAggregator(t, nil)
	h.push(t,
		rec("10.0.0.1", "10.0.0.2", 40000, 443, 1000, base.Add(10*time.Second)),
		rec("10.0.0.1", "10.0.0.3", 40001, 443, 500, base.Add(20*time.Second)),
		rec("10.0.0.4", "10.0.0.2", 40002, 5432, 300, base.Add(70*time.Second)),
	)
	// Before any flush the API sees the open minutes from memory.
	tb := h.top(t, topn.Scope{}, topn.DimDstPort, base, base.Add(2*time.Minute))
	require.Equal(t, topn.Counters{Bytes: 1800, Packets: 18, Flows: 3}, tb.Total)
	rows, other := tb.Top(topn.DimDstPort, 10, topn.Bytes)
	require.Equal(t, topn.PortKey(443, 6), rows[0].Key)
	require.EqualValues(t, 1500, rows[0].Value.Bytes)
	require.True(t, other.IsZero())

	// Minute 10:00 closes at 10:02 (one minute plus the 60 s grace); 10:01 stays open.
	require.NoError(t, h.agg.FlushBefore(base.Add(2*time.Minute)))
	stored, ok, err := h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 1500, stored.Total.Bytes)
	_, ok, err = h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base.Add(time.Minute))
	require.NoError(t, err)
	require.False(t, ok, "10:01 is still within its grace period")

	// The same query after the flush: nothing lost, nothing counted twice.
	tb = h.top(t, topn.Scope{}, topn.DimIP, base, base.Add(2*time.Minute))
	require.EqualValues(t, 1800, tb.Total.Bytes)
	rows, _ = tb.Top(topn.DimIP, 1, topn.Bytes)
	// "ip" counts both ends: 10.0.0.1 sent 1500, 10.0.0.2 received 1300.
	require.Equal(t, topn.AddrKey(addr("10.0.0.1")), rows[0].Key)
	require.EqualValues(t, 1500, rows[0].Value.Bytes)
	require.True(t, tb.Exact())

	// Scoped tables: per exporter and per protocol.
	tb = h.top(t, topn.Scope{Kind: topn.ScopeExporter, Exporter: addr("192.0.2.1")}, topn.DimApp, base, base.Add(2*time.Minute))
	rows, _ = tb.Top(topn.DimApp, 10, topn.Bytes)
	require.Equal(t, "https", rows[0].Key.App())
	require.Equal(t, "postgresql", rows[1].Key.App())
	tb = h.top(t, topn.Scope{Kind: topn.ScopeProto, Proto: 17}, topn.DimApp, base, base.Add(2*time.Minute))
	require.Zero(t, tb.Total.Bytes)
}

func TestEventTimeRule(t *testing.T) {
	h := startAggregator(t, nil)
	recv := base.Add(30 * time.Minute).UnixMilli()
	f := func(end int64, wantMs int64, wantCorrected bool) {
		t.Helper()
		ms, corrected := h.agg.eventTime(&flow.Record{End: end, Received: recv})
		require.Equal(t, wantMs, ms)
		require.Equal(t, wantCorrected, corrected)
		// Minute, which `tmsd import` notes, is the minute of that time.
		require.Equal(t, time.UnixMilli(wantMs).Truncate(time.Minute).UTC(), h.agg.Minute(&flow.Record{End: end, Received: recv}))
	}
	f(0, recv, false)                              // missing: receive time
	f(recv-5*60_000, recv-5*60_000, false)         // 5 min old: the exporter's
	f(recv+30_000, recv+30_000, false)             // 30 s ahead: clock skew, kept
	f(recv+2*60_000, recv, true)                   // 2 min ahead: insane
	f(recv-2*time.Hour.Milliseconds(), recv, true) // 2 h old: beyond max_age
	f(recv-time.Hour.Milliseconds()+1, recv-time.Hour.Milliseconds()+1, false)

	r := rec("10.0.0.1", "10.0.0.2", 1, 2, 100, base)
	r.End = r.Received + 5*60_000
	h.push(t, r)
	require.Equal(t, map[flow.Addr]uint64{addr("192.0.2.1"): 1}, h.agg.TimeCorrections())
}

func TestLateFlows(t *testing.T) {
	h := startAggregator(t, nil)
	h.push(t, rec("10.0.0.1", "10.0.0.2", 40000, 443, 1000, base.Add(10*time.Second)))
	// Received at 10:01:50, ended 10:00:50: inside the grace, it lands in 10:00.
	late := rec("10.0.0.9", "10.0.0.2", 40000, 443, 100, base.Add(110*time.Second))
	late.End = base.Add(50 * time.Second).UnixMilli()
	h.push(t, late)
	require.NoError(t, h.agg.FlushBefore(base.Add(2*time.Minute)))
	got, ok, err := h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 1100, got.Total.Bytes)
	require.Len(t, got.Entries, 2)

	// After the flush, a flow for 10:00 still arrives: it is merged into the stored minute.
	later := rec("10.0.0.1", "10.0.0.2", 40000, 443, 7, base.Add(5*time.Minute))
	later.End = base.Add(55 * time.Second).UnixMilli()
	h.push(t, later)
	require.NoError(t, h.agg.FlushBefore(base.Add(10*time.Minute)))
	got, _, err = h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base)
	require.NoError(t, err)
	require.EqualValues(t, 1107, got.Total.Bytes)
	e, ok := got.Lookup(topn.AddrKey(addr("10.0.0.1")))
	require.True(t, ok)
	require.EqualValues(t, 1007, e.Value.Bytes)
	require.True(t, got.Exact())
}

// Past MaxKeys a shard's table compacts; totals stay exact, the heavy hitters
// stay within their error bound and the bound is reported.
func TestBoundedMemoryKeepsHeavyHitters(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1; c.TopK = 10; c.MaxKeys = 100 })
	var recs []flow.Record
	var total uint64
	for i := 0; i < 2000; i++ {
		src := fmt.Sprintf("10.1.%d.%d", i/250, i%250)
		r := rec(src, "10.0.0.2", 40000, 443, 10, base.Add(5*time.Second))
		recs = append(recs, r)
		total += 10
		if i%20 == 0 { // the heavy hitter, spread through the stream
			recs = append(recs, rec("10.9.9.9", "10.0.0.2", 40000, 443, 1000, base.Add(5*time.Second)))
			total += 1000
		}
	}
	for start := 0; start < len(recs); start += 1000 {
		end := min(start+1000, len(recs))
		h.push(t, recs[start:end]...)
	}
	require.NoError(t, h.agg.FlushAll())
	got, ok, err := h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, total, got.Total.Bytes)
	require.LessOrEqual(t, len(got.Entries), 30)
	rows, _ := got.Top(topn.DimSrcIP, 1, topn.Bytes)
	require.Equal(t, topn.AddrKey(addr("10.9.9.9")), rows[0].Key)
	trueBytes := uint64(100 * 1000)
	require.LessOrEqual(t, rows[0].Value.Bytes, trueBytes)
	require.GreaterOrEqual(t, rows[0].Value.Bytes+rows[0].Error.Bytes, trueBytes)
	require.False(t, got.Exact())
}

func TestStopFlushesOpenMinutes(t *testing.T) {
	h := startAggregator(t, nil)
	h.push(t, rec("10.0.0.1", "10.0.0.2", 40000, 443, 1000, base.Add(10*time.Second)))
	require.NoError(t, h.agg.FlushAll())
	got, ok, err := h.store.Get(store.TierMinute, topn.Scope{}, topn.DimApp, base)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 1000, got.Total.Bytes)
}

// A flood of distinct addresses stays within the shard's key budget (spread
// over all tables and minutes), and the heavy hitter keeps an exact-within-bound count.
func TestMemoryBudgetUnderCardinalityAttack(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1; c.TopK = 10; c.MaxKeys = 1 << 30; c.MaxMemory = 1 << 20 })
	budget := h.agg.shardBudget
	require.EqualValues(t, 1<<20, budget)
	var total uint64
	for batch := 0; batch < 20; batch++ {
		recs := make([]flow.Record, 0, 1001)
		for i := 0; i < 1000; i++ {
			n := batch*1000 + i
			src := fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
			dst := fmt.Sprintf("172.16.%d.%d", n>>8&255, n&255)
			recs = append(recs, rec(src, dst, uint16(1024+n%60000), uint16(2048+n%60000), 10, base.Add(5*time.Second)))
			total += 10
		}
		recs = append(recs, rec("10.255.255.255", "172.16.0.1", 40000, 443, 1000, base.Add(5*time.Second)))
		total += 1000
		h.push(t, recs...)
		s := h.agg.shards[0]
		s.mu.Lock()
		held := s.bytes
		s.mu.Unlock()
		require.LessOrEqual(t, held, budget, "batch %d", batch)
	}
	require.Positive(t, h.agg.compactions.Load())
	require.NoError(t, h.agg.FlushAll())
	got, ok, err := h.store.Get(store.TierMinute, topn.Scope{}, topn.DimSrcIP, base)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, total, got.Total.Bytes, "totals stay exact")
	rows, _ := got.Top(topn.DimSrcIP, 1, topn.Bytes)
	require.Equal(t, topn.AddrKey(addr("10.255.255.255")), rows[0].Key)
	require.LessOrEqual(t, rows[0].Value.Bytes, uint64(20*1000))
	require.GreaterOrEqual(t, rows[0].Value.Bytes+rows[0].Error.Bytes, uint64(20*1000))
}

// A partition's next minute starts with tables the size of its last minute's.
func TestNextMinuteTablesArePresized(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1 })
	var recs []flow.Record
	for i := 0; i < 5000; i++ {
		recs = append(recs, rec(fmt.Sprintf("10.2.%d.%d", i/250, i%250), "10.0.0.2", 40000, 443, 10, base.Add(5*time.Second)))
	}
	h.push(t, recs...)
	h.push(t, rec("10.0.0.1", "10.0.0.2", 40000, 443, 10, base.Add(65*time.Second)))
	s := h.agg.shards[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.minutes[base.Unix()+60].tables[specIndex(scPart, topn.DimSrcIP)]
	require.Equal(t, 1, next.n)
	require.GreaterOrEqual(t, len(next.slots), 2*5000, "sized for last minute's 5000 sources")
}

// Under a flood (more keys held than a checkpoint may write) an open minute
// answers from each scope's heaviest keys by bytes, with a bound that covers
// every key it leaves out; the closed minute is exact. Ordinary minutes are
// exact while open too.
func TestOpenMinuteViewIsCutWithBounds(t *testing.T) {
	// A budget of 280 keys: a checkpoint may write 70, and past them each
	// scope's table is cut to at least 64 keys.
	h := startAggregator(t, func(c *Configuration) { c.Shards, c.TopK, c.MaxKeys = 1, 5, 10_000 })
	h.agg.cfg.MaxMemory = 280 * 64
	var recs []flow.Record
	for i := range 200 { // source i sends i+1 bytes; 10.9.9.9 is the heavy hitter
		recs = append(recs, rec(fmt.Sprintf("10.1.0.%d", i), "10.0.0.2", 40000, 443, uint64(i+1), base.Add(5*time.Second)))
	}
	recs = append(recs, rec("10.9.9.9", "10.0.0.2", 40000, 443, 5000, base.Add(5*time.Second)))
	h.push(t, recs[:30]...)
	require.True(t, h.top(t, topn.Scope{}, topn.DimSrcIP, base, base.Add(time.Minute)).Exact(), "under the bound: every key")
	h.push(t, recs[30:]...)
	live := h.top(t, topn.Scope{}, topn.DimSrcIP, base, base.Add(time.Minute))
	require.Len(t, live.Entries, 64)
	require.EqualValues(t, 5000+200*201/2, live.Total.Bytes, "totals stay exact")
	require.Equal(t, uint64(137), live.Threshold.Bytes, "kept: 10.9.9.9 and the sources of 200 to 138 bytes; the heaviest left out sent 137")
	rows, _ := live.Top(topn.DimSrcIP, 1, topn.Bytes)
	require.Equal(t, topn.AddrKey(addr("10.9.9.9")), rows[0].Key)
	require.Equal(t, uint64(5000), rows[0].Value.Bytes)
	require.Zero(t, rows[0].Error.Bytes, "a kept key's count is exact")

	require.NoError(t, h.agg.FlushAll())
	closed := h.top(t, topn.Scope{}, topn.DimSrcIP, base, base.Add(time.Minute))
	require.Equal(t, live.Total, closed.Total)
	e, ok := closed.Lookup(topn.AddrKey(addr("10.9.9.9")))
	require.True(t, ok)
	require.Equal(t, uint64(5000), e.Value.Bytes)
}

// An answer already bounded by what it read from the store reads the open
// minute cut as its close cuts it (top_k by each metric, bounds on the
// rest): the same table before and after the minute closes, in every scope
// a query reads from memory. Otherwise it reads every key, exact.
func TestOpenMinuteReadAsItCloses(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.TopK = 8 })
	var recs []flow.Record
	for i := range 60 {
		// 60 sources; bytes, packets and flows rank them differently.
		r := rec(fmt.Sprintf("10.0.1.%d", i), "10.0.0.2", uint16(40000+i), 443, uint64(100+i*37%60*10), base.Add(10*time.Second))
		r.Packets = uint64(1 + (i*7)%60)
		for range i % 3 {
			recs = append(recs, r)
		}
		recs = append(recs, r)
	}
	h.push(t, recs...)
	read := func(sc topn.Scope, cut bool) *topn.Table {
		var got *topn.Table
		require.NoError(t, h.agg.View(func(v View) error {
			for _, tb := range v.Tables(sc, topn.DimSrcIP, base, base.Add(time.Minute), cut) {
				got = tb
			}
			return nil
		}))
		require.NotNil(t, got)
		return got
	}
	for _, sc := range []topn.Scope{{}, {Kind: topn.ScopeExporter, Exporter: addr("192.0.2.1")}} {
		all := read(sc, false)
		require.Len(t, all.Entries, 60, "scope %s", sc)
		require.True(t, all.Exact())
		open := read(sc, true)
		require.LessOrEqual(t, len(open.Entries), 3*8, "scope %s", sc)
		require.False(t, open.Exact())
		defer func() {
			closed := h.top(t, sc, topn.DimSrcIP, base, base.Add(time.Minute))
			require.Equal(t, closed.Total, open.Total)
			require.Equal(t, closed.Threshold, open.Threshold)
			require.ElementsMatch(t, closed.Entries, open.Entries, "scope %s", sc)
		}()
	}
	require.NoError(t, h.agg.FlushAll())
}
