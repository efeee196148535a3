package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// monthDays is the generated month: four whole weeks, so week 3 is days 14–20.
const monthDays = 28

// monthFlow is one record per minute of the generated month: an app (a
// server port named by a rule), a source host, and where it crosses the
// network (exporter, input and output interface).
type monthFlow struct {
	app         string
	port        uint16
	src         string
	exporter    string
	inIf, outIf uint32
	weight      uint64
	phase       int // minutes that shift its daily cycle
}

// month generates the month minute by minute and keeps its exact truth:
// twelve apps with daily cycles of different phases, app09 doubling from week
// 3 on, two exporters whose hosts spread over interfaces 1 and 2 (in) and 9
// (out), and 10.7.7.7, the one host on exporter 2's interface 7 (app05, as a
// second server of that app).
type month struct {
	t0    time.Time
	flows []monthFlow
	bytes [][]uint64 // per flow, per minute
}

const (
	monthE1, monthE2 = "192.0.2.1", "192.0.2.2"
	lonelyHost       = "10.7.7.7"
	doublingApp      = "app09"
)

func newMonth() month {
	g := month{t0: time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC)} // a Monday
	for i := range 12 {
		f := monthFlow{app: fmt.Sprintf("app%02d", i+1), port: uint16(7001 + i), src: fmt.Sprintf("10.1.0.%d", i+1),
			exporter: monthE1, inIf: uint32(1 + (i/2)%2), outIf: 9, weight: uint64(100 - 7*i), phase: 97 * i}
		if i%2 == 1 {
			f.exporter = monthE2
		}
		g.flows = append(g.flows, f)
	}
	g.flows = append(g.flows, monthFlow{app: "app05", port: 7005, src: lonelyHost, exporter: monthE2, inIf: 7, outIf: 9, weight: 30, phase: 300})
	for _, f := range g.flows {
		series := make([]uint64, monthDays*1440)
		for m := range series {
			dayMin := (m + f.phase) % 1440
			tri := uint64(min(dayMin, 1440-dayMin)) // peaks at noon, shifted by the phase
			b := f.weight*(400+tri) + uint64(m/1440)*13 + uint64(m%7)
			if f.app == doublingApp && m >= 14*1440 {
				b *= 2
			}
			series[m] = b
		}
		g.bytes = append(g.bytes, series)
	}
	return g
}

func (g month) end() time.Time { return g.t0.Add(monthDays * day) }

// appRules name the generator's ports.
func (g month) appRules(t *testing.T) []AppRule {
	var rules []AppRule
	for i := range 12 {
		r, err := apps.ParseRule(fmt.Sprintf("app%02d = tcp/%d", i+1, 7001+i))
		require.NoError(t, err)
		rules = append(rules, AppRule{r})
	}
	return rules
}

// records returns the records of minutes [from, to), one per flow per minute.
func (g month) records(from, to int) []flow.Record {
	a := func(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }
	recs := make([]flow.Record, 0, (to-from)*len(g.flows))
	for m := from; m < to; m++ {
		ms := g.t0.Add(time.Duration(m)*time.Minute + 30*time.Second).UnixMilli()
		for i, f := range g.flows {
			b := g.bytes[i][m]
			recs = append(recs, flow.Record{Exporter: a(f.exporter), SrcAddr: a(f.src), DstAddr: a("198.51.100.1"),
				SrcPort: 40000, DstPort: f.port, Proto: 6, InIf: f.inIf, OutIf: f.outIf,
				Bytes: b, Packets: b/1000 + 1, End: ms, Received: ms, SamplingRate: 1})
		}
	}
	return recs
}

// monthRow is a row of the truth and of an answer.
type monthRow struct {
	Key                   string
	Bytes, Packets, Flows uint64
	Error                 uint64
}

// top is the truth: the top n keys by bytes of dimension by ("app" or
// "srcip") over minutes [from, to) of the flows keep selects.
func (g month) top(by string, from, to, n int, keep func(monthFlow) bool) []monthRow {
	sums := map[string]*monthRow{}
	for i, f := range g.flows {
		if !keep(f) {
			continue
		}
		key := f.app
		if by == "srcip" {
			key = f.src
		}
		r := sums[key]
		if r == nil {
			r = &monthRow{Key: key}
			sums[key] = r
		}
		for _, b := range g.bytes[i][from:to] {
			r.Bytes += b
			r.Packets += b/1000 + 1
			r.Flows++
		}
	}
	var rows []monthRow
	for _, r := range sums {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b monthRow) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	return rows[:min(n, len(rows))]
}

