package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// qloadRun is the query-under-load check (issue 3, target 5): tmsd serves a
// data directory seeded with a day of K=1000 minutes, answers 24-hour tops
// one at a time, first alone (baseline), then while flowgen sends at Rate;
// it records each latency, the ingest loss, and whether every answer covered
// the day (its window, and a total that holds the seeded minutes in it).
type qloadRun struct {
	Format    string            `json:"format"`
	Rate      float64           `json:"target_flows_per_s"`
	Achieved  float64           `json:"achieved_flows_per_s"`
	DurationS float64           `json:"duration_s"`
	K         int               `json:"k"`
	Seeded    int               `json:"seeded_minutes"`
	SeedS     float64           `json:"seed_s"`
	Rollup    bool              `json:"rollup"`
	Sent      uint64            `json:"sent_flows"`
	Counted   uint64            `json:"counted_flows"`
	Loss      float64           `json:"loss"`
	Diag      map[string]uint64 `json:"diag,omitempty"`
	Baseline  []*qloadStats     `json:"baseline"`
	Load      []*qloadStats     `json:"under_ingest"`
	Problems  []string          `json:"problems,omitempty"`
	Err       string            `json:"error,omitempty"`
	seedFirst time.Time
	seedEnd   time.Time
}

// qloadStats is one dimension's queries of one phase.
type qloadStats struct {
	By       string   `json:"by"`
	Queries  int      `json:"queries"`
	Errors   int      `json:"errors"`
	MedianMs float64  `json:"median_ms"`
	P95Ms    float64  `json:"p95_ms"`
	MaxMs    float64  `json:"max_ms"`
	FirstMs  float64  `json:"first_ms"`
	Tiers    []string `json:"tiers"`
	// Window is the shortest range an answer covered (to - from), in minutes;
	// SeededMin/Max the fewest and most seeded minutes inside it.
	Window    int `json:"window_minutes"`
	SeededMin int `json:"seeded_minutes_min"`
	SeededMax int `json:"seeded_minutes_max"`
	// Covered counts the answers whose total holds every seeded minute of
	// their window: equal to them alone (baseline), at least them (under ingest).
	Covered int       `json:"covered"`
	lat     []float64 // ms
}

// qloadHTTP waits longer than httpc: a slow answer is a result to record, not an error.
var qloadHTTP = &http.Client{Timeout: 30 * time.Second}

// queryLoad runs the check once if -query-load, with the day rolled up into
// hours first (rollup) or not.
func (o *opts) queryLoad(ctx context.Context, rollup bool) *qloadRun {
	if !o.qload || ctx.Err() != nil {
		return nil
	}
	r := &qloadRun{Format: o.qFormat, Rate: o.qRate, DurationS: o.qDuration.Seconds(), K: o.qK, Seeded: 24 * 60, Rollup: rollup}
	fmt.Fprintf(os.Stderr, "== query load: 24-hour top over %d seeded minutes (K=%d) while %s flows/s of %s arrive for %s\n",
		r.Seeded, r.K, fmtRate(r.Rate), r.Format, o.qDuration)
	o.qloadRun(ctx, r)
	for _, s := range append(slices.Clone(r.Baseline), r.Load...) {
		fmt.Fprintf(os.Stderr, "   by=%-6s %3d queries: median %6.1f ms p95 %6.1f ms max %6.1f ms tiers %v covered %d\n",
			s.By, s.Queries, s.MedianMs, s.P95Ms, s.MaxMs, s.Tiers, s.Covered)
	}
	if r.Err != "" {
		fmt.Fprintln(os.Stderr, "   error:", r.Err)
	}
	return r
}

