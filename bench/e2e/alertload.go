package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The alert-load run (issue 13, acceptance 3): does evaluating 1,000 alert
// rules each minute take anything from ingest? tmsd runs twice at the same
// rate, half the sweep's loss-free rate for the format (a trial at the full
// rate for 150 s lost 16.1 % without rules and 4.9 % with them: the 5 s
// steps pass a rate minutes of sending do not sustain, and at that edge the
// losses are noise), for long enough that
// closed minutes are evaluated while flows arrive (aggregate.grace is cut to
// 5 s in both runs so that a minute closes, and is evaluated, 95 s after it
// starts): once without rules, once with 1,000. Each run reports its loss,
// its CPU per flow, and from /metrics the evaluations made and the last one's
// duration, so the figures show the evaluations happened under the load.

type aloadRun struct {
	Format    string       `json:"format"`
	Rate      float64      `json:"rate"`
	DurationS float64      `json:"duration_s"`
	Sides     []*aloadSide `json:"sides"`
	Err       string       `json:"err,omitempty"`
}

type aloadSide struct {
	Rules       int     `json:"rules"`
	Sent        uint64  `json:"sent"`
	Counted     uint64  `json:"counted"`
	Achieved    float64 `json:"achieved"`
	Loss        float64 `json:"loss"`
	CPUS        float64 `json:"cpu_s"`
	Evaluations float64 `json:"evaluations"`
	EvalSeconds float64 `json:"eval_seconds"` // the last minute's
	Firing      float64 `json:"firing"`
	Err         string  `json:"err,omitempty"`
}

// alertRules is n rules over flowgen's backbone workload, in YAML: a tenth
// any-key over dstip (the whole network, each exporter, some interfaces),
// seven tenths thresholds on one key or a scope's total, a fifth baselines
// (whose history, a fresh store, is too short: they read the hour tier and
// say so, as a new install's do).
func alertRules(n, exporters int) string {
	var b strings.Builder
	b.WriteString("alerts:\n  rules:\n")
	exp := func(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i%exporters) }
	iface := func(i int) string {
		dir := "in"
		if i%2 == 1 {
			dir = "out"
		}
		return fmt.Sprintf("if=%s:%d&dir=%s", exp(i/2), 1+(i/2/exporters)%48, dir)
	}
	ports := []string{"443/tcp", "80/tcp", "443/udp", "53/udp", "22/tcp", "25/tcp", "123/udp", "3389/tcp", "8080/tcp", "993/tcp"}
	for i := range n {
		var scope, dim, key, cond string
		switch k := i % 10; {
		case k == 0: // any key
			switch j := i / 10; {
			case j%5 == 0:
				scope = ""
			case j%5 == 1:
				scope = "exporter=" + exp(j)
			default:
				scope = iface(j)
			}
			dim, key, cond = "dstip", `"*"`, "threshold: 5G"
		case k <= 2: // baselines
			scope, dim, key = iface(i), "dstport", ports[i%len(ports)]
			cond = "baseline: {weeks: 4, ratio: 3, min_volume: 1M}"
		case k <= 5: // interface totals
			scope, cond = iface(i), "threshold: 5G"
		default: // one key
			scope, dim, key, cond = "exporter="+exp(i), "dstport", ports[i%len(ports)], "threshold: 5G"
			if k == 9 {
				scope, dim, key = iface(i), "app", "https"
			}
		}
		fmt.Fprintf(&b, "    - {name: r%04d, scope: %q, dim: %q, key: %s, %s}\n", i, scope, dim, cmpOr(key, `""`), cond)
	}
	return b.String()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// alertLoad runs the check if -alert-load, at rate (0: not run).
func (o *opts) alertLoad(ctx context.Context, rate float64) *aloadRun {
	if !o.aload || ctx.Err() != nil {
		return nil
	}
	r := &aloadRun{Format: o.aFormat, Rate: rate, DurationS: o.aDuration.Seconds()}
	if rate <= 0 {
		r.Err = "no loss-free rate of tmsd for " + o.aFormat + " in this run"
		return r
	}
	fmt.Fprintf(os.Stderr, "== alert load: %s flows/s of %s for %s, without rules and with %d\n", fmtRate(rate), r.Format, o.aDuration, o.aRules)
	for _, n := range []int{0, o.aRules} {
		s := o.aloadSide(ctx, r, n)
		r.Sides = append(r.Sides, s)
		fmt.Fprintf(os.Stderr, "   rules %4d: sent %d counted %d loss %.4f%% cpu %.1f s evaluations %.0f last %.1f ms firing %.0f %s\n",
			n, s.Sent, s.Counted, s.Loss*100, s.CPUS, s.Evaluations, s.EvalSeconds*1000, s.Firing, s.Err)
	}
	return r
}

