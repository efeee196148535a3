package query

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/ring"
	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

func ip(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }

// scopedHour feeds an hour of traffic through an aggregator keeping one
// drill-down per minute, rolls it up, and returns an engine over the result.
// Every minute: 10.9.9.9 → 10.0.0.2:443 in by interface 3 (1000 B), 10.0.0.5 →
// 10.0.0.2:443 in by 4 (500 B), 10.0.0.6 → 10.0.0.8:5432 in by 4 (100 B).
func scopedHour(t *testing.T) *Engine {
	t.Helper()
	cfg := store.DefaultConfiguration()
	cfg.InMemory = true
	for _, tier := range store.Tiers {
		cfg.Retention[tier] = 100 * 365 * 24 * time.Hour
	}
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	t.Cleanup(func() { require.NoError(t, st.Stop()) })
	cls, err := apps.New(nil)
	require.NoError(t, err)
	acfg := aggregate.DefaultConfiguration()
	acfg.Shards, acfg.DrillDowns = 2, 1
	r := ring.NewBroadcast(1<<12, aggregate.Shards(acfg))
	acfg.FlushInterval, acfg.CheckpointInterval = time.Hour, 0
	now := t0.Add(3 * time.Hour)
	agg, err := aggregate.New(acfg, aggregate.Dependencies{Ring: r, Store: st, Classifier: cls,
		Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, agg.Start())
	t.Cleanup(func() { require.NoError(t, agg.Stop()) })
	for m := range 60 {
		ms := t0.Add(time.Duration(m)*time.Minute + 30*time.Second).UnixMilli()
		for _, f := range []flow.Record{
			{SrcAddr: ip("10.9.9.9"), DstAddr: ip("10.0.0.2"), SrcPort: 40000, DstPort: 443, Bytes: 1000, InIf: 3, OutIf: 1},
			{SrcAddr: ip("10.0.0.5"), DstAddr: ip("10.0.0.2"), SrcPort: 40001, DstPort: 443, Bytes: 500, InIf: 4, OutIf: 1},
			{SrcAddr: ip("10.0.0.6"), DstAddr: ip("10.0.0.8"), SrcPort: 40002, DstPort: 5432, Bytes: 100, InIf: 4, OutIf: 2},
		} {
			f.Exporter, f.Proto, f.Packets, f.Received, f.End = ip("192.0.2.1"), 6, 1, ms, ms
			require.True(t, r.Push(&f))
		}
		require.NoError(t, agg.Sync(10*time.Second))
	}
	require.NoError(t, agg.FlushAll())
	rcfg := rollup.DefaultConfiguration()
	rcfg.HourTopK, rcfg.DayTopK = acfg.TopK, acfg.TopK
	ru, err := rollup.New(rcfg, rollup.Dependencies{Store: st, Clock: func() time.Time { return now },
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, ru.Start())
	t.Cleanup(func() { require.NoError(t, ru.Stop()) })
	for i := 0; i < 10 && ru.Rolled(store.TierHour).Before(t0.Add(time.Hour)); i++ {
		require.NoError(t, ru.Pass())
	}
	require.False(t, ru.Rolled(store.TierHour).Before(t0.Add(time.Hour)), "the hour is rolled up")
	return New(st, agg, WithProgress(ru))
}

func bytesOf(d topn.Dim, t *topn.Table) map[string]uint64 {
	out := map[string]uint64{}
	for _, e := range t.Entries {
		out[d.Format(e.Key)] = e.Value.Bytes
	}
	return out
}

// The hour tier answers interface and drill-down scopes as the minutes did,
// and a drill-down no minute kept is reported partial, not as zero.
func TestScopesFromTheHourTier(t *testing.T) {
	e := scopedHour(t)
	hour := func(sc topn.Scope, d topn.Dim) Result {
		t.Helper()
		res, err := e.Top(sc, d, t0, t0.Add(time.Hour), 10, topn.Bytes)
		require.NoError(t, err)
		require.Equal(t, []string{"hour"}, res.Tiers, "%s %s", sc, d)
		return res
	}
	in3 := topn.Scope{Kind: topn.ScopeInterface, Exporter: ip("192.0.2.1"), IfIndex: 3, Dir: topn.DirIn}
	in4 := in3
	in4.IfIndex = 4
	require.Equal(t, map[string]uint64{"10.9.9.9": 60_000}, bytesOf(topn.DimSrcIP, hour(in3, topn.DimSrcIP).Table))
	require.Equal(t, map[string]uint64{"10.0.0.5": 30_000, "10.0.0.6": 6_000}, bytesOf(topn.DimSrcIP, hour(in4, topn.DimSrcIP).Table))
	require.Equal(t, map[string]uint64{"https": 30_000, "postgresql": 6_000}, bytesOf(topn.DimApp, hour(in4, topn.DimApp).Table))

	// https is every minute's top application: its drill-down is complete.
	https := hour(topn.Scope{Kind: topn.ScopeApp, App: topn.AppKey("https")}, topn.DimSrcIP)
	require.Equal(t, map[string]uint64{"10.9.9.9": 60_000, "10.0.0.5": 30_000}, bytesOf(topn.DimSrcIP, https.Table))
	require.True(t, https.Exact)
	require.False(t, https.Partial)
	// 10.0.0.2 is every minute's top address: its peers.
	peers := hour(topn.Scope{Kind: topn.ScopeIP, IP: ip("10.0.0.2")}, topn.DimPeer)
	require.Equal(t, map[string]uint64{"10.9.9.9": 60_000, "10.0.0.5": 30_000}, bytesOf(topn.DimPeer, peers.Table))
	require.False(t, peers.Partial)

	// postgresql never was: no drill-down, and the answer says so.
	pg := topn.Scope{Kind: topn.ScopeApp, App: topn.AppKey("postgresql")}
	res := hour(pg, topn.DimSrcIP)
	require.Empty(t, res.Table.Entries)
	require.True(t, res.Partial)
	require.False(t, res.Exact)
	series, err := e.Series(pg, t0, t0.Add(time.Hour), time.Hour, 0, nil)
	require.NoError(t, err)
	require.True(t, series.Partial)
	series, err = e.Series(topn.Scope{Kind: topn.ScopeApp, App: topn.AppKey("https")}, t0, t0.Add(time.Hour), time.Hour, 0, nil)
	require.NoError(t, err)
	require.False(t, series.Partial)
	require.True(t, series.Exact)
	require.EqualValues(t, 90_000, series.Points[0].Value.Bytes)

	// A range of minutes answers the same from the minute tier.
	res, err = e.Top(in3, topn.DimApp, t0.Add(10*time.Minute), t0.Add(20*time.Minute), 10, topn.Bytes)
	require.NoError(t, err)
	require.Equal(t, []string{"minute"}, res.Tiers)
	require.Equal(t, map[string]uint64{"https": 10_000}, bytesOf(topn.DimApp, res.Table))

	// A dimension the scope keeps no table of is refused, not answered empty.
	_, err = e.Top(pg, topn.DimApp, t0, t0.Add(time.Hour), 10, topn.Bytes)
	require.ErrorIs(t, err, ErrInvalid)
}
