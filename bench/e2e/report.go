package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fmtRate formats flows/s with thousands separators.
func fmtRate(r float64) string {
	s := strconv.FormatFloat(r, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func maxCell(s *series) string {
	switch {
	case s == nil:
		return "n/a"
	case s.NA != "":
		return "n/a (" + s.NA + ")"
	case s.Best == nil && len(s.Steps) == 0:
		return "not measured"
	case s.Best == nil:
		lo := s.Steps[0].Target
		for _, st := range s.Steps {
			lo = min(lo, st.Target)
		}
		if last := s.Steps[len(s.Steps)-1]; last.Err != "" {
			return "error (see notes)"
		}
		return "< " + fmtRate(lo) + " (lost flows at every rate tried)"
	case s.Bound != "":
		return "≥ " + fmtRate(s.Best.Achieved) + " (" + s.Bound + ")"
	}
	return fmtRate(s.Best.Achieved)
}

// ratio is a's best rate over b's, marked when either is only a lower bound.
func ratio(a, b *series) string {
	if a == nil || b == nil || a.Best == nil || b.Best == nil || b.Best.Achieved == 0 {
		return "n/a"
	}
	if a == b {
		return "—"
	}
	r := a.Best.Achieved / b.Best.Achieved
	switch al, bl := a.Bound != "", b.Bound != ""; {
	case al && bl:
		return fmt.Sprintf("~%.2f× (both lower bounds)", r)
	case al:
		return fmt.Sprintf("≥ %.2f×", r)
	case bl:
		return fmt.Sprintf("≤ %.2f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func exactCell(s *series) string {
	if s.NA != "" || !strings.HasPrefix(s.Kind, "tmsd") {
		return "—"
	}
	if s.Best == nil || s.Best.Exact == nil {
		return "not checked"
	}
	var best float64
	for _, st := range s.Steps {
		if st.Exact != nil && st.Exact.Pass {
			best = max(best, st.Achieved)
		}
	}
	if s.Best.Exact.Pass {
		return "pass"
	}
	c := "FAIL"
	if lost := int64(s.Best.Sent) - int64(s.Best.Counted); lost > 0 {
		c += fmt.Sprintf(" (%d flows lost, within the loss threshold)", lost)
	} else if len(s.Best.Exact.Problems) > 0 {
		c += ": " + s.Best.Exact.Problems[0]
	}
	if best > 0 {
		c += "; exact up to " + fmtRate(best) + " flows/s"
	}
	return c
}

func cpuCells(st *step) (cpu, perCPU, rss string) {
	if st == nil {
		return "—", "—", "—"
	}
	cpu = fmt.Sprintf("%.0f", st.CPUPct)
	perCPU = "—"
	if st.CPUS > 0 {
		perCPU = fmtRate(float64(st.Counted) / st.CPUS)
	}
	rss = fmt.Sprintf("%.0f", float64(st.HWMKiB)/1024)
	return
}

func diagCell(d map[string]uint64) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, d[k]))
	}
	return strings.Join(parts, " ")
}

func genFlagsText(o *opts) string {
	if len(o.genFlags) == 0 {
		return ""
	}
	return " " + strings.Join(o.genFlags, " ")
}

// workloadText describes the generator's traffic model in a sentence.
func workloadText(w *workload) string {
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s: sources Zipf (s=%g) over %s addresses", w.Profile, w.Zipf, fmtRate(float64(w.Sources)))
	if w.DstHosts > 0 {
		fmt.Fprintf(&b, ", destinations over %s others", fmtRate(float64(w.DstHosts)))
	} else {
		b.WriteString(", destinations from the same hosts")
	}
	fmt.Fprintf(&b, ", %d services (client ports 32768–60999 on the other side), %d interfaces a side, %d exporters, %s pre-built datagrams per exporter",
		w.Services, w.Interfaces, w.Exporters, fmtRate(float64(w.Pool)))
	switch {
	case w.TupleRepeat == 1:
		b.WriteString(", client ports rotated on every send (no tuple repeats until a datagram has been sent 28,232 times)")
	case w.TupleRepeat > 1:
		fmt.Fprintf(&b, ", client ports rotated every %d sends (each tuple sent %d times)", w.TupleRepeat, w.TupleRepeat)
	default:
		b.WriteString(", datagrams re-sent unchanged (each tuple repeats every time its datagram comes round)")
	}
	return b.String()
}

