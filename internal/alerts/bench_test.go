package alerts

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/query"
	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// The benchmark's network: 40 Gbps over 8 exporters of 6 interfaces each,
// 108 scopes (the whole network, the exporters, the 48 interfaces in and
// out, tcp, udp and icmp). Each scope's minute has tables of the four
// dimensions the rules read (the aggregator writes 17: the others are not
// read), holding before the cut 10,000 destination and 5,000 source
// addresses, 200 applications and 500 ports. A table is cut as the
// aggregator cuts a minute, the union of the top_k heaviest keys by each
// metric with the threshold raised over the rest (some 1,700 dstip rows
// stored), and as the rollup cuts an hour (hour_top_k).
var benchDims = []struct {
	dim  topn.Dim
	keys int
}{{topn.DimDstIP, 10_000}, {topn.DimSrcIP, 5_000}, {topn.DimApp, 200}, {topn.DimDstPort, 500}}

const benchRate = 40 * G // the whole network's usual rate, bps

var (
	benchExporterShare = []float64{.25, .2, .15, .12, .1, .08, .06, .04}
	benchIfShare       = []float64{.35, .25, .15, .1, .1, .05}
	benchProtoShare    = map[string]float64{"tcp": .8, "udp": .17, "icmp": .03}
	benchWellKnown     = []string{"443/tcp", "80/tcp", "53/udp", "123/udp", "22/tcp", "25/tcp", "993/tcp", "3306/tcp", "5432/tcp", "6379/tcp",
		"8080/tcp", "8443/tcp", "1194/udp", "500/udp", "4500/udp", "3389/tcp", "389/tcp", "636/tcp", "445/tcp", "5060/udp"}
)

// benchScope is one scope of the network: its name as a rule writes it and
// its usual rate.
type benchScope struct {
	name string
	sc   topn.Scope
	bps  float64
}

// benchNet is the network's scopes and keys. A key's rank in a scope (its
// place in the heavy-tailed distribution of the scope's traffic) is fixed;
// each interval varies every key's share by ±30 %.
type benchNet struct {
	scopes []benchScope
	keys   [][]topn.Key // by benchDims index
	names  [][]string   // the keys as rules write them
	ranks  [][]int32    // by scope × len(benchDims) + dim index: key → rank
}

func exporterName(e int) string { return fmt.Sprintf("10.0.0.%d", e+1) }

func newBenchNet(tb testing.TB) *benchNet {
	n := &benchNet{}
	add := func(name string, bps float64) {
		sc, err := ParseScope(name)
		require.NoError(tb, err)
		n.scopes = append(n.scopes, benchScope{name: name, sc: sc, bps: bps})
	}
	add("", benchRate)
	for e, es := range benchExporterShare {
		add("exporter="+exporterName(e), benchRate*es)
	}
	for e, es := range benchExporterShare {
		for i, is := range benchIfShare {
			for _, dir := range []string{"in", "out"} {
				add(fmt.Sprintf("if=%s:%d&dir=%s", exporterName(e), i+1, dir), benchRate*es*is)
			}
		}
	}
	for _, p := range []string{"tcp", "udp", "icmp"} {
		add("proto="+p, benchRate*benchProtoShare[p])
	}
	n.keys = make([][]topn.Key, len(benchDims))
	n.names = make([][]string, len(benchDims))
	for di, d := range benchDims {
		for i := range d.keys {
			var s string
			switch d.dim {
			case topn.DimDstIP:
				s = netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String()
			case topn.DimSrcIP:
				s = netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}).String()
			case topn.DimApp:
				s = fmt.Sprintf("app%03d", i)
			case topn.DimDstPort:
				s = fmt.Sprintf("%d/tcp", 1024+i)
				if i < len(benchWellKnown) {
					s = benchWellKnown[i]
				}
			}
			k, err := d.dim.ParseKey(s)
			require.NoError(tb, err)
			n.keys[di] = append(n.keys[di], k)
			n.names[di] = append(n.names[di], s)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range n.scopes {
		for _, d := range benchDims {
			perm := make([]int32, d.keys)
			for i, p := range r.Perm(d.keys) {
				perm[i] = int32(p)
			}
			// The well-known ports and the first applications lead everywhere.
			if d.dim == topn.DimDstPort || d.dim == topn.DimApp {
				for i := range perm {
					perm[i] = int32(i)
				}
			}
			n.ranks = append(n.ranks, perm)
		}
	}
	return n
}