// series is an app's bytes per minute.
func (g month) series(app string) []uint64 {
	out := make([]uint64, monthDays*1440)
	for i, f := range g.flows {
		if f.app == app {
			for m, b := range g.bytes[i] {
				out[m] += b
			}
		}
	}
	return out
}

// total is the bytes of every flow over minutes [from, to).
func (g month) total(from, to int) uint64 {
	var s uint64
	for i := range g.flows {
		for _, b := range g.bytes[i][from:to] {
			s += b
		}
	}
	return s
}

type monthTop struct {
	Tiers []string `json:"tiers"`
	Exact bool     `json:"exact"`
	Rows  []monthRow
	Total struct{ Bytes, Packets, Flows uint64 }
}

func getMonthJSON(t *testing.T, base, path string, q url.Values, out any) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s?%s: %s", path, q.Encode(), body)
	require.NoError(t, json.Unmarshal(body, out))
}

// The month of issue 5's acceptance, with tmsd killed mid-month: the first
// half goes to a pipeline that dies with its rollups behind and an hour half
// rolled up; a new pipeline on the same directory gets the rest. Afterwards
// every hour and day of the month is rolled up, and the monthly and
// per-interface top-10s, peaks and p95s equal the generator's truth.
func TestGeneratedMonthKilledMidMonth(t *testing.T) {
	began := time.Now()
	g := newMonth()
	data := t.TempDir()
	edit := func(cfg *Config) {
		cfg.Aggregate.ScopeInterface = true // the per-interface tops need it
		// Drill-downs (on by default) add a scope per top application and
		// address to each of the month's 40,320 minutes, written and rolled
		// up: 340 s of Badger writes and compactions instead of 120 s, for
		// scopes this test does not read.
		cfg.Aggregate.DrillDowns = 0
		// The month is 40,320 minutes, each closed into 11 scopes: its cost is
		// the per-minute flush, which one shard (one partition per key to merge)
		// and small tables (the month has 13 keys) keep down.
		cfg.Aggregate.Shards = 1
		cfg.Aggregate.TopK = 50
		cfg.Apps = g.appRules(t)
	}
	// The kill, at day 13 10:37: the minutes before it are written (what the
	// aggregator does with a kill -9 is TestKill9's), the rollups are far behind.
	kill := (monthDays/2-1)*1440 + 10*60 + 37
	var now atomic.Int64
	now.Store(g.t0.Add(time.Duration(kill) * time.Minute).UnixNano())
	p := startAccelerated(t, data, &now, edit)
	// The rollups' own goroutine rolls a backlog up a slice a second: on a
	// slow or busy machine it caught up while the feed ran, and left no
	// backlog for the restart to find. Stopped, only the passes below run.
	require.NoError(t, p.rollup.Stop())
	feed(t, p, g.records(0, kill))
	for range 5 {
		require.NoError(t, p.rollup.Pass())
	}
	hourMark := p.rollup.Rolled(store.TierHour)
	require.True(t, hourMark.Before(g.t0.Add(time.Duration(kill)*time.Minute-2*time.Hour)), "the kill must leave a backlog: hours rolled up to %s", hourMark)
	// A pass killed half-way through the next hour: one scope written, the
	// watermark not moved. It has a wrong total the restart must overwrite.
	stray := store.Interval{Tier: store.TierHour, Start: hourMark, Total: topn.Counters{Bytes: 1},
		Tables: map[topn.Dim]*topn.Table{topn.DimApp: {Total: topn.Counters{Bytes: 1}}}}
	_, _, err := p.store.Put(time.Now(), []store.Interval{stray})
	require.NoError(t, err)
	require.NoError(t, p.store.Totals(store.TierHour, topn.Scope{}, hourMark, hourMark.Add(time.Hour), func(_ time.Time, c topn.Counters) error {
		require.Equal(t, uint64(1), c.Bytes, "the stray hour is stored")
		return nil
	}))
	// The process dies. Stopping the components here does nothing a kill would
	// not: the aggregator holds no open minute and rollup.Stop runs no pass, so
	// what the restart finds is the backlog and the stray hour.
	require.NoError(t, p.stop())
	t.Logf("killed at %s with hours rolled up to %s, days to %s",
		g.t0.Add(time.Duration(kill)*time.Minute).Format(time.RFC3339), hourMark.Format(time.RFC3339), p.rollup.Rolled(store.TierDay).Format(time.RFC3339))

	now.Store(g.end().Add(3 * time.Hour).UnixNano())
	p = startAccelerated(t, data, &now, edit)
	feed(t, p, g.records(kill, monthDays*1440))
	rollUntil(t, p, g.end())
	t.Logf("month fed and rolled up in %s", time.Since(began).Round(time.Millisecond))
	base := "http://" + p.api.Addr().String()

	t.Run("no missing hour", func(t *testing.T) {
		for _, tc := range []struct {
			tier store.Tier
			n    int
		}{{store.TierHour, monthDays * 24}, {store.TierDay, monthDays}} {
			var starts []time.Time
			require.NoError(t, p.store.Totals(tc.tier, topn.Scope{}, g.t0, g.end(), func(s time.Time, c topn.Counters) error {
				mins := int(tc.tier.Duration() / time.Minute)
				from := int(s.Sub(g.t0) / time.Minute)
				require.Equal(t, g.total(from, from+mins), c.Bytes, "%s %s", tc.tier, s)
				starts = append(starts, s)
				return nil
			}))
			require.Len(t, starts, tc.n, tc.tier.String())
			for i, s := range starts {
				require.Equal(t, g.t0.Add(time.Duration(i)*tc.tier.Duration()), s, tc.tier.String())
			}
		}
		// And each hour through the API, answered by the hour tier.
		for h := range monthDays * 24 {
			from := g.t0.Add(time.Duration(h) * time.Hour)
			var top monthTop
			getMonthJSON(t, base, "/api/v1/top", url.Values{"by": {"app"}, "from": {from.Format(time.RFC3339)},
				"to": {from.Add(time.Hour).Format(time.RFC3339)}}, &top)
			require.Equal(t, []string{"hour"}, top.Tiers, from)
			require.Equal(t, g.total(h*60, h*60+60), top.Total.Bytes, from)
		}
		t.Logf("hours checked: %d in the hour tier and through the API, days: %d, every total equal to the generator's", monthDays*24, monthDays)
	})

	t.Run("monthly top-10 by app", func(t *testing.T) {
		q := url.Values{"by": {"app"}, "n": {"10"}, "from": {g.t0.Format(time.RFC3339)}, "to": {g.end().Format(time.RFC3339)}}
		var top monthTop
		getMonthJSON(t, base, "/api/v1/top", q, &top)
		want := g.top("app", 0, monthDays*1440, 10, func(monthFlow) bool { return true })
		require.Equal(t, []string{"day"}, top.Tiers, "a month of whole days is answered by the day tier")
		require.True(t, top.Exact)
		require.Equal(t, want, top.Rows)
		require.Equal(t, g.total(0, monthDays*1440), top.Total.Bytes)
		for i, r := range top.Rows {
			t.Logf("month top %2d: %s %d bytes %d packets %d flows (error %d)", i+1, r.Key, r.Bytes, r.Packets, r.Flows, r.Error)
		}
		before := g.top("app", 0, 14*1440, 10, func(monthFlow) bool { return true })
		require.Equal(t, doublingApp, before[8].Key, "ninth over weeks 1 and 2")
		require.Equal(t, doublingApp, top.Rows[5].Key, "doubled from week 3: sixth of the month")
	})

	t.Run("per-interface top-10", func(t *testing.T) {
		type iface struct {
			exporter string
			ifIndex  uint32
			dir      string
		}
		ifaces := []iface{{monthE1, 1, "in"}, {monthE1, 2, "in"}, {monthE2, 1, "in"}, {monthE2, 2, "in"}, {monthE2, 7, "in"},
			{monthE1, 9, "out"}, {monthE2, 9, "out"}}
		lonelyOn := []string{}
		for _, ifc := range ifaces {
			keep := func(f monthFlow) bool {
				if f.exporter != ifc.exporter {
					return false
				}
				if ifc.dir == "in" {
					return f.inIf == ifc.ifIndex
				}
				return f.outIf == ifc.ifIndex
			}
			for _, by := range []string{"app", "srcip"} {
				q := url.Values{"by": {by}, "n": {"10"}, "from": {g.t0.Format(time.RFC3339)}, "to": {g.end().Format(time.RFC3339)},
					"if": {fmt.Sprintf("%s:%d", ifc.exporter, ifc.ifIndex)}, "dir": {ifc.dir}}
				var top monthTop
				getMonthJSON(t, base, "/api/v1/top", q, &top)
				want := g.top(by, 0, monthDays*1440, 10, keep)
				require.NotEmpty(t, want)
				require.Equal(t, []string{"day"}, top.Tiers, q.Encode())
				require.True(t, top.Exact, q.Encode())
				require.Equal(t, want, top.Rows, q.Encode())
				keys := []string{}
				for _, r := range top.Rows {
					keys = append(keys, r.Key)
				}
				t.Logf("if=%s:%d dir=%s by %s: %s", ifc.exporter, ifc.ifIndex, ifc.dir, by, strings.Join(keys, " "))
				if by == "srcip" && ifc.dir == "in" && slices.Contains(keys, lonelyHost) {
					lonelyOn = append(lonelyOn, fmt.Sprintf("%s:%d", ifc.exporter, ifc.ifIndex))
				}
			}
		}
		require.Equal(t, []string{monthE2 + ":7"}, lonelyOn, "%s enters by one interface only", lonelyHost)
	})

	t.Run("peak and p95", func(t *testing.T) {
		f := func(from, to time.Time, step string, stepMin int, wantTiers []string) {
			t.Helper()
			q := url.Values{"by": {"app"}, "n": {"10"}, "step": {step}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
			var r reportJSON
			getMonthJSON(t, base, "/api/v1/report", q, &r)
			require.True(t, r.Exact, q.Encode())
			require.Equal(t, wantTiers, r.Tiers, q.Encode())
			fm, tm := int(from.Sub(g.t0)/time.Minute), int(to.Sub(g.t0)/time.Minute)
			want := g.top("app", fm, tm, 10, func(monthFlow) bool { return true })
			require.Len(t, r.Rows, len(want), q.Encode())
			for i, row := range r.Rows {
				require.Equal(t, want[i].Key, row.Key, q.Encode())
				steps := perStep(g.series(row.Key), fm, tm, stepMin)
				peak := slices.Max(steps)
				peakAt := from.Add(time.Duration(slices.Index(steps, peak)*stepMin) * time.Minute).Format(time.RFC3339)
				p95 := nearestRank95(steps)
				t.Logf("%s step %s %s: peak %.3f bps at %s (want %.3f at %s), p95 %.3f bps (want %.3f)",
					from.Format("01-02"), step, row.Key, row.PeakBps, row.PeakTime, peak, peakAt, row.P95Bps, p95)
				require.InDelta(t, peak, row.PeakBps, 1e-6, row.Key)
				require.Equal(t, peakAt, row.PeakTime, row.Key)
				require.InDelta(t, p95, row.P95Bps, 1e-6, row.Key)
				require.Equal(t, want[i].Bytes, row.Bytes, row.Key)
				require.True(t, row.Exact, row.Key)
			}
		}
		f(g.t0, g.end(), "1h", 60, []string{"hour", "day"}) // days pick the keys, hours give the steps
		week3 := g.t0.Add(14 * day)
		f(week3, week3.Add(7*day), "5m", 5, []string{"minute", "day"})
	})

	t.Run("week 3 over week 2", func(t *testing.T) {
		week3 := g.t0.Add(14 * day)
		q := url.Values{"by": {"app"}, "n": {"12"}, "step": {"1h"}, "compare": {"7d"},
			"from": {week3.Format(time.RFC3339)}, "to": {week3.Add(7 * day).Format(time.RFC3339)}}
		var r reportJSON
		getMonthJSON(t, base, "/api/v1/report", q, &r)
		require.Len(t, r.Rows, 12)
		for _, row := range r.Rows {
			t.Logf("week 3 over week 2: %s %+.2f%% bytes, p95 %+.2f%%", row.Key, row.Delta.Total, row.Delta.P95)
			want := 0.0
			if row.Key == doublingApp {
				want = 100
			}
			// Each day adds 13 bytes a minute: a week later is a little more.
			require.InDelta(t, want, row.Delta.Total, 1, row.Key)
			require.Positive(t, row.Delta.Total, row.Key)
		}
	})
}