// workloadReport is the workload the sweep sent and, per format, how often
// its flows repeated their tuple within a minute.
func workloadReport(o *opts, all []*series) string {
	var (
		b       strings.Builder
		formats []string
		first   *workload
	)
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	for _, s := range all {
		if s.Workload != nil && first == nil {
			first = s.Workload
		}
		if !slices.Contains(formats, s.Format) {
			formats = append(formats, s.Format)
		}
	}
	if first == nil {
		return ""
	}
	p("Workload (from the generator's truth files): %s.\n\n", workloadText(first))
	p("| Format | v9/IPFIX templates | Flows per distinct tuple and minute, at tmsd's max loss-free step | Over every step of the format (all collectors) |\n")
	p("|---|---|---:|---:|\n")
	for _, f := range formats {
		var (
			tmpl     = "—"
			at       = "—"
			lo, hi   float64
			measured bool
		)
		for _, s := range all {
			if s.Format != f {
				continue
			}
			if s.Workload != nil && s.Workload.Templates != "" {
				tmpl = s.Workload.Templates
			}
			if s.Kind == kTmsd && s.Best != nil && s.Best.Tuples != nil {
				at = fmt.Sprintf("%.2f (%s flows/s, %s distinct tuples in %d minute(s))", s.Best.Tuples.FlowsPerTuple,
					fmtRate(s.Best.Achieved), fmtRate(float64(s.Best.Tuples.Distinct)), s.Best.Tuples.Minutes)
			}
			for _, st := range s.Steps {
				if st.Tuples == nil || st.Tuples.Distinct == 0 {
					continue
				}
				v := st.Tuples.FlowsPerTuple
				if !measured {
					lo, hi, measured = v, v, true
				}
				lo, hi = min(lo, v), max(hi, v)
			}
		}
		over := "—"
		if measured {
			over = fmt.Sprintf("%.2f–%.2f", lo, hi)
		}
		p("| %s | %s | %s | %s |\n", f, tmpl, at, over)
	}
	p("\nFlows per distinct tuple = flows sent / the sum over calendar minutes of the distinct (exporter, input and output interface, "+
		"source and destination address and port, protocol) tuples sent in the minute, computed by flowgen from what it sent: "+
		"1.00 means no flow shared its tuple with another of its minute, as in the real NetFlow and IPFIX exports of testdata/pcaps (1.00); "+
		"their sFlow samples repeat (11.4× unsampled, 2.4× sampled 1 in N: samples of the same flow; flowgen's sFlow default is the harder 1.00). A step sends for %s only: where tuples repeat (the pool profile), a whole minute "+
		"at the same rate repeats them up to %.0f× more.\n\n", o.duration, time.Minute.Seconds()/o.duration.Seconds())
	return b.String()
}