func (o *opts) qloadRun(ctx context.Context, r *qloadRun) {
	dir, err := os.MkdirTemp(o.work, "qload-")
	if err != nil {
		r.Err = err.Error()
		return
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	// The day ends two minutes before the current one, so that no flow of
	// the run (stamped now) falls into a seeded minute and replaces it.
	r.seedEnd = time.Now().UTC().Truncate(time.Minute).Add(-2 * time.Minute)
	r.seedFirst = r.seedEnd.Add(-time.Duration(r.Seeded) * time.Minute)
	t0 := time.Now()
	if err := seedStore(filepath.Join(dir, "data"), r.seedFirst, r.Seeded, r.K); err != nil {
		r.Err = err.Error()
		return
	}
	r.SeedS = time.Since(t0).Seconds()

	o.tmsdData = filepath.Join(dir, "data")
	if !r.Rollup {
		// Hold the hour rollups back past the day: every answer reads its
		// 1,440 minute tables, the case target 5 names (and the slowest).
		o.tmsdYAML = "rollup: {delay: 48h}\n"
	}
	defer func() { o.tmsdData, o.tmsdYAML = "", "" }()
	in, err := o.start(ctx, kTmsd, r.Format, dir)
	if err != nil {
		r.Err = err.Error()
		return
	}
	defer in.kill()
	if r.Rollup && !waitRollup(in, 3*time.Minute) {
		r.Problems = append(r.Problems, "the hour rollups had not caught up with the seeded day after 3 minutes")
	}
	waitQuiet(in.pid(), 10*time.Second)

	dims := []string{"srcip", "app"}
	// Baseline: the same queries with nothing arriving.
	r.Baseline = o.queries(ctx, in, r, dims, o.qBaseline*len(dims), 2*time.Minute, false)

	qctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bounded by count as well as by the generator's end: one query per
		// interval at most, plus some slack.
		n := int(o.qDuration/o.qInterval) + 10
		r.Load = o.queries(qctx, in, r, dims, n, o.qDuration+time.Minute, true)
	}()
	truthPath := filepath.Join(dir, "truth.json")
	count := uint64(math.Ceil(r.Rate * o.qDuration.Seconds()))
	tr, _, err := o.generate(ctx, r.Format, in.target(), r.Rate, count, o.qDuration, truthPath)
	stop()
	wg.Wait()
	if err != nil {
		r.Err = err.Error()
		return
	}
	r.Sent, r.Achieved = tr.Sent.Flows, tr.Rate

	// The ingest count is the API total from the end of the seeded day on,
	// so the seeded minutes do not count.
	cnt := func() (uint64, error) {
		var t topAnswer
		b, err := in.get(fmt.Sprintf("/api/v1/top?by=exporter&n=1&from=%d&to=now", r.seedEnd.Unix()))
		if err == nil {
			err = json.Unmarshal(b, &t)
		}
		return t.Total.Flows, err
	}
	for last, changed, end := uint64(0), time.Now(), time.Now().Add(o.settleMax); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := cnt()
		if err == nil && c != last {
			last, changed = c, time.Now()
		}
		if err == nil && (c >= r.Sent || time.Since(changed) >= o.stable) {
			break
		}
	}
	if r.Counted, err = cnt(); err != nil {
		r.Err = "count: " + err.Error()
		return
	}
	r.Diag = in.diag()
	r.Loss = (float64(r.Sent) - float64(r.Counted)) / float64(max(r.Sent, 1))
}

// waitRollup waits, at most max, until tmsd's hour rollups have caught up
// with the seeded day: its hour watermark lags the clock by no more than in
// steady state (an hour plus rollup.delay, 66 min by default; 0 is "none
// yet"). It reports whether they did.
func waitRollup(in *instance, max time.Duration) bool {
	const steady = 2*time.Hour + 20*time.Minute
	for end := time.Now().Add(max); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		b, err := in.get("/metrics")
		if err != nil {
			continue
		}
		lag := promSum(string(b), "tmsd_rollup_lag_seconds", map[string]string{"tier": "hour"})
		if lag > 0 && lag <= steady.Seconds() {
			return true
		}
	}
	return false
}

// queries asks GET /api/v1/top?by=D&n=10&from=-24h&to=now, cycling through
// dims, one at a time and at most every o.qInterval, n queries at most and
// for at most d or until ctx ends. Each answer's window is checked against
// the seeded minutes: its total must hold them all (exactly so when nothing
// else arrives).
func (o *opts) queries(ctx context.Context, in *instance, r *qloadRun, dims []string, n int, d time.Duration, ingest bool) []*qloadStats {
	stats := make([]*qloadStats, len(dims))
	for i, dim := range dims {
		stats[i] = &qloadStats{By: dim, Window: math.MaxInt, SeededMin: math.MaxInt}
	}
	bad := func(f string, a ...any) {
		if len(r.Problems) < 6 {
			r.Problems = append(r.Problems, fmt.Sprintf(f, a...))
		}
	}
	end := time.Now().Add(d)
	for i := 0; i < n && ctx.Err() == nil && time.Now().Before(end); i++ {
		s := stats[i%len(dims)]
		t0 := time.Now()
		ans, err := topDay(ctx, in, s.By)
		ms := float64(time.Since(t0).Microseconds()) / 1000
		if ctx.Err() != nil && err != nil {
			break // cut by the end of the generator, not an answer
		}
		s.Queries++
		if err != nil {
			s.Errors++
			bad("by=%s: %v", s.By, err)
		} else {
			if len(s.lat) == 0 {
				s.FirstMs = ms
			}
			s.lat = append(s.lat, ms)
			o.checkDay(r, s, ans, ingest, bad)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(t0.Add(o.qInterval))):
		}
	}
	for _, s := range stats {
		if len(s.lat) > 0 {
			slices.Sort(s.lat)
			s.MedianMs = quantile(s.lat, 0.5)
			s.P95Ms = quantile(s.lat, 0.95)
			s.MaxMs = s.lat[len(s.lat)-1]
		}
		if s.Window == math.MaxInt {
			s.Window, s.SeededMin = 0, 0
		}
	}
	return stats
}

