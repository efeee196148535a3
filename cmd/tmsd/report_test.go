package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
)

// twoWeeks is the generator of the report tests: https and ssh with a daily
// cycle, https doubling in the second week, minute by minute.
type twoWeeks struct {
	t0         time.Time
	https, ssh []uint64 // bytes per minute
}

func newTwoWeeks() twoWeeks {
	g := twoWeeks{t0: time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)}
	for m := range 14 * 1440 {
		week, mod, dayMin := m/10080, m%10080, m%1440
		tri := uint64(min(dayMin, 1440-dayMin)) // peaks at noon
		base := 50_000 + 1000*tri + uint64(mod/1440)*100 + uint64(mod%7)
		g.https = append(g.https, base*uint64(week+1))
		g.ssh = append(g.ssh, 30_000+500*tri+uint64(m%5))
	}
	return g
}

func (g twoWeeks) records() []flow.Record {
	a := func(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }
	var recs []flow.Record
	for m := range g.https {
		ms := g.t0.Add(time.Duration(m)*time.Minute + 30*time.Second).UnixMilli()
		for _, r := range []struct {
			b    uint64
			port uint16
		}{{g.https[m], 443}, {g.ssh[m], 22}} {
			recs = append(recs, flow.Record{Exporter: a("192.0.2.1"), SrcAddr: a("10.0.0.1"), DstAddr: a("10.0.0.2"),
				SrcPort: 40000, DstPort: r.port, Proto: 6, Bytes: r.b, Packets: r.b / 1000, End: ms, Received: ms, SamplingRate: 1})
		}
	}
	return recs
}

// perStep is the expected bps per step of stepMin minutes of minutes [from,
// to) of a series, computed from the generator alone.
func perStep(minutes []uint64, from, to, stepMin int) []float64 {
	var out []float64
	for h := from; h < to; h += stepMin {
		var s uint64
		for _, v := range minutes[h : h+stepMin] {
			s += v
		}
		out = append(out, float64(s)*8/float64(stepMin*60))
	}
	return out
}

func nearestRank95(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(95*len(s)+99)/100-1]
}

// servedTwoWeeks runs a pipeline on an injected clock, feeds it the two
// weeks, rolls them up and returns it with the generator.
func servedTwoWeeks(t *testing.T) (*pipeline, twoWeeks) {
	g := newTwoWeeks()
	end := g.t0.Add(14 * day)
	var now atomic.Int64
	now.Store(end.Add(3 * time.Hour).UnixNano())
	p := startAccelerated(t, t.TempDir(), &now, nil)
	feed(t, p, g.records())
	rollUntil(t, p, end)
	return p, g
}

// startAccelerated runs a pipeline on data whose clock is now (unix
// nanoseconds, moved by the test), with retentions that keep generated
// traffic whatever the date, no listener, and the API on a kernel-chosen
// port. edit (may be nil) changes the configuration first. It is stopped at
// the end of the test unless the test stopped it.
func startAccelerated(t *testing.T, data string, now *atomic.Int64, edit func(*Config)) *pipeline {
	t.Helper()
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = nil, nil, "127.0.0.1:0", data
	cfg.Retention = Retention{Minute: Duration(36500 * day), Hour: Duration(36500 * day), Day: Duration(36500 * day)}
	if edit != nil {
		edit(&cfg)
	}
	p, err := newPipeline(cfg, newLogger("warn"), func() time.Time { return time.Unix(0, now.Load()).UTC() })
	require.NoError(t, err)
	require.NoError(t, p.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, p.stop()) }) // a no-op once stopped
	return p
}

// feed pushes records through the ring and writes every minute they fill.
func feed(t *testing.T, p *pipeline, recs []flow.Record) {
	t.Helper()
	pushAll(p.ring, recs)
	require.NoError(t, p.agg.Sync(60*time.Second))
	require.NoError(t, p.agg.FlushAll())
}

