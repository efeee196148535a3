// Command e2e is the end-to-end benchmark of make bench: it runs tmsd,
// goflow2 and nfcapd (sfacctd for sFlow) one after the other against the
// same generator (bin/flowgen), for NetFlow v5, v9, IPFIX and sFlow v5, at
// rising rates until the collector loses more than -loss of the flows, and
// reports per (format, collector) the highest loss-free rate, the CPU and
// the peak RSS of the collector, and tmsd's exactness against the
// generator's truth. The generator sends flowgen's default workload, the
// backbone profile (-profile, -gen-flags to change it); the report states
// it, the flows per distinct tuple and minute of every step, and the
// generator's own flat-out rate (-gen-max). All traffic goes to 127.0.0.1;
// every step is bounded in flows (-count) and in time.
//
// Usage (bench/run.sh does this): go run ./bench/e2e [-quick] [-md out.md] [-json out.json]
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type opts struct {
	bin               string
	formats           []string
	collectors        []string
	scaling           []string
	enrichment        []string // formats tmsd also runs with enrichment off
	sflowPeer         string
	startRate, factor float64
	maxRate           float64
	minRate           float64
	duration          time.Duration
	lossMax           float64
	maxLag            time.Duration
	genBound          float64
	maxSteps          int
	confirm           bool
	refine            bool
	refineTo          float64
	refineMax         int
	stable            time.Duration
	settleMax         time.Duration
	budget            time.Duration
	genCPU, oneCPU    string
	rcvbuf            int
	tmsdSockets       int
	goflowSockets     int
	exporters         int
	seed              int
	profile           string   // flowgen -profile
	genFlags          []string // more flowgen flags, for every run
	genMaxDuration    time.Duration
	work              string
	keep              bool
	quick             bool

	// Cardinality runs (cardinality.go).
	card            []uint64
	cardRate        float64
	cardDuration    time.Duration
	cardFormat      string
	cardMaxMemory   string
	cardMemoryLimit string
	tmsdYAML        string // extra tmsd configuration for the next start
	tmsdExtra       string // extra tmsd configuration for every start (-tmsd-yaml)
	tmsdData        string // data directory of the next tmsd start (empty: a fresh one)

	// Query-under-load run (qload.go).
	qload     bool
	qRate     float64
	qDuration time.Duration
	qFormat   string
	qInterval time.Duration
	qBaseline int
	qK        int
	qRollup   []bool

	// Alert-rules-under-ingest run (alertload.go).
	aload     bool
	aFormat   string
	aRules    int
	aDuration time.Duration
	aRate     float64 // flows/s; 0: aFactor × the sweep's loss-free rate
	aFactor   float64
}

// step is one run of one collector at one rate.
type step struct {
	Target   float64           `json:"target_flows_per_s"`
	Achieved float64           `json:"achieved_flows_per_s"`
	Sent     uint64            `json:"sent_flows"`
	Counted  uint64            `json:"counted_flows"`
	Loss     float64           `json:"loss"`
	CPUPct   float64           `json:"cpu_pct"`
	CPUS     float64           `json:"cpu_s"`
	ActiveS  float64           `json:"active_s"`
	LagS     float64           `json:"lag_s"`
	Behind   bool              `json:"behind,omitempty"`
	HWMKiB   uint64            `json:"peak_rss_kib"`
	SendS    float64           `json:"send_s"`
	SettleS  float64           `json:"settle_s"`
	Diag     map[string]uint64 `json:"diag,omitempty"`
	Exact    *exactness        `json:"exact,omitempty"`
	// Tuples is how often the step's flows repeated their tuple within a
	// minute, from the generator's truth.
	Tuples    *tupleStats `json:"tuples,omitempty"`
	Pass      bool        `json:"pass"`
	GenBound  bool        `json:"generator_bound"`
	Confirm   bool        `json:"confirm,omitempty"`
	Refine    bool        `json:"refine,omitempty"`
	Err       string      `json:"error,omitempty"`
	GenOutput string      `json:"generator,omitempty"`
}