func (o *opts) aloadSide(ctx context.Context, r *aloadRun, rules int) *aloadSide {
	s := &aloadSide{Rules: rules}
	dir, err := os.MkdirTemp(o.work, "aload-")
	if err != nil {
		s.Err = err.Error()
		return s
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	o.tmsdYAML = "aggregate: {grace: 5s}\n"
	if rules > 0 {
		o.tmsdYAML += alertRules(rules, o.exporters)
	}
	defer func() { o.tmsdYAML = "" }()
	in, err := o.start(ctx, kTmsd, r.Format, dir)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	defer in.kill()
	pid := in.pid()
	waitQuiet(pid, 3*time.Second)
	cpu0 := treeCPU(pid)
	truthPath := filepath.Join(dir, "truth.json")
	count := uint64(math.Ceil(r.Rate * o.aDuration.Seconds()))
	tr, _, err := o.generate(ctx, r.Format, in.target(), r.Rate, count, o.aDuration, truthPath)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	s.Sent, s.Achieved = tr.Sent.Flows, tr.Rate
	for last, changed, end := uint64(0), time.Now(), time.Now().Add(o.settleMax); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := in.count()
		if err == nil && c != last {
			last, changed = c, time.Now()
		}
		if err == nil && (c >= s.Sent || time.Since(changed) >= o.stable) {
			break
		}
	}
	s.CPUS = float64(treeCPU(pid)-cpu0) / clkTck
	if s.Counted, err = in.count(); err != nil {
		s.Err = "count: " + err.Error()
		return s
	}
	s.Loss = (float64(s.Sent) - float64(s.Counted)) / float64(max(s.Sent, 1))
	if b, err := in.get("/metrics"); err == nil {
		s.Evaluations = promSum(string(b), "tmsd_alerts_evaluations_total", nil)
		s.EvalSeconds = promSum(string(b), "tmsd_alerts_evaluation_seconds", nil)
		s.Firing = promSum(string(b), "tmsd_alerts_firing", nil)
	}
	return s
}

func aloadReport(o *opts, r *aloadRun) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("\nAlert rules under ingest (issue 13: 1,000 rules evaluated each minute with no effect on ingest): tmsd alone, %s flows/s of %s "+
		"(-alert-factor %.2f × its loss-free rate in the sweep above, or -alert-rate: the sweep's 5 s steps pass rates that minutes of "+
		"sending do not sustain) for %s, twice: without rules, then with %d (a tenth any-key over `dstip`, seven tenths "+
		"thresholds on a key or an interface's total, a fifth baselines; `bench/e2e/alertload.go`). `aggregate.grace: 5s` in both, so that "+
		"the minutes close, and are evaluated, while flows arrive; the evaluations and the last one's time are tmsd's own metrics at the end.\n\n",
		fmtRate(r.Rate), r.Format, o.aFactor, time.Duration(r.DurationS*float64(time.Second)), o.aRules)
	if r.Err != "" {
		p("Error: %s\n\n", r.Err)
		return b.String()
	}
	p("| Rules | Sent | Counted | Loss | Achieved flows/s | CPU s | Flows per CPU-second | Minutes evaluated | Last evaluation ms | Firing |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range r.Sides {
		per := "—"
		if s.CPUS > 0 {
			per = fmtRate(float64(s.Counted) / s.CPUS)
		}
		p("| %d | %d | %d | %.3f%% | %s | %.1f | %s | %.0f | %.1f | %.0f |", s.Rules, s.Sent, s.Counted, s.Loss*100, fmtRate(s.Achieved), s.CPUS, per,
			s.Evaluations, s.EvalSeconds*1000, s.Firing)
		if s.Err != "" {
			p(" error: %s", s.Err)
		}
		p("\n")
	}
	return b.String()
}