// rollUntil runs rollup passes until the day tier reaches end.
func rollUntil(t *testing.T, p *pipeline, end time.Time) {
	t.Helper()
	for i := 0; i < 1000 && p.rollup.Rolled(store.TierDay).Before(end); i++ {
		require.NoError(t, p.rollup.Pass())
	}
	require.Equal(t, end, p.rollup.Rolled(store.TierDay))
}

type reportFig struct {
	Bytes    uint64  `json:"bytes"`
	Bps      float64 `json:"bps"`
	Share    float64 `json:"share"`
	PeakBps  float64 `json:"peak_bps"`
	PeakTime string  `json:"peak_time"`
	P95Bps   float64 `json:"p95_bps"`
	Exact    bool    `json:"exact"`
}

type reportJSON struct {
	Tiers []string `json:"tiers"`
	Exact bool     `json:"exact"`
	Rows  []struct {
		Key string `json:"key"`
		reportFig
		Previous reportFig `json:"previous"`
		Delta    struct {
			Total float64 `json:"total"`
			P95   float64 `json:"p95_bps"`
		} `json:"delta"`
	} `json:"rows"`
}

// The acceptance of the report: over the second week, compared with the
// first, the doubled app is at +100 %, and peak and p95 equal what the
// generator's minutes give.
func TestReportWeekOverWeek(t *testing.T) {
	p, g := servedTwoWeeks(t)
	base := "http://" + p.api.Addr().String()
	week2 := g.t0.Add(7 * day)
	q := url.Values{"by": {"app"}, "from": {week2.Format(time.RFC3339)}, "to": {week2.Add(7 * day).Format(time.RFC3339)},
		"step": {"1h"}, "compare": {"7d"}}
	resp, err := http.Get(base + "/api/v1/report?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var r reportJSON
	require.NoError(t, json.Unmarshal(body, &r))
	require.True(t, r.Exact)
	require.Equal(t, []string{"hour", "day"}, r.Tiers, "days pick the keys, hours give the steps")
	require.Len(t, r.Rows, 2)
	require.Equal(t, "https", r.Rows[0].Key)
	require.InDelta(t, 100, r.Rows[0].Delta.Total, 1e-9)
	require.InDelta(t, 100, r.Rows[0].Delta.P95, 1e-9)
	require.Equal(t, "ssh", r.Rows[1].Key)
	require.InDelta(t, 0, r.Rows[1].Delta.Total, 0.01)

	check := func(name string, got reportFig, minutes []uint64, from int) {
		t.Helper()
		hours := perStep(minutes, from, from+10080, 60)
		peak := slices.Max(hours)
		require.InDelta(t, peak, got.PeakBps, 1e-6, name)
		require.Equal(t, g.t0.Add(time.Duration(from)*time.Minute+time.Duration(slices.Index(hours, peak))*time.Hour).Format(time.RFC3339), got.PeakTime, name)
		require.InDelta(t, nearestRank95(hours), got.P95Bps, 1e-6, name)
		var sum uint64
		for _, v := range minutes[from : from+10080] {
			sum += v
		}
		require.Equal(t, sum, got.Bytes, name)
		require.True(t, got.Exact, name)
	}
	check("https", r.Rows[0].reportFig, g.https, 10080)
	check("https week 1", r.Rows[0].Previous, g.https, 0)
	check("ssh", r.Rows[1].reportFig, g.ssh, 10080)
	check("ssh week 1", r.Rows[1].Previous, g.ssh, 0)

	t.Run("cli", func(t *testing.T) { testCLI(t, base, g) })
}

func runCLI(t *testing.T, base string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := cliEnv{stdout: &out, stderr: &errOut, getenv: func(string) string { return "" }, client: &http.Client{}}
	err := clientCommand(args[0], append([]string{"--server", base}, args[1:]...), env)
	return out.String(), err
}

func testCLI(t *testing.T, base string, g twoWeeks) {
	week2 := g.t0.Add(7 * day).Format(time.RFC3339)
	out, err := runCLI(t, base, "report", "--by", "app", "--from", week2, "--to", g.t0.Add(14*day).Format(time.RFC3339), "--step", "1h", "--compare", "7d")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 6, out) // head, https, ssh, other, total, footer
	require.Regexp(t, `^APP\s+BYTES\s+AVG\s+PEAK\s+PEAK AT\s+P95\s+SHARE\s+PREV BYTES\s+Δ BYTES\s+PREV P95\s+Δ P95$`, lines[0])
	require.Regexp(t, `^https\s.*\+100\.0%\s+\S+ \S+bps\s+\+100\.0%$`, lines[1])
	require.Contains(t, lines[5], "2026-10-12T00:00:00Z – 2026-10-19T00:00:00Z, step 1h")
	require.Contains(t, lines[5], "exact")

	out, err = runCLI(t, base, "top", "--by", "app", "--last", "24h", "--csv")
	require.NoError(t, err)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, "row", recs[0][0])
	require.Equal(t, "https", recs[1][1])

	out, err = runCLI(t, base, "top", "--by", "app", "--from", g.t0.Add(13*day).Format(time.RFC3339), "--to", g.t0.Add(14*day).Format(time.RFC3339))
	require.NoError(t, err)
	require.Regexp(t, `(?m)^https\s+1\.10 GiB\s+109 kbps\s+14 pps\s+1440\s+79\.6%$`, out)

	// Failures are one line and an error: a bad parameter relayed, a server down.
	_, err = runCLI(t, base, "report", "--by", "app", "--step", "1h", "--compare", "2w")
	require.ErrorContains(t, err, `bad request: parameter "compare": unknown period "2w"`)
	_, err = runCLI(t, base, "top", "--by", "nope")
	require.ErrorContains(t, err, `parameter "by"`)
	_, err = runCLI(t, base, "top")
	require.ErrorContains(t, err, "--by is required")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := "http://" + ln.Addr().String()
	require.NoError(t, ln.Close())
	_, err = runCLI(t, closed, "top", "--by", "app")
	require.ErrorContains(t, err, "cannot reach tmsd at "+closed)
	require.NotContains(t, err.Error(), "\n")
}