type exactness struct {
	Pass     bool     `json:"pass"`
	Problems []string `json:"problems,omitempty"`
}

// series is the sweep of one (format, collector).
type series struct {
	Format string  `json:"format"`
	Kind   string  `json:"collector"`
	Label  string  `json:"label"`
	Steps  []*step `json:"steps"`
	Best   *step   `json:"best,omitempty"`
	// Workload is the generator's traffic model, from its first truth.
	Workload *workload `json:"workload,omitempty"`
	// Bound says why Best is only a lower bound: "generator-bound",
	// "rate cap", "time budget", "step limit"; empty when a higher rate lost flows.
	Bound string `json:"bound,omitempty"`
	NA    string `json:"not_run,omitempty"`
	// Precise: refined by bisection until the last pass and the failure
	// are within o.refineTo (the enrichment pair, whose difference is
	// smaller than the sweep's step).
	Precise bool   `json:"precise,omitempty"`
	Note    string `json:"note,omitempty"`
}

func main() {
	o := &opts{}
	var formats, collectors, scaling, enrichment, mdPath, jsonPath string
	flag.StringVar(&o.bin, "bin", "bin", "directory holding tmsd, goflow2 and flowgen")
	flag.StringVar(&formats, "formats", "v5,v9,ipfix,sflow", "formats")
	flag.StringVar(&collectors, "collectors", "tmsd,goflow2,nfcapd", "collectors (nfcapd: sfcapd or -sflow-peer for sFlow)")
	flag.StringVar(&scaling, "scaling", "v9", "formats for which tmsd also runs with GOMAXPROCS=1 on one CPU (empty: none)")
	flag.StringVar(&enrichment, "enrichment", "v9,ipfix", "formats for which tmsd also runs with its GeoIP databases off, to measure enrichment's cost (empty: none)")
	flag.StringVar(&o.sflowPeer, "sflow-peer", "sfacctd", "sFlow collector in nfcapd's place when sfcapd is missing: sfacctd or none")
	flag.Float64Var(&o.startRate, "start", 100_000, "first rate, flows/s")
	flag.Float64Var(&o.factor, "factor", 1.5, "rate multiplier between steps")
	flag.Float64Var(&o.maxRate, "max-rate", 20_000_000, "highest rate tried, flows/s")
	flag.Float64Var(&o.minRate, "min-rate", 10_000, "lowest rate tried when the first step already loses")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "sending time per step")
	flag.Float64Var(&o.lossMax, "loss", 0.001, "loss fraction above which a step fails")
	flag.DurationVar(&o.maxLag, "max-lag", time.Second, "a step also fails when the collector is still working this long after sending stopped (a backlog: it did not keep up); 0: loss only")
	flag.Float64Var(&o.genBound, "gen-bound", 0.95, "a step whose achieved rate is below this fraction of its target is generator-bound")
	flag.IntVar(&o.maxSteps, "max-steps", 16, "steps per series at most")
	flag.BoolVar(&o.confirm, "confirm", true, "repeat a failing step once before believing it")
	flag.BoolVar(&o.refine, "refine", true, "after the first failure, try the geometric mean of the last pass and the failure")
	flag.Float64Var(&o.refineTo, "refine-to", 1.05, "the enrichment pair's series (-enrichment) bisect until the failure is within this factor of the pass")
	flag.IntVar(&o.refineMax, "refine-max", 3, "most bisection steps of a series refined to -refine-to")
	flag.DurationVar(&o.stable, "stable", time.Second, "a count is settled when it has not changed for this long")
	flag.DurationVar(&o.settleMax, "settle-max", 10*time.Second, "longest wait for a count to settle after sending")
	flag.DurationVar(&o.budget, "budget", 24*time.Minute, "time budget of the whole sweep")
	flag.StringVar(&o.genCPU, "gen-cpu", "1", "CPU list the generator is pinned to with taskset (empty: not pinned)")
	flag.StringVar(&o.oneCPU, "one-cpu", "0", "CPU of tmsd-1core")
	flag.IntVar(&o.rcvbuf, "rcvbuf", 33554432, "socket receive buffer for tmsd (receive_buffer), nfcapd (-B), sfacctd (sfacctd_pipe_size)")
	flag.StringVar(&o.tmsdExtra, "tmsd-yaml", "", "more tmsd configuration for every start, YAML lines (e.g. -tmsd-yaml 'aggregate: {shards: 4}')")
	flag.IntVar(&o.tmsdSockets, "tmsd-sockets", 2, "tmsd listener.sockets")
	flag.IntVar(&o.goflowSockets, "goflow2-sockets", 2, "goflow2 sockets per listen URL (count=)")
	flag.IntVar(&o.exporters, "exporters", 4, "generator exporters")
	flag.IntVar(&o.seed, "seed", 1, "generator seed")
	flag.StringVar(&o.profile, "profile", "backbone", "generator workload (flowgen -profile): backbone, or pool for flowgen's workload before it")
	var genFlags string
	flag.StringVar(&genFlags, "gen-flags", "", "more flowgen flags for every run, space-separated (e.g. -gen-flags=-tuple-repeat=11)")
	flag.DurationVar(&o.genMaxDuration, "gen-max", 3*time.Second, "before the sweep, run the generator alone flat out for this long per format, to report its own maximum (0: not)")
	flag.StringVar(&o.work, "work", "", "work directory (default: a new one under $TMPDIR)")
	flag.BoolVar(&o.keep, "keep", false, "keep the per-step directories")
	flag.BoolVar(&o.quick, "quick", false, "short sweep: -duration 1s -start 200000 -factor 2 -confirm=false -refine=false -stable 600ms -budget 200s -alert-load=false (flags given explicitly win)")
	var card, qModes string
	flag.StringVar(&card, "cardinality", "1000000,10000000", "distinct sources per run of the cardinality check (flowgen -spread), after the sweep; empty: none")
	flag.Float64Var(&o.cardRate, "card-rate", 1_000_000, "flows/s of the cardinality runs")
	flag.DurationVar(&o.cardDuration, "card-duration", 130*time.Second, "sending time of each cardinality run (over two minutes: at least one whole minute)")
	flag.StringVar(&o.cardFormat, "card-format", "v5", "format of the cardinality runs")
	flag.StringVar(&o.cardMaxMemory, "card-max-memory", "512MiB", "tmsd aggregate.max_memory in the cardinality runs")
	flag.StringVar(&o.cardMemoryLimit, "card-memory-limit", "1GiB", "tmsd memory_limit (the cap RSS must stay under) in the cardinality runs")
	flag.BoolVar(&o.qload, "query-load", true, "after the cardinality runs, time 24-hour tops on a seeded day while flowgen sends (issue 3 target 5)")
	flag.Float64Var(&o.qRate, "query-rate", 1_000_000, "flows/s sent while the query-load run queries")
	flag.DurationVar(&o.qDuration, "query-duration", 60*time.Second, "sending (and querying) time of the query-load run")
	flag.StringVar(&o.qFormat, "query-format", "v9", "format of the query-load run")
	flag.BoolVar(&o.aload, "alert-load", true, "after the query-load runs, run tmsd at its loss-free rate of -alert-format without alert rules and with -alert-rules (issue 13)")
	flag.StringVar(&o.aFormat, "alert-format", "v9", "format of the alert-load run (needs a tmsd sweep of it)")
	flag.IntVar(&o.aRules, "alert-rules", 1000, "alert rules of the alert-load run")
	flag.Float64Var(&o.aRate, "alert-rate", 0, "flows/s of the alert-load run (0: -alert-factor × tmsd's loss-free rate of -alert-format in the sweep)")
	flag.Float64Var(&o.aFactor, "alert-factor", 0.5, "the alert-load run's rate as a fraction of the sweep's loss-free rate: the sweep's 5 s steps pass rates that minutes of sending do not sustain")
	flag.DurationVar(&o.aDuration, "alert-duration", 150*time.Second, "sending time of each alert-load run (over 95 s: a minute closes and is evaluated)")
	flag.DurationVar(&o.qInterval, "query-interval", 100*time.Millisecond, "the query-load run starts a query at most this often (one at a time)")
	flag.IntVar(&o.qBaseline, "query-baseline", 10, "queries per dimension (srcip, app) before sending, the baseline")
	flag.IntVar(&o.qK, "query-k", 1000, "srcip keys per seeded minute")
	flag.StringVar(&qModes, "query-tiers", "hours,minutes", "query-load runs, in order: hours (tmsd rolls the seeded day up first, so answers read whole hours from the hour tier: tmsd's own path) and/or minutes (rollups held back: answers read the 1,440 minute tables, the case of rollups lagging)")
	flag.StringVar(&mdPath, "md", "", "also write the Markdown report here")
	flag.StringVar(&jsonPath, "json", "", "write every step as JSON here")
	flag.Parse()
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{"duration": "1s", "start": "200000", "factor": "2", "confirm": "false", "gen-max": "2s",
			"refine": "false", "stable": "600ms", "budget": "200s", "settle-max": "6s",
			"cardinality": "1000000", "card-duration": "20s", "query-duration": "15s",
			"alert-load": "false"} { // its runs need minutes to close: not quick
			if !set[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	o.formats, o.collectors, o.scaling = splitList(formats), splitList(collectors), splitList(scaling)
	o.enrichment = splitList(enrichment)
	o.genFlags = strings.Fields(genFlags)
	for _, m := range splitList(qModes) {
		if m != "hours" && m != "minutes" {
			fmt.Fprintf(os.Stderr, "e2e: -query-tiers: %q is neither hours nor minutes\n", m)
			os.Exit(2)
		}
		o.qRollup = append(o.qRollup, m == "hours")
	}
	for _, c := range splitList(card) {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: -cardinality:", err)
			os.Exit(2)
		}
		o.card = append(o.card, n)
	}
	if err := run(o, mdPath, jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func have(name string) bool { _, err := exec.LookPath(name); return err == nil }

func run(o *opts, mdPath, jsonPath string) error {
	if o.qload && (o.qDuration <= 0 || o.qDuration > 10*time.Minute || o.qInterval <= 0 || o.qBaseline < 0 || o.qK < 2 || o.qRate <= 0) {
		return errors.New("need 0 < -query-duration <= 10m, -query-interval > 0, -query-baseline >= 0, -query-k >= 2, -query-rate > 0")
	}
	if o.factor <= 1.05 || o.startRate <= 0 || o.duration <= 0 || o.duration > 5*time.Minute {
		return errors.New("need -factor > 1.05, -start > 0, 0 < -duration <= 5m")
	}
	if abs, err := filepath.Abs(o.bin); err == nil {
		o.bin = abs // collectors run in their own directories
	}
	need := []string{"flowgen", "tmsd"}
	if len(o.formats) > 0 && slices.Contains(o.collectors, kGoflow2) {
		need = append(need, "goflow2") // a query-load or cardinality run alone does without it
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s missing in %s (bench/run.sh builds it)", b, o.bin)
		}
	}
	if o.genCPU != "" && !have("taskset") {
		fmt.Fprintln(os.Stderr, "e2e: taskset missing: the generator is not pinned")
		o.genCPU = ""
	}
	if o.work == "" {
		d, err := os.MkdirTemp("", "tmsd-bench-")
		if err != nil {
			return err
		}
		o.work = d
		if !o.keep {
			defer os.RemoveAll(d)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var all []*series
	for _, f := range o.formats {
		for _, c := range o.collectors {
			s := &series{Format: f, Kind: c, Label: c}
			if c == kNfcapd && f == "sflow" {
				switch {
				case have(kSfcapd):
					s.Kind, s.Label = kSfcapd, kSfcapd
				case o.sflowPeer == kSfacctd && have(kSfacctd):
					s.Kind, s.Label = kSfacctd, "sfacctd (pmacct)"
					s.Note = "nfdump has no sfcapd here; pmacct's sfacctd takes nfcapd's place for sFlow"
				default:
					s.NA = "nfdump has no sfcapd and no sFlow peer was chosen"
				}
			}
			if (s.Kind == kNfcapd || s.Kind == kSfcapd) && !have("nfdump") {
				s.NA = "nfdump not installed"
			}
			if !have(s.Kind) && s.Kind != kTmsd && s.Kind != kGoflow2 && s.NA == "" {
				s.NA = s.Kind + " not installed"
			}
			all = append(all, s)
		}
	}
	for _, f := range o.scaling {
		s := &series{Format: f, Kind: kTmsd1, Label: "tmsd GOMAXPROCS=1"}
		if !have("taskset") {
			s.NA = "taskset missing"
		}
		all = append(all, s)
	}

	for _, f := range o.enrichment {
		all = append(all, &series{Format: f, Kind: kTmsdPlain, Label: "tmsd, enrichment off", Precise: true})
		for _, s := range all {
			if s.Format == f && s.Kind == kTmsd {
				s.Precise = true
			}
		}
	}

	gens := o.genMaxRuns(ctx)
	began := time.Now()
	deadline := began.Add(o.budget)
	load0 := loadavg()
	left := 0
	for _, s := range all {
		if s.NA == "" {
			left++
		}
	}
	for _, s := range all {
		if s.NA != "" {
			fmt.Fprintf(os.Stderr, "== %s %s: n/a (%s)\n", s.Format, s.Label, s.NA)
			continue
		}
		if ctx.Err() != nil {
			s.NA = "interrupted"
			continue
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			s.NA = "time budget spent"
			continue
		}
		share := time.Duration(float64(remaining) * 1.5 / float64(left))
		left--
		o.sweep(ctx, s, time.Now().Add(min(share, remaining)))
	}
	elapsed := time.Since(began)
	cards := o.cardinality(ctx)
	var ql []*qloadRun
	for _, rollup := range o.qRollup {
		if r := o.queryLoad(ctx, rollup); r != nil {
			ql = append(ql, r)
		}
	}
	var al *aloadRun
	rate := o.aRate
	for _, s := range all {
		if rate == 0 && s.Format == o.aFormat && s.Kind == kTmsd && s.Best != nil {
			rate = o.aFactor * s.Best.Achieved
		}
	}
	al = o.alertLoad(ctx, rate)
	md := report(o, all, elapsed, load0, loadavg()) + genMaxReport(o, gens) + cardReport(o, cards)
	for _, r := range ql {
		md += qloadReport(o, r)
	}
	md += aloadReport(o, al)
	fmt.Print(md)
	if mdPath != "" {
		if err := os.WriteFile(mdPath, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if jsonPath != "" {
		b, _ := json.MarshalIndent(map[string]any{"series": all, "generator_alone": gens, "cardinality": cards, "query_load": ql, "alert_load": al}, "", " ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// sweep raises the rate of s by o.factor until a step loses more than
// o.lossMax (confirmed once if o.confirm), then tries one rate between the
// last pass and the failure (o.refine).
func (o *opts) sweep(ctx context.Context, s *series, deadline time.Time) {
	fmt.Fprintf(os.Stderr, "== %s %s (until %s)\n", s.Format, s.Label, deadline.Format("15:04:05"))
	do := func(rate float64) *step {
		st := o.runStep(ctx, s, rate)
		s.Steps = append(s.Steps, st)
		verdict := "pass"
		if !st.Pass {
			verdict = "FAIL"
		}
		if st.Err != "" {
			verdict = "ERROR " + st.Err
		}
		fmt.Fprintf(os.Stderr, "   %-5s %-16s target %10.0f achieved %10.0f sent %10d counted %10d loss %7.4f%% cpu %5.1f%% rss %6.1f MiB %s %s\n",
			s.Format, s.Label, st.Target, st.Achieved, st.Sent, st.Counted, st.Loss*100, st.CPUPct, float64(st.HWMKiB)/1024, verdict, diagCell(st.Diag))
		return st
	}
	// stopped says why no further step may start, if so.
	stopped := func() string {
		if ctx.Err() != nil {
			return "interrupted"
		}
		if !time.Now().Add(o.duration + 3*time.Second).Before(deadline) {
			return "time budget"
		}
		return ""
	}
	out := func() bool { return stopped() != "" }
	var fail *step
	rate := o.startRate
	for n := 0; ; n++ {
		if n >= o.maxSteps {
			s.Bound = "step limit"
			break
		}
		if rate > o.maxRate {
			s.Bound = "rate cap"
			break
		}
		if why := stopped(); why != "" {
			s.Bound = why
			break
		}
		st := do(rate)
		if st.Err != "" && !out() {
			st = do(rate) // one retry
		}
		if st.Err != "" {
			s.Note = strings.TrimSpace(s.Note + " error at " + fmtRate(rate) + " flows/s: " + st.Err)
			s.Bound = "stopped by an error"
			break
		}
		if !st.Pass && o.confirm && !out() {
			st2 := do(rate)
			st2.Confirm = true
			if st2.Err == "" && st2.Pass {
				st = st2
			}
		}
		if st.Pass {
			prev := s.Best
			if prev == nil || st.Achieved > prev.Achieved {
				s.Best = st
			}
			// The generator fell short of the target: go on while its
			// achieved rate still rises, stop when it no longer does.
			if st.GenBound && prev != nil && st.Achieved < prev.Achieved*1.05 {
				s.Bound = "generator-bound"
				break
			}
			rate *= o.factor
			continue
		}
		fail = st
		break
	}
	switch {
	case fail != nil && s.Best != nil && o.refine && s.Precise:
		// Bisection, geometric, between the best pass and the lowest failure.
		lo, hi := s.Best.Achieved, fail.Achieved
		for n := 0; n < o.refineMax && hi/lo > o.refineTo && !out(); n++ {
			st := do(math.Sqrt(lo * hi))
			st.Refine = true
			switch {
			case st.Err != "":
				n = o.refineMax
			case st.Pass:
				if st.Achieved > s.Best.Achieved {
					s.Best = st
				}
				lo = max(lo, st.Achieved)
			default:
				hi = max(lo, min(hi, st.Achieved))
			}
		}
	case fail != nil && s.Best != nil && o.refine && fail.Achieved/s.Best.Achieved > 1.2 && !out():
		st := do(math.Sqrt(fail.Achieved * s.Best.Achieved))
		st.Refine = true
		if st.Err == "" && st.Pass && st.Achieved > s.Best.Achieved {
			s.Best = st
		}
	case fail != nil && s.Best == nil:
		// Even the first rate lost flows: go down.
		for r := o.startRate / o.factor; r >= o.minRate && !out(); r /= o.factor {
			st := do(r)
			if st.Err == "" && st.Pass {
				s.Best = st
				break
			}
		}
	}
}

// truth is flowgen's -truth JSON (only what the benchmark reads).
type truth struct {
	Workload *workload `json:"workload"`
	Sent     struct {
		Datagrams uint64 `json:"datagrams"`
		Flows     uint64 `json:"flows"`
	} `json:"sent"`
	ElapsedS float64             `json:"elapsed_s"`
	Rate     float64             `json:"rate_flows_per_s"`
	Total    amounts             `json:"total"`
	Tuples   *tupleStats         `json:"tuples"`
	Top      map[string][]topRow `json:"top"`
	Spread   *struct {
		amounts
	} `json:"spread"`

	cpuS float64 // flowgen's user+system CPU seconds (not in the file)
}

// workload is the truth's description of the traffic model (flowgen.Workload).
type workload struct {
	Profile     string  `json:"profile"`
	Sources     int     `json:"sources"`
	DstHosts    int     `json:"destinations"`
	Zipf        float64 `json:"zipf"`
	Services    int     `json:"services"`
	Interfaces  int     `json:"interfaces"`
	Exporters   int     `json:"exporters"`
	Pool        int     `json:"pool"`
	Templates   string  `json:"templates"`
	TupleRepeat int     `json:"tuple_repeat"`
}

// tupleStats is the truth's flowgen.TupleStats.
type tupleStats struct {
	Minutes       int     `json:"minutes"`
	Distinct      uint64  `json:"distinct"`
	FlowsPerTuple float64 `json:"flows_per_tuple"`
}

func (o *opts) runStep(ctx context.Context, s *series, rate float64) (st *step) {
	st = &step{Target: rate}
	in, err := o.start(ctx, s.Kind, s.Format, o.work)
	if err != nil {
		st.Err = err.Error()
		return st
	}
	defer func() {
		in.kill()
		if !o.keep {
			os.RemoveAll(in.dir)
		}
	}()
	pid := in.pid()
	waitQuiet(pid, 3*time.Second) // start-up work is not the step's
	cpu0 := treeCPU(pid)

	truthPath := filepath.Join(in.dir, "truth.json")
	count := uint64(math.Ceil(rate * o.duration.Seconds()))
	tr, out, err := o.generate(ctx, s.Format, in.target(), rate, count, o.duration, truthPath)
	st.GenOutput = out
	if err != nil {
		st.Err = err.Error()
		return st
	}
	tSent := time.Now()
	st.Sent, st.SendS, st.Achieved = tr.Sent.Flows, tr.ElapsedS, tr.Rate
	st.Tuples = tr.Tuples
	if s.Workload == nil {
		s.Workload = tr.Workload
	}
	st.GenBound = tr.Rate < o.genBound*rate

	// Settle: until the count (or, for the collectors counted afterwards,
	// the CPU time) stops rising, bounded by settleMax.
	settleEnd := tSent.Add(o.settleMax)
	active := tSent // when the collector was last seen working
	if in.live() {
		last, lastChange := uint64(0), time.Now()
		for time.Now().Before(settleEnd) && in.alive() {
			c, err := in.count()
			if err == nil && c != last {
				last, lastChange = c, time.Now()
				active = lastChange
			}
			if err == nil && c >= tr.Sent.Flows && time.Since(lastChange) >= 200*time.Millisecond {
				break
			}
			if time.Since(lastChange) >= o.stable {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	} else {
		prev := treeCPU(pid)
		for quiet := 0; time.Now().Before(settleEnd) && in.alive() && quiet < 2; {
			time.Sleep(250 * time.Millisecond)
			c := treeCPU(pid)
			if c-prev <= 1 {
				quiet++
			} else {
				quiet = 0
				active = time.Now()
			}
			prev = c
		}
	}
	st.SettleS = time.Since(tSent).Seconds()
	if !in.alive() {
		st.Err = fmt.Sprintf("%s exited during the step: %s", s.Kind, in.logTail())
		return st
	}
	cpu1 := treeCPU(pid)
	st.CPUS = float64(cpu1-cpu0) / clkTck
	st.LagS = max(0, active.Sub(tSent).Seconds())
	st.ActiveS = tr.ElapsedS + st.LagS
	if st.ActiveS > 0 {
		st.CPUPct = st.CPUS / st.ActiveS * 100
	}
	st.HWMKiB = treeHWM(pid)
	if in.live() {
		c, err := in.count()
		if err != nil {
			st.Err = fmt.Sprintf("count: %v (alive %v; log: %s)", err, in.alive(), in.logTail())
			return st
		}
		st.Counted = c
		st.Diag = in.diag()
		if in.isTmsd() {
			st.Exact = checkExact(in, tr)
		}
	}
	plugins := tree(pid)[1:]
	if err := in.stop(); err != nil {
		st.Err = err.Error()
		return st
	}
	if !in.live() {
		c, err := in.finalCount(ctx, plugins)
		if err != nil {
			st.Err = "count: " + err.Error()
			return st
		}
		st.Counted = c
	}
	if st.Sent == 0 {
		st.Err = "the generator sent nothing"
		return st
	}
	st.Loss = (float64(st.Sent) - float64(st.Counted)) / float64(st.Sent)
	st.Behind = o.maxLag > 0 && st.LagS > o.maxLag.Seconds()
	st.Pass = st.Loss <= o.lossMax && !st.Behind
	return st
}

// waitQuiet waits, at most max, until pid's process tree has used at most
// one clock tick in each of two consecutive 200 ms intervals.
func waitQuiet(pid int, max time.Duration) {
	prev := treeCPU(pid)
	for quiet, end := 0, time.Now().Add(max); quiet < 2 && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond)
		c := treeCPU(pid)
		if c-prev <= 1 {
			quiet++
		} else {
			quiet = 0
		}
		prev = c
	}
}

// generate runs flowgen once and reads its truth.
func (o *opts) generate(ctx context.Context, format, target string, rate float64, count uint64, d time.Duration, truthPath string, extra ...string) (*truth, string, error) {
	args := []string{filepath.Join(o.bin, "flowgen"), "-format", format, "-target", target,
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-count", strconv.FormatUint(count, 10),
		"-duration", d.String(), "-exporters", strconv.Itoa(o.exporters), "-seed", strconv.Itoa(o.seed),
		"-profile", o.profile, "-truth", truthPath}
	args = append(append(args, o.genFlags...), extra...)
	if o.genCPU != "" {
		args = append([]string{"taskset", "-c", o.genCPU}, args...)
	}
	gctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(gctx, args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	b, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(b))
	if err != nil {
		return nil, out, fmt.Errorf("flowgen: %v: %s", err, out)
	}
	var tr truth
	b, err = os.ReadFile(truthPath)
	if err == nil {
		err = json.Unmarshal(b, &tr)
	}
	if err != nil {
		return nil, out, fmt.Errorf("truth: %w", err)
	}
	// taskset execs flowgen: the process's CPU time is flowgen's.
	tr.cpuS = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return &tr, out, nil
}

// checkExact compares tmsd's totals and top-10 srcip and dstport with the truth.
func checkExact(in *instance, tr *truth) *exactness {
	e := &exactness{}
	bad := func(f string, a ...any) {
		if len(e.Problems) < 6 {
			e.Problems = append(e.Problems, fmt.Sprintf(f, a...))
		}
	}
	t, err := in.top("exporter", 10)
	if err != nil {
		bad("total: %v", err)
	} else if t.Total != tr.Total {
		bad("total %+v, truth %+v", t.Total, tr.Total)
	}
	for _, dim := range []string{"srcip", "dstport"} {
		want := tr.Top[dim]
		if len(want) > 10 {
			want = want[:10]
		}
		if len(want) == 0 {
			bad("%s: the truth has no top list", dim)
			continue
		}
		got, err := in.top(dim, 10)
		if err != nil {
			bad("%s: %v", dim, err)
			continue
		}
		rows := slices.Clone(got.Rows)
		slices.SortFunc(rows, func(a, b topRow) int {
			return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Key, b.Key))
		})
		if len(rows) != len(want) {
			bad("%s: %d rows, truth %d", dim, len(rows), len(want))
			continue
		}
		// A step whose flows straddle a minute tmsd has closed and stored
		// (cut to top_k, as every stored minute is) gets a bounded answer:
		// it passes when its rows are the truth's all the same, or the
		// truth's bytes are within the bounds tmsd gives.
		for i := range want {
			g, w := rows[i], want[i]
			switch {
			case g.Key == w.Key && g.amounts == w.amounts:
			case got.Exact:
				bad("%s #%d: tmsd %s %+v, truth %s %+v", dim, i+1, g.Key, g.amounts, w.Key, w.amounts)
			default:
				if at := slices.IndexFunc(rows, func(r topRow) bool { return r.Key == w.Key }); at < 0 || rows[at].Bytes > w.Bytes || rows[at].Bytes+rows[at].Error < w.Bytes {
					bad("%s #%d: tmsd says the answer is not exact, and %s is not within its bounds (truth %+v)", dim, i+1, w.Key, w.amounts)
				}
			}
		}
	}
	e.Pass = len(e.Problems) == 0
	return e
}
