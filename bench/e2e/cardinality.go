package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cardRun is one run of tmsd under spread sources (flowgen -spread): a
// minute with Distinct distinct source addresses at Rate flows/s, checked
// for memory (peak RSS), loss, exact totals and heavy hitters that stay
// within tmsd's stated error bound.
type cardRun struct {
	Distinct    uint64  `json:"distinct_sources"`
	Format      string  `json:"format"`
	Rate        float64 `json:"target_flows_per_s"`
	Achieved    float64 `json:"achieved_flows_per_s"`
	Sent        uint64  `json:"sent_flows"`
	Counted     uint64  `json:"counted_flows"`
	SpreadFlows uint64  `json:"spread_flows"`
	Loss        float64 `json:"loss"`
	HWMKiB      uint64  `json:"peak_rss_kib"`
	// AnonKiB and FileKiB are the peaks of RssAnon and RssFile, sampled
	// every 250 ms: the process's own memory, and the store's mapped files.
	AnonKiB     uint64   `json:"peak_rss_anon_kib"`
	FileKiB     uint64   `json:"peak_rss_file_kib"`
	MaxMemory   string   `json:"max_memory"`
	MemoryLimit string   `json:"memory_limit"`
	Compactions uint64   `json:"compactions"`
	TotalsExact bool     `json:"totals_exact"`
	Heavy       int      `json:"heavy_checked"`
	HeavyOK     int      `json:"heavy_within_bound"`
	Problems    []string `json:"problems,omitempty"`
	Err         string   `json:"error,omitempty"`
}

// cardinality runs one cardRun per -cardinality entry.
func (o *opts) cardinality(ctx context.Context) []*cardRun {
	var runs []*cardRun
	for _, d := range o.card {
		if ctx.Err() != nil {
			break
		}
		r := &cardRun{Distinct: d, Format: o.cardFormat, Rate: o.cardRate, MaxMemory: o.cardMaxMemory, MemoryLimit: o.cardMemoryLimit}
		fmt.Fprintf(os.Stderr, "== cardinality: %d distinct sources at %s flows/s of %s for %s\n",
			d, fmtRate(o.cardRate), o.cardFormat, o.cardDuration)
		o.cardRun(ctx, r)
		runs = append(runs, r)
	}
	return runs
}

func (o *opts) cardRun(ctx context.Context, r *cardRun) {
	o.tmsdYAML = "memory_limit: " + r.MemoryLimit + "\naggregate: {max_memory: " + r.MaxMemory + "}\n"
	defer func() { o.tmsdYAML = "" }()
	in, err := o.start(ctx, kTmsd, r.Format, o.work)
	if err != nil {
		r.Err = err.Error()
		return
	}
	defer in.kill()
	pid := in.pid()
	waitQuiet(pid, 3*time.Second)
	done := make(chan struct{})
	peaks := rssPeaks(pid, 250*time.Millisecond, done)

	truthPath := filepath.Join(in.dir, "truth.json")
	count := uint64(math.Ceil(r.Rate * o.cardDuration.Seconds()))
	tr, _, err := o.generate(ctx, r.Format, in.target(), r.Rate, count, o.cardDuration, truthPath,
		"-spread", strconv.FormatUint(r.Distinct, 10))
	if err != nil {
		r.Err = err.Error()
		return
	}
	r.Sent, r.Achieved = tr.Sent.Flows, tr.Rate
	if tr.Spread != nil {
		r.SpreadFlows = tr.Spread.Flows
	}
	for last, changed, end := uint64(0), time.Now(), time.Now().Add(o.settleMax); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := in.count()
		if err == nil && c != last {
			last, changed = c, time.Now()
		}
		if err == nil && (c >= r.Sent || time.Since(changed) >= o.stable) {
			break
		}
	}
	r.HWMKiB = treeHWM(pid)
	close(done)
	r.AnonKiB, r.FileKiB = peaks()
	if r.Counted, err = in.count(); err != nil {
		r.Err = err.Error()
		return
	}
	r.Loss = (float64(r.Sent) - float64(r.Counted)) / float64(max(r.Sent, 1))
	if b, err := in.get("/metrics"); err == nil {
		r.Compactions = uint64(promSum(string(b), "tmsd_aggregate_compactions_total", nil))
	}
	bad := func(f string, a ...any) {
		if len(r.Problems) < 4 {
			r.Problems = append(r.Problems, fmt.Sprintf(f, a...))
		}
	}
	t, err := in.top("exporter", 10)
	if err != nil {
		bad("total: %v", err)
	} else if r.TotalsExact = t.Total == tr.Total; !r.TotalsExact {
		bad("total %+v, truth %+v", t.Total, tr.Total)
	}
	// The truth's srcip list holds the kept (heavy) hosts only. Each must be
	// in tmsd's answer with bytes ≤ truth ≤ bytes + error.
	want := tr.Top["srcip"]
	want = want[:min(10, len(want))]
	got, err := in.topN("srcip", 100)
	if err != nil {
		bad("srcip: %v", err)
		return
	}
	for _, w := range want {
		r.Heavy++
		var row *topRowErr
		for i := range got.Rows {
			if got.Rows[i].Key == w.Key {
				row = &got.Rows[i]
			}
		}
		switch {
		case row == nil:
			bad("heavy hitter %s (%d bytes) missing from tmsd's top 100", w.Key, w.Bytes)
		case row.Bytes > w.Bytes || w.Bytes > row.Bytes+row.Error:
			bad("heavy hitter %s: tmsd %d bytes ± %d, truth %d", w.Key, row.Bytes, row.Error, w.Bytes)
		default:
			r.HeavyOK++
		}
	}
}