// interval is scope si's interval of tier at start, its rate scaled by mult.
func (n *benchNet) interval(si int, tier store.Tier, start time.Time, mult float64, r *rand.Rand) store.Interval {
	d := tier.Duration()
	bytes := uint64(n.scopes[si].bps * mult * (0.9 + 0.2*r.Float64()) * d.Seconds() / 8)
	tot := topn.Counters{Bytes: bytes, Packets: bytes / 700, Flows: bytes / 700 / 25}
	k := aggregate.DefaultConfiguration().TopK
	if tier == store.TierHour {
		k = rollup.DefaultConfiguration().HourTopK
	}
	iv := store.Interval{Tier: tier, Start: start, Scope: n.scopes[si].sc, Total: tot, Tables: map[topn.Dim]*topn.Table{}}
	for di, bd := range benchDims {
		if tier == store.TierHour && (bd.dim == topn.DimDstIP || bd.dim == topn.DimSrcIP) {
			continue // the baseline rules read totals, applications and ports
		}
		iv.Tables[bd.dim] = n.table(si, di, tot, k, r)
	}
	return iv
}

// table splits tot between the dimension's keys by their rank (a 1/rank
// share of bytes), each key with its own packet size and packets per flow so
// that the three metrics rank keys differently, then cuts it to the top k
// by each metric as the aggregator and the rollup do.
func (n *benchNet) table(si, di int, tot topn.Counters, k int, r *rand.Rand) *topn.Table {
	t := n.rows(si, di, tot, r)
	cut(t, k)
	return t
}

func (n *benchNet) rows(si, di int, tot topn.Counters, r *rand.Rand) *topn.Table {
	keys, ranks := n.keys[di], n.ranks[si*len(benchDims)+di]
	wb, wp, wf := make([]float64, len(keys)), make([]float64, len(keys)), make([]float64, len(keys))
	var sb, sp, sf float64
	for i := range keys {
		size := float64(64 + (i*7919)%1437) // bytes per packet
		ppf := float64(1 + (i*104729)%150)  // packets per flow
		wb[i] = (0.7 + 0.6*r.Float64()) / float64(ranks[i]+1)
		wp[i] = wb[i] / size
		wf[i] = wp[i] / ppf
		sb, sp, sf = sb+wb[i], sp+wp[i], sf+wf[i]
	}
	t := &topn.Table{Total: tot, Entries: make([]topn.Entry, len(keys))}
	for i := range keys {
		t.Entries[i] = topn.Entry{Key: keys[i], Value: topn.Counters{
			Bytes:   uint64(float64(tot.Bytes) * wb[i] / sb),
			Packets: uint64(float64(tot.Packets) * wp[i] / sp),
			Flows:   uint64(float64(tot.Flows) * wf[i] / sf),
		}}
	}
	return t
}

// cut is t.Truncate(k), which sorts the whole table three times, made
// faster for the setup: the keys under the k-th of every metric, which no
// cut keeps, go to the threshold first (as Truncate would put them), so that
// Truncate sorts a few thousand rows, not ten thousand. Ties stay for it to
// break. TestBenchCut checks it is Truncate.
func cut(t *topn.Table, k int) {
	if len(t.Entries) > k {
		var kth [3]uint64
		vals := make([]uint64, len(t.Entries))
		for m := range kth {
			for i := range t.Entries {
				vals[i] = t.Entries[i].Value.Get(topn.Metric(m))
			}
			kth[m] = nthLargest(vals, k)
		}
		kept := t.Entries[:0]
		for _, e := range t.Entries {
			if e.Value.Bytes >= kth[0] || e.Value.Packets >= kth[1] || e.Value.Flows >= kth[2] {
				kept = append(kept, e)
				continue
			}
			upper := e.Value
			upper.Add(e.Error)
			t.Threshold.Max(upper)
		}
		t.Entries = kept
	}
	t.Truncate(k)
}