// quantile of sorted xs, nearest rank.
func quantile(xs []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

type dayAnswer struct {
	From, To string
	Tiers    []string
	Rows     []topRow
	Total    amounts
}

func topDay(ctx context.Context, in *instance, by string) (*dayAnswer, error) {
	b, err := in.getWith(ctx, qloadHTTP, "/api/v1/top?by="+by+"&n=10&from=-24h&to=now")
	if err != nil {
		return nil, err
	}
	var a dayAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// checkDay records what one answer covered.
func (o *opts) checkDay(r *qloadRun, s *qloadStats, a *dayAnswer, ingest bool, bad func(string, ...any)) {
	from, err1 := time.Parse(time.RFC3339, a.From)
	to, err2 := time.Parse(time.RFC3339, a.To)
	if err1 != nil || err2 != nil {
		bad("by=%s: from %q to %q", s.By, a.From, a.To)
		return
	}
	for _, t := range a.Tiers {
		if !slices.Contains(s.Tiers, t) {
			s.Tiers = append(s.Tiers, t)
		}
	}
	s.Window = min(s.Window, int(to.Sub(from)/time.Minute))
	lo, hi := from, to
	if r.seedFirst.After(lo) {
		lo = r.seedFirst
	}
	if r.seedEnd.Before(hi) {
		hi = r.seedEnd
	}
	seeded := max(0, int(hi.Sub(lo)/time.Minute))
	s.SeededMin, s.SeededMax = min(s.SeededMin, seeded), max(s.SeededMax, seeded)
	want := seedTotal.Flows * uint64(seeded)
	switch {
	case len(a.Rows) == 0:
		bad("by=%s: no rows", s.By)
	case a.Total.Flows == want || ingest && a.Total.Flows > want:
		s.Covered++
	default:
		bad("by=%s [%s, %s): total %d flows, the %d seeded minutes in it hold %d", s.By, a.From, a.To, a.Total.Flows, seeded, want)
	}
}

func qloadReport(o *opts, r *qloadRun) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	how := "the hour rollups held back (`rollup.delay: 48h`), so every answer reads its 1,440 minute tables"
	if r.Rollup {
		how = "the hour rollups done first, so an answer reads whole hours from the hour tier and its edges from minutes"
	}
	p("\nQueries under ingest (tmsd alone; its data directory seeded through internal/store with %d minutes ending 2 minutes before the run, "+
		"each with K=%d `srcip` keys (half shared by every minute, half its own) and %d `app` keys; %s; seeding took %.0f s). "+
		"`GET /api/v1/top?by=srcip|app&n=10&from=-24h&to=now`, alternating, one at a time and at most every %s: %d before sending (baseline), "+
		"then while flowgen sends %s flows/s of %s for %s:\n\n",
		r.Seeded, r.K, min(r.K, seedAppCount), how, r.SeedS, o.qInterval, o.qBaseline*2, fmtRate(r.Rate), r.Format, o.qDuration)
	if r.Err != "" {
		p("Error: %s\n\n", r.Err)
	}
	p("| Phase | by | Queries | Errors | Median ms | p95 ms | Max ms | First ms | Tiers read | Window minutes | Seeded minutes in it | Totals cover them |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|\n")
	for _, ph := range []struct {
		name string
		ss   []*qloadStats
	}{{"no ingest", r.Baseline}, {"under ingest", r.Load}} {
		for _, s := range ph.ss {
			p("| %s | %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %s | %d | %d–%d | %d of %d |\n", ph.name, s.By, s.Queries, s.Errors,
				s.MedianMs, s.P95Ms, s.MaxMs, s.FirstMs, strings.Join(s.Tiers, ", "), s.Window, s.SeededMin, s.SeededMax, s.Covered, s.Queries-s.Errors)
		}
	}
	if r.Sent > 0 {
		p("\nIngest during the queries: achieved %s flows/s, sent %d, counted %d (`top?by=exporter&from=<end of the seeded day>&to=now` → `total.flows`), loss %.4f%%; %s.\n",
			fmtRate(r.Achieved), r.Sent, r.Counted, r.Loss*100, diagCell(r.Diag))
	}
	p("\nWindow = `to − from` of the answer (from=-24h is truncated and to=now rounded up to the minute: 1,441 minutes). " +
		"An answer covers its seeded minutes when its `total.flows` equals theirs (no ingest) or exceeds it (under ingest: the rest is the run's flows).\n")
	if len(r.Problems) > 0 {
		p("\nProblems: %s\n", strings.Join(r.Problems, "; "))
	}
	return b.String()
}