// report is the Markdown of a sweep.
func report(o *opts, all []*series, elapsed time.Duration, load0, load1 string) string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	find := func(format string, kinds ...string) *series {
		for _, s := range all {
			if s.Format == format && slices.Contains(kinds, s.Kind) {
				return s
			}
		}
		return nil
	}
	lag := ""
	if o.maxLag > 0 {
		lag = fmt.Sprintf(" and the collector has caught up within %s after sending stopped (else it is building a backlog, in memory or in its socket buffer, that a longer run would lose)", o.maxLag)
	}
	genPin := "not pinned"
	if o.genCPU != "" {
		genPin = "pinned to CPU " + o.genCPU + " (taskset)"
	}
	p("Sweep: first rate %s flows/s, ×%g per step, %s of sending per step (and at most rate × %s flows), "+
		"a step passes when loss ≤ %g%%%s; a failing step is repeated once: %v; one step between the last pass and the first failure: %v. "+
		"Generator: bin/flowgen -profile %s%s, %d exporters, seed %d, %s; it is the same binary and the same flags for every collector. "+
		"Collectors are unpinned (both CPUs, one shared with the generator), restarted with a fresh data directory for every step. "+
		"Sweep time %s; load average before %s, after %s.\n\n",
		fmtRate(o.startRate), o.factor, o.duration, o.duration, o.lossMax*100, lag, o.confirm, o.refine,
		o.profile, genFlagsText(o), o.exporters, o.seed, genPin, elapsed.Round(time.Second), load0, load1)
	b.WriteString(workloadReport(o, all))

	p("| Format | Collector | Max loss-free flows/s | Loss there | CPU %% | Flows per CPU-second | Peak RSS MiB | vs goflow2 | vs nfcapd (sFlow: sfacctd) | tmsd exact |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range all {
		if s.Kind == kTmsd1 || s.Kind == kTmsdPlain {
			continue
		}
		g := find(s.Format, kGoflow2)
		n := find(s.Format, kNfcapd, kSfcapd, kSfacctd)
		cpu, perCPU, rss := cpuCells(s.Best)
		loss := "—"
		if s.Best != nil {
			loss = fmt.Sprintf("%.3f%%", s.Best.Loss*100)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Format, s.Label, maxCell(s), loss, cpu, perCPU, rss,
			ratio(s, g), ratio(s, n), exactCell(s))
	}
	p("\nCPU %% = the collector's utime+stime (/proc/PID/stat, all threads; sfacctd: core and plugin processes) consumed from the start of sending " +
		"until it was last seen working (its count last rose; nfcapd and sfacctd: its CPU time last rose), over that time (200%% = both CPUs). " +
		"Flows per CPU-second = flows counted / those CPU seconds. Peak RSS = VmHWM (/proc/PID/status) at the end of that step. " +
		"Ratios compare the max loss-free rates of the same format; ≥/≤ mark lower bounds. " +
		"On loopback much of the kernel's UDP receive work runs in the sender's system calls, so it is charged to the generator, not to the collector.\n")

	var scal []*series
	for _, s := range all {
		if s.Kind == kTmsd1 {
			scal = append(scal, s)
		}
	}
	if len(scal) > 0 {
		p("\nScaling with cores (tmsd, GOMAXPROCS=1 pinned to CPU %s with the generator on CPU %s, vs the default: GOMAXPROCS=2, unpinned):\n\n", o.oneCPU, o.genCPU)
		p("| Format | tmsd | Max loss-free flows/s | CPU %% | Flows per CPU-second | Peak RSS MiB | 2 cores / 1 core |\n")
		p("|---|---|---:|---:|---:|---:|---:|\n")
		for _, s1 := range scal {
			s2 := find(s1.Format, kTmsd)
			for _, s := range []*series{s1, s2} {
				if s == nil {
					continue
				}
				cpu, perCPU, rss := cpuCells(s.Best)
				r := "—"
				if s == s2 {
					r = ratio(s2, s1)
				}
				label := "GOMAXPROCS=1, 1 CPU"
				if s == s2 {
					label = "GOMAXPROCS=2, 2 CPUs"
				}
				p("| %s | %s | %s | %s | %s | %s | %s |\n", s.Format, label, maxCell(s), cpu, perCPU, rss, r)
			}
		}
	}

	var plain []*series
	for _, s := range all {
		if s.Kind == kTmsdPlain {
			plain = append(plain, s)
		}
	}
	if len(plain) > 0 {
		p("\nEnrichment's cost (issue 12 target: ≤ 10%%): tmsd as above (countries and ASes of both ends from the embedded databases, applications, interface names) vs tmsd with `geoip: {embedded: false}`, same generator (its backbone hosts are in public address space, so every address is looked up):\n\n")
		p("| Format | tmsd | Max loss-free flows/s | CPU %% | Flows per CPU-second | Loss-free rate lost to enrichment | CPU per flow added, at each maximum | CPU per flow added, at the same rate |\n")
		p("|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, s0 := range plain {
			s1 := find(s0.Format, kTmsd)
			for _, s := range []*series{s0, s1} {
				if s == nil {
					continue
				}
				cpu, perCPU, _ := cpuCells(s.Best)
				cost, cpuCost, sameCost := "—", "—", "—"
				if s == s1 && s0.Best != nil {
					if a, b := sameRate(s0, s1); a != nil {
						per0, per1 := float64(a.Counted)/a.CPUS, float64(b.Counted)/b.CPUS
						sameCost = fmt.Sprintf("%.1f%% (%s flows/s)", (per0/per1-1)*100, fmtRate(a.Target))
					}
				}
				if s == s1 && s0.Best != nil && s1.Best != nil && s0.Best.Achieved > 0 {
					cost = fmt.Sprintf("%.1f%%", (1-s1.Best.Achieved/s0.Best.Achieved)*100)
					if s0.Best.CPUS > 0 && s1.Best.CPUS > 0 && s0.Best.Counted > 0 && s1.Best.Counted > 0 {
						per0, per1 := float64(s0.Best.Counted)/s0.Best.CPUS, float64(s1.Best.Counted)/s1.Best.CPUS
						cpuCost = fmt.Sprintf("%.1f%%", (per0/per1-1)*100)
					}
				}
				label := "enrichment off"
				if s == s1 {
					label = "enrichment on (default)"
				}
				p("| %s | %s | %s | %s | %s | %s | %s | %s |\n", s.Format, label, maxCell(s), cpu, perCPU, cost, cpuCost, sameCost)
			}
		}
	}

	p("\nHow each collector's flows were counted (the generator's truth file gives the flows sent, as accepted by the kernel):\n\n")
	p("- tmsd: `GET /api/v1/top?by=exporter&%s` → `total.flows` (end to end: visible in the API); also recorded: the sum of `flows` in `/api/v1/exporters` (decoded), "+
		"`tmsd_listener_socket_drops_total`, `tmsd_ring_dropped_total`. Exactness: `total` bytes/packets/flows and `top?by=srcip&n=10`, `top?by=dstport&n=10` equal the truth's.\n", tmsdAPIQry)
	for _, f := range o.formats {
		p("- goflow2 %s: `%s` from its `/metrics`\n", f, goflow2MetricDesc(f))
	}
	p("- nfcapd: stopped with SIGTERM, then `nfdump -R DIR -I` → `Flows:`\n")
	p("- sfacctd: print plugin, `aggregate: proto`, `sfacctd_renormalize: false`, CSV written on SIGINT; sum of `PACKETS` = flow samples (the generator sends sampling rate 1, one packet per sample)\n")
	p("- Socket receive buffer: tmsd `listener.receive_buffer`, nfcapd `-B` and sfacctd `sfacctd_pipe_size` all %d bytes; goflow2 v2.2.6 has no such option and gets the kernel default (net.core.rmem_default).\n", o.rcvbuf)
	p("- tmsd: `listener.sockets: %d`; goflow2: `count=%d` sockets per listen URL (SO_REUSEPORT), its default workers and queue.\n", o.tmsdSockets, o.goflowSockets)
	p("- goflow2 keeps templates per exporter address *and port* and decodes in parallel workers: at the start of every step (a new generator process, new source ports) " +
		"a few v9/IPFIX data datagrams can overtake their template and are rejected; they count as lost, and show as `template_not_found` in the per-step counters.\n")

	var notes []string
	for _, s := range all {
		if s.Note != "" {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", s.Format, s.Label, s.Note))
		}
		if s.Bound == "generator-bound" {
			notes = append(notes, fmt.Sprintf("- %s %s: the generator could not reach the next target rate (achieved %s of %s flows/s) without loss, so the collector's maximum was not found.",
				s.Format, s.Label, fmtRate(s.Best.Achieved), fmtRate(s.Best.Target)))
		}
	}
	if len(notes) > 0 {
		p("\nNotes:\n\n%s\n", strings.Join(notes, "\n"))
	}

	p("\n<details><summary>Every step</summary>\n\n")
	p("| Format | Collector | Target flows/s | Achieved | Sent | Counted | Loss | CPU %% | RSS MiB | Still working after send, s | Flows per tuple | Collector counters | Exact | |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, s := range all {
		for _, st := range s.Steps {
			ex := ""
			switch {
			case st.Exact == nil:
			case st.Exact.Pass:
				ex = "pass"
			case st.Counted < st.Sent:
				ex = fmt.Sprintf("fail (%d flows not counted)", st.Sent-st.Counted)
			default:
				ex = "fail: " + strings.Join(st.Exact.Problems[:min(2, len(st.Exact.Problems))], "; ")
			}
			var flags []string
			if st.Confirm {
				flags = append(flags, "repeat")
			}
			if st.Refine {
				flags = append(flags, "refine")
			}
			if st.GenBound {
				flags = append(flags, "generator-bound")
			}
			if st.Err != "" {
				flags = append(flags, "error: "+strings.ReplaceAll(st.Err, "\n", " "))
			} else if st.Pass {
				flags = append(flags, "pass")
			} else if st.Loss > o.lossMax {
				flags = append(flags, "FAIL (loss)")
			} else {
				flags = append(flags, "FAIL (behind: still working after sending stopped)")
			}
			perTuple := "—"
			if st.Tuples != nil && st.Tuples.Distinct > 0 {
				perTuple = fmt.Sprintf("%.2f", st.Tuples.FlowsPerTuple)
			}
			p("| %s | %s | %s | %s | %d | %d | %.4f%% | %.0f | %.0f | %.1f | %s | %s | %s | %s |\n", s.Format, s.Label, fmtRate(st.Target), fmtRate(st.Achieved),
				st.Sent, st.Counted, st.Loss*100, st.CPUPct, float64(st.HWMKiB)/1024, st.LagS, perTuple, diagCell(st.Diag),
				strings.ReplaceAll(ex, "|", "/"), strings.ReplaceAll(strings.Join(flags, ", "), "|", "/"))
		}
	}
	p("\n</details>\n")
	return b.String()
}

// sameRate is the passing steps of a and b at the highest target rate both
// passed: CPU per flow compared there is the cost of what differs, not of
// the rate (nil: none).
func sameRate(a, b *series) (*step, *step) {
	var sa, sb *step
	for _, x := range a.Steps {
		if !x.Pass || x.CPUS <= 0 || x.Counted == 0 || (sa != nil && x.Target <= sa.Target) {
			continue
		}
		for _, y := range b.Steps {
			if y.Pass && y.CPUS > 0 && y.Counted > 0 && y.Target == x.Target {
				sa, sb = x, y
			}
		}
	}
	return sa, sb
}