// nthLargest returns the n-th largest of vs (1-based), reordering vs.
func nthLargest(vs []uint64, n int) uint64 {
	lo, hi, want := 0, len(vs)-1, n-1
	for lo < hi {
		p := vs[(lo+hi)/2]
		i, j := lo, hi
		for i <= j {
			for vs[i] > p {
				i++
			}
			for vs[j] < p {
				j--
			}
			if i <= j {
				vs[i], vs[j] = vs[j], vs[i]
				i, j = i+1, j-1
			}
		}
		switch {
		case want <= j:
			hi = j
		case want >= i:
			lo = i
		default:
			return vs[want]
		}
	}
	return vs[want]
}

// The setup's cut is the aggregator's (Table.Truncate): the same rows, the
// same threshold, on the benchmark's tables and on tables full of ties.
func TestBenchCut(t *testing.T) {
	n := newBenchNet(t)
	r := rand.New(rand.NewPCG(5, 6))
	for di, bd := range benchDims {
		for _, k := range []int{10, 1000, 2000} {
			tot := topn.Counters{Bytes: 1e12, Packets: 1e9, Flows: 1e7}
			got := n.rows(di, di, tot, r)
			if bd.dim == topn.DimSrcIP {
				for i := range got.Entries { // ties everywhere
					got.Entries[i].Value.Bytes /= 1e6
					got.Entries[i].Value.Flows = 3
				}
			}
			want := &topn.Table{Total: got.Total, Entries: slices.Clone(got.Entries)}
			cut(got, k)
			want.Truncate(k)
			require.Equal(t, want, got, "%s k=%d", bd.dim, k)
		}
	}
}

// benchHour is the hour the benchmark evaluates: 14:00 on a Monday five
// weeks after t0, with four weeks of hour tier before it.
var benchHour = t0.Add(5*week + 14*time.Hour)

// benchMinutes is how many minutes of benchHour the store holds (from
// 14:00); benchHour+1h's first minute is stored too, for the cold cache.
const benchMinutes = 6

// benchStore writes the minutes evaluated and the hours the baseline rules
// read (14:00 and 15:00 of the four weeks before, their totals, applications
// and ports), then reopens the store so that they are read from its tables
// on disk, not from its memtables. A few scope-minutes are 4× their usual
// rate: some alerts fire.
func benchStore(b *testing.B, n *benchNet) *store.Store {
	b.Helper()
	cfg := store.DefaultConfiguration()
	cfg.Path = b.TempDir()
	cfg.MinFreeSpace = 0
	for _, tier := range store.Tiers {
		cfg.Retention[tier] = 100 * 365 * 24 * time.Hour
	}
	open := func() *store.Store {
		st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		require.NoError(b, st.Start())
		return st
	}
	st := open()
	r := rand.New(rand.NewPCG(3, 4))
	put := func(tier store.Tier, start time.Time) {
		ivs := make([]store.Interval, len(n.scopes))
		for si := range n.scopes {
			mult := 1.0
			if tier == store.TierMinute && si%17 == int(start.Unix()/60)%17 {
				mult = 4
			}
			ivs[si] = n.interval(si, tier, start, mult, r)
		}
		_, _, err := st.Put(benchHour.Add(2*time.Hour), ivs)
		require.NoError(b, err)
	}
	for w := 4; w >= 1; w-- {
		put(store.TierHour, benchHour.Add(-time.Duration(w)*week))
		put(store.TierHour, benchHour.Add(time.Hour-time.Duration(w)*week))
	}
	for i := range benchMinutes {
		put(store.TierMinute, benchHour.Add(time.Duration(i)*time.Minute))
	}
	put(store.TierMinute, benchHour.Add(time.Hour))
	require.NoError(b, st.Stop())
	st = open()
	b.Cleanup(func() { require.NoError(b, st.Stop()) })
	return st
}

