package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// genMax is the generator's own flat-out rate for one format: flowgen
// -rate 0, pinned as in the sweep, to a socket nobody reads (the kernel
// drops what overflows it), so that the report shows how much headroom the
// generator has over the rates it is asked for.
type genMax struct {
	Format        string      `json:"format"`
	Achieved      float64     `json:"achieved_flows_per_s"`
	Sent          uint64      `json:"sent_flows"`
	CPUS          float64     `json:"cpu_s"`
	FlowsPerCPU   float64     `json:"flows_per_cpu_s"`
	Tuples        *tupleStats `json:"tuples,omitempty"`
	Err           string      `json:"error,omitempty"`
	DurationS     float64     `json:"duration_s"`
	GeneratorLine string      `json:"generator,omitempty"`
}

func (o *opts) genMaxRuns(ctx context.Context) []*genMax {
	if o.genMaxDuration <= 0 {
		return nil
	}
	var runs []*genMax
	for _, f := range o.formats {
		if ctx.Err() != nil {
			break
		}
		g := &genMax{Format: f, DurationS: o.genMaxDuration.Seconds()}
		fmt.Fprintf(os.Stderr, "== generator alone: %s flat out for %s\n", f, o.genMaxDuration)
		o.genMaxRun(ctx, g)
		runs = append(runs, g)
	}
	return runs
}

func (o *opts) genMaxRun(ctx context.Context, g *genMax) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		g.Err = err.Error()
		return
	}
	defer sink.Close()
	dir, err := os.MkdirTemp(o.work, "genmax-")
	if err != nil {
		g.Err = err.Error()
		return
	}
	defer os.RemoveAll(dir)
	tr, out, err := o.generate(ctx, g.Format, sink.LocalAddr().String(), 0, 0, o.genMaxDuration, filepath.Join(dir, "truth.json"))
	g.GeneratorLine = out
	if err != nil {
		g.Err = err.Error()
		return
	}
	g.Achieved, g.Sent, g.CPUS, g.Tuples = tr.Rate, tr.Sent.Flows, tr.cpuS, tr.Tuples
	if g.CPUS > 0 {
		g.FlowsPerCPU = float64(g.Sent) / g.CPUS
	}
}

func genMaxReport(o *opts, runs []*genMax) string {
	if len(runs) == 0 {
		return ""
	}
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	pin := "not pinned"
	if o.genCPU != "" {
		pin = "pinned to CPU " + o.genCPU
	}
	p("\nThe generator alone (`flowgen -rate 0 -duration %s -profile %s%s`, %s, to a loopback socket nobody reads; no collector running), before the sweep:\n\n",
		o.genMaxDuration, o.profile, genFlagsText(o), pin)
	p("| Format | Flat-out flows/s | Flows per CPU-second of flowgen | Flows per distinct tuple and minute |\n")
	p("|---|---:|---:|---:|\n")
	for _, g := range runs {
		if g.Err != "" {
			p("| %s | error: %s | | |\n", g.Format, strings.ReplaceAll(g.Err, "|", "/"))
			continue
		}
		tu := "—"
		if g.Tuples != nil && g.Tuples.Distinct > 0 {
			tu = fmt.Sprintf("%.2f", g.Tuples.FlowsPerTuple)
		}
		p("| %s | %s | %s | %s |\n", g.Format, fmtRate(g.Achieved), fmtRate(g.FlowsPerCPU), tu)
	}
	p("\nFlows per CPU-second = flows sent / flowgen's user+system CPU time, building its pools and computing the truth included; on loopback the kernel's " +
		"delivery of each datagram runs in the sender's system call, so this is the cost a collector on the same machine competes with.\n")
	return b.String()
}