type topRowErr struct {
	Key   string `json:"key"`
	Bytes uint64 `json:"bytes"`
	Error uint64 `json:"error"`
}

// topN is top with the rows' error bounds.
func (in *instance) topN(by string, n int) (*struct{ Rows []topRowErr }, error) {
	b, err := in.get(fmt.Sprintf("/api/v1/top?by=%s&n=%d&%s", by, n, tmsdAPIQry))
	if err != nil {
		return nil, err
	}
	var t struct{ Rows []topRowErr }
	return &t, json.Unmarshal(b, &t)
}

func cardReport(o *opts, runs []*cardRun) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("\nBounded memory under cardinality (tmsd alone; flowgen -spread N: every flow whose source is not among the 100 most popular hosts gets the next of N addresses, so each minute holds N distinct sources; %s of %s at a target %s flows/s). Peak RSS is VmHWM; anonymous / file-backed are the peaks of RssAnon and RssFile sampled every 250 ms, the file-backed part being the store's files, which Badger maps and writes through the mapping (page cache the kernel can reclaim):\n\n",
		o.cardDuration, o.cardFormat, fmtRate(o.cardRate))
	p("| Distinct sources | memory_limit | aggregate.max_memory | Achieved flows/s | Spread flows | Loss | Peak RSS MiB | Peak anonymous / file-backed MiB | Compactions | Totals exact | Heavy hitters within bound |\n")
	p("|---:|---|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range runs {
		if r.Err != "" {
			p("| %d | %s | %s | error: %s | | | | | | | |\n", r.Distinct, r.MemoryLimit, r.MaxMemory, r.Err)
			continue
		}
		heavy := fmt.Sprintf("%d of %d", r.HeavyOK, r.Heavy)
		if len(r.Problems) > 0 {
			heavy += " (" + strings.Join(r.Problems, "; ") + ")"
		}
		p("| %d | %s | %s | %s | %d | %.3f%% | %.0f | %.0f / %.0f | %d | %v | %s |\n", r.Distinct, r.MemoryLimit, r.MaxMemory, fmtRate(r.Achieved), r.SpreadFlows,
			r.Loss*100, float64(r.HWMKiB)/1024, float64(r.AnonKiB)/1024, float64(r.FileKiB)/1024, r.Compactions, r.TotalsExact, heavy)
	}
	return b.String()
}