// benchRules are the 1,000 rules: 100 any-key rules over dstip, 700
// threshold rules on scope totals and on keys (applications, ports,
// addresses, some of them cut from the tables), 200 baseline rules.
func benchRules(n *benchNet) (anyKey, threshold, baseline []Rule) {
	rate := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	sc := func(kind string) []benchScope {
		var out []benchScope
		for _, s := range n.scopes {
			if strings.HasPrefix(s.name, kind) && (kind != "" || s.name == "") {
				out = append(out, s)
			}
		}
		return out
	}
	all, exporters, ifs, protos := sc("")[0], sc("exporter="), sc("if="), sc("proto=")
	name := func(kind string, i int) string { return fmt.Sprintf("%s-%04d", kind, i) }

	// Any key: 4 on the whole network, 3 per exporter, 2 per protocol, 66
	// on interfaces, above a share of the scope's rate.
	addAny := func(s benchScope, metric string, share float64, severity string) {
		v := s.bps * share
		switch metric {
		case "pps":
			v /= 8 * 700
		case "flows":
			v /= 8 * 700 * 25
		}
		anyKey = append(anyKey, Rule{Name: name("any", len(anyKey)), Scope: s.name, Dim: "dstip", Key: "*", Metric: metric,
			Threshold: rate(v), Severity: severity, ResolveFor: Duration(2 * time.Minute)})
	}
	addAny(all, "bps", .05, "warning")
	addAny(all, "bps", .1, "critical")
	addAny(all, "pps", .05, "warning")
	addAny(all, "flows", .05, "warning")
	for _, s := range exporters {
		addAny(s, "bps", .05, "warning")
		addAny(s, "bps", .1, "critical")
		addAny(s, "pps", .05, "warning")
	}
	for _, s := range protos {
		addAny(s, "bps", .05, "warning")
		addAny(s, "bps", .1, "critical")
	}
	for _, s := range ifs[:66] {
		addAny(s, "bps", .08, "warning")
	}

	addThr := func(s benchScope, dim, key, metric, op string, v float64, forN time.Duration) {
		threshold = append(threshold, Rule{Name: name("thr", len(threshold)), Scope: s.name, Dim: dim, Key: key, Metric: metric,
			Op: op, Threshold: rate(v), For: Duration(forN)})
	}
	// Totals: two per interface (a surge, a drop held 5 minutes), two per
	// exporter, three on the whole network, one per protocol.
	for _, s := range ifs {
		addThr(s, "", "", "bps", ">", 2*s.bps, 0)
		addThr(s, "", "", "bps", "<", .2*s.bps, 5*time.Minute)
	}
	for _, s := range exporters {
		addThr(s, "", "", "bps", ">", 2*s.bps, 0)
		addThr(s, "", "", "pps", ">", 2*s.bps/8/700, 0)
	}
	addThr(all, "", "", "bps", ">", 1.5*all.bps, 0)
	addThr(all, "", "", "pps", ">", 1.5*all.bps/8/700, 0)
	addThr(all, "", "", "bps", "<", .3*all.bps, 5*time.Minute)
	for _, s := range protos {
		addThr(s, "", "", "bps", ">", 2*s.bps, 0)
	}
	// Applications and ports, on the whole network and on exporters.
	appNames, portNames, dstNames, srcNames := n.names[2], n.names[3], n.names[0], n.names[1]
	for i := range 40 {
		addThr(all, "app", appNames[i], "bps", ">", .2*all.bps, 0)
	}
	for _, s := range exporters {
		for i := range 15 {
			addThr(s, "app", appNames[i], "bps", ">", .2*s.bps, 0)
		}
	}
	for i := range 30 {
		addThr(all, "dstport", portNames[i], "bps", ">", .2*all.bps, 0)
	}
	for _, s := range exporters {
		for i := range 10 {
			addThr(s, "dstport", portNames[i], "pps", ">", .2*s.bps/8/700, 0)
		}
	}
	// Addresses: servers (dstip) and clients (srcip) spread over the
	// universe, so some are cut from the minute's table (a bounded figure).
	for i := range 100 {
		addThr(all, "dstip", dstNames[i*97], "bps", ">", .05*all.bps, 0)
	}
	for i := range 700 - len(threshold) - 64 {
		addThr(all, "srcip", srcNames[i*89], "bps", ">", .05*all.bps, 0)
	}
	for _, s := range exporters {
		for i := range 8 {
			addThr(s, "dstip", dstNames[i*1231], "bps", ">", .05*s.bps, 0)
		}
	}

	// Baselines (4 weeks, 3× the median, above 1 Mbps): every scope's
	// total, applications on the whole network and on exporters, ports.
	addBase := func(s benchScope, dim, key string) {
		baseline = append(baseline, Rule{Name: name("base", len(baseline)), Scope: s.name, Dim: dim, Key: key,
			Baseline: &Baseline{Weeks: 4, Ratio: 3, MinVolume: "1M"}})
	}
	for _, s := range n.scopes {
		addBase(s, "", "")
	}
	for i := range 40 {
		addBase(all, "app", appNames[i])
	}
	for _, s := range exporters {
		for i := range 4 {
			addBase(s, "app", appNames[i])
		}
	}
	for i := range 200 - len(baseline) {
		addBase(all, "dstport", portNames[i])
	}
	return anyKey, threshold, baseline
}