// tmsd report --last 1h at 14:29:17 reports what the server has up to now,
// the step from 14:25 included and marked open, not a range ending at 14:25
// (empty, on a collector started at 14:26).
func TestCLIShowsTheOpenStep(t *testing.T) {
	at := time.Date(2026, 11, 2, 14, 29, 17, 0, time.UTC)
	var now atomic.Int64
	now.Store(at.UnixNano())
	p := startAccelerated(t, t.TempDir(), &now, nil)
	a := func(s string) flow.Addr { return flow.AddrFrom(netip.MustParseAddr(s)) }
	var recs []flow.Record
	for m := 26; m <= 29; m++ {
		ms := time.Date(2026, 11, 2, 14, m, 5, 0, time.UTC).UnixMilli()
		recs = append(recs, flow.Record{Exporter: a("192.0.2.1"), SrcAddr: a("10.0.0.1"), DstAddr: a("10.0.0.2"), SrcPort: 40000, DstPort: 443,
			Proto: 6, Bytes: 1_000_000, Packets: 1000, End: ms, Received: ms, SamplingRate: 1})
	}
	feed(t, p, recs)
	base := "http://" + p.api.Addr().String()

	out, err := runCLI(t, base, "report", "--by", "app", "--last", "1h")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, out) // head, https, other keys, total, footer
	require.Regexp(t, `^https\s+3\.81 MiB\s`, lines[1])
	require.Regexp(t, `^\(total\)\s+3\.81 MiB\s`, lines[3])
	require.Contains(t, lines[4], "2026-11-02T13:25:00Z – 2026-11-02T14:30:00Z, step 5m")
	require.Contains(t, lines[4], "the step from 2026-11-02T14:25:00Z is still open: partial")

	out, err = runCLI(t, base, "top", "--by", "app", "--last", "1h")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^https\s+3\.81 MiB\s`, out)
	require.Contains(t, out, "2026-11-02T13:29:00Z – 2026-11-02T14:30:00Z; the minute from 2026-11-02T14:29:00Z is still open: partial")
}