// benchEvaluator is an evaluator of rules on the store, as cmd/tmsd wires it.
func benchEvaluator(b *testing.B, st *store.Store, rules []Rule) (*Evaluator, *int) {
	b.Helper()
	cfg := DefaultConfiguration()
	cfg.Rules = rules
	var notified int
	e, err := New(cfg, Dependencies{
		Source: query.New(st, noOpen{}, query.WithProgress(rolledAll{})),
		Notify: func([]string, Event) { notified++ },
		Clock:  func() time.Time { return benchHour.Add(2 * time.Hour) },
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(b, err)
	return e, &notified
}

// BenchmarkEvaluateMinute evaluates 1,000 rules on a minute, each b.Loop
// iteration a different minute than the one before, each with its own data:
// a cache that made a repeat evaluation of the same minute free would not
// flatter the figure. What stays warm is what stays warm in production:
// Badger's block cache and the baselines of the hour (read on its first
// minute, cached for the 59 others).
//
//   - all: the 1,000 rules on minutes 14:01 to 14:05, after 14:00 has read
//     the hour's baselines: the figure of 59 minutes of each hour.
//   - all-cold: the 1,000 rules on 14:00 and 15:00 in turn: each the first
//     minute of its hour, so the 200 baseline rules read their four weeks.
//   - anykey: the 100 any-key rules alone, on 14:01 to 14:05.
//   - baseline-cold: the 200 baseline rules alone, on 14:00 and 15:00 in turn.
func BenchmarkEvaluateMinute(b *testing.B) {
	n := newBenchNet(b)
	st := benchStore(b, n)
	anyKey, threshold, baseline := benchRules(n)
	require.Len(b, anyKey, 100)
	require.Len(b, threshold, 700)
	require.Len(b, baseline, 200)
	all := append(append(append([]Rule{}, anyKey...), threshold...), baseline...)

	warm := make([]time.Time, benchMinutes-1)
	for i := range warm {
		warm[i] = benchHour.Add(time.Duration(i+1) * time.Minute)
	}
	cold := []time.Time{benchHour, benchHour.Add(time.Hour)}

	run := func(rules []Rule, minutes []time.Time, warmUp bool) func(b *testing.B) {
		return func(b *testing.B) {
			e, notified := benchEvaluator(b, st, rules)
			if warmUp {
				require.NoError(b, e.EvaluateMinute(benchHour))
			}
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if err := e.EvaluateMinute(minutes[i%len(minutes)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// The rules saw the data: the 4× minutes fire some of them,
			// and every baseline found its four weeks.
			require.NotZero(b, *notified)
			for _, s := range e.Alerts() {
				require.Empty(b, s.Reason, "rule %s", s.Rule)
			}
		}
	}
	b.Run("all", run(all, warm, true))
	b.Run("all-cold", run(all, cold, false))
	b.Run("anykey", run(anyKey, warm, false))
	b.Run("baseline-cold", run(baseline, cold, false))
}

// The memo answers what the source answers: a key's figures looked up in the
// whole table (its row's value and error, the threshold for a key the table
// lacks), a total, a top; and Series' own answer where Top would read a wider
// interval (a minute no longer stored, read from its hour).
func TestMemoSameFigures(t *testing.T) {
	st := newStore(t)
	day := t0.Add(24 * time.Hour)
	rows := func() []topn.Entry {
		r := []topn.Entry{row(t, "192.0.2.1", 3*G, time.Minute), row(t, "192.0.2.2", 2*G, time.Minute), row(t, "192.0.2.3", 1*G, time.Minute)}
		r[1].Error = traffic(.5*G, time.Minute)
		return r
	}
	for i := range 3 {
		put(t, st, store.TierMinute, day.Add(time.Duration(i)*time.Minute), rows(), .2*G, 5*G)
	}
	hourRows := []topn.Entry{row(t, "192.0.2.1", 3*G, time.Hour), row(t, "192.0.2.4", 2*G, time.Hour)}
	put(t, st, store.TierHour, day.Add(-week), hourRows, .1*G, 1*G)
	// t0's hour is stored, its minutes are not: Top over one of them reads the hour.
	put(t, st, store.TierHour, t0, hourRows, .1*G, 1*G)
	src := query.New(st, noOpen{}, query.WithProgress(rolledAll{}))

	var keys []*topn.Key
	for _, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "198.51.100.1", "192.0.2.1"} {
		k := ipKey(t, ip)
		keys = append(keys, &k)
	}
	f := func(from, to time.Time, step time.Duration) {
		t.Helper()
		var mm memo
		mm.begin(&Rule{}, from, to)
		for _, k := range append([]*topn.Key{nil}, keys...) {
			d := topn.DimDstIP
			if k == nil {
				d = 0
			}
			for range 2 { // the second time from the memo
				v, er, err := mm.point(src, topn.Scope{}, from, to, step, d, k)
				require.NoError(t, err)
				wv, wer, err := series(src, topn.Scope{}, from, to, step, d, k)
				require.NoError(t, err)
				require.Equal(t, [2]topn.Counters{wv, wer}, [2]topn.Counters{v, er}, "%s %v", from, k)
			}
		}
		for range 2 {
			got, err := mm.top(src, topn.Scope{}, topn.DimDstIP, from, to, 2, topn.Packets)
			require.NoError(t, err)
			want, err := src.Top(topn.Scope{}, topn.DimDstIP, from, to, 2, topn.Packets)
			require.NoError(t, err)
			require.Equal(t, want.Table, got)
		}
	}
	f(day.Add(time.Minute), day.Add(2*time.Minute), time.Minute)
	f(day.Add(time.Minute), day.Add(time.Minute+30*time.Second), time.Minute) // an open minute's rate so far
	f(day.Add(-week), day.Add(-week+time.Hour), time.Hour)
	f(t0.Add(5*time.Minute), t0.Add(6*time.Minute), time.Minute)
	top, err := src.Top(topn.Scope{}, topn.DimDstIP, t0.Add(5*time.Minute), t0.Add(6*time.Minute), 0, topn.Bytes)
	require.NoError(t, err)
	require.Equal(t, t0, top.From, "the case above is one where Top reads the hour")
	require.Len(t, top.Table.Entries, 2)
}

// A minute evaluated again reads the store again: its data may have changed
// since (a minute rewritten), and the memo must not answer from the first pass.
func TestMemoMinuteEvaluatedAgain(t *testing.T) {
	st := newStore(t)
	put(t, st, store.TierMinute, minute(0), []topn.Entry{row(t, "192.0.2.1", 1*G, time.Minute)}, 0, 1*G)
	h := newHarness(t, st,
		Rule{Name: "total", Threshold: "5G"},
		Rule{Name: "key", Dim: "dstip", Key: "192.0.2.1", Threshold: "5G"},
		Rule{Name: "key2", Dim: "dstip", Key: "192.0.2.1", Threshold: "6G"},
		Rule{Name: "any", Dim: "dstip", Key: "*", Threshold: "7G"},
	)
	h.eval(0, 1)
	require.Empty(t, h.sent())
	put(t, st, store.TierMinute, minute(0), []topn.Entry{row(t, "192.0.2.1", 10*G, time.Minute)}, 0, 1*G)
	h.eval(0, 1)
	require.Len(t, h.sent(), 4)
}
