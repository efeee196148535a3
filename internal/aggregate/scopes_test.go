package aggregate

import (
	"fmt"
	"github.com/tmsd/tmsd/internal/store"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

func ifScope(exp string, ifIndex uint32, dir topn.Direction) topn.Scope {
	return topn.Scope{Kind: topn.ScopeInterface, Exporter: addr(exp), IfIndex: ifIndex, Dir: dir}
}

func onIf(r flow.Record, in, out uint32) flow.Record { r.InIf, r.OutIf = in, out; return r }

// rowsOf is a table's entries as key → bytes, for comparing with a truth.
func rowsOf(d topn.Dim, t *topn.Table) map[string]uint64 {
	out := map[string]uint64{}
	for _, e := range t.Entries {
		out[d.Format(e.Key)] = e.Value.Bytes
	}
	return out
}

// A host that only ever uses interface 3 is in interface 3's tables and no
// other's; interface 3 inbound and outbound carry different applications.
func TestInterfaceScopes(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.ScopeInterface = true })
	at := base.Add(10 * time.Second)
	h.push(t,
		onIf(rec("10.9.9.9", "10.0.0.2", 40000, 443, 7000, at), 3, 1), // the host, in by 3
		onIf(rec("10.0.0.5", "10.0.0.2", 40001, 443, 1000, at), 4, 1), // in by 4
		onIf(rec("10.0.0.2", "10.0.0.7", 5432, 40002, 500, at), 1, 3), // out by 3: postgresql
		onIf(rec("10.0.0.6", "10.0.0.8", 40003, 5432, 300, at), 4, 3), // out by 3: postgresql
		onIf(rec("10.0.0.6", "10.0.0.8", 40004, 443, 200, base.Add(70*time.Second)), 3, 4),
	)
	check := func(what string) {
		in3 := h.top(t, ifScope("192.0.2.1", 3, topn.DirIn), topn.DimSrcIP, base, base.Add(time.Minute))
		require.Equal(t, map[string]uint64{"10.9.9.9": 7000}, rowsOf(topn.DimSrcIP, in3), what)
		in4 := h.top(t, ifScope("192.0.2.1", 4, topn.DirIn), topn.DimSrcIP, base, base.Add(time.Minute))
		require.Equal(t, map[string]uint64{"10.0.0.5": 1000, "10.0.0.6": 300}, rowsOf(topn.DimSrcIP, in4), what)

		appsIn := h.top(t, ifScope("192.0.2.1", 3, topn.DirIn), topn.DimApp, base, base.Add(2*time.Minute))
		require.Equal(t, map[string]uint64{"https": 7200}, rowsOf(topn.DimApp, appsIn), what)
		appsOut := h.top(t, ifScope("192.0.2.1", 3, topn.DirOut), topn.DimApp, base, base.Add(2*time.Minute))
		require.Equal(t, map[string]uint64{"postgresql": 800}, rowsOf(topn.DimApp, appsOut), what)
		require.Equal(t, topn.Counters{Bytes: 800, Packets: 8, Flows: 2}, appsOut.Total, what)
		// Where the traffic entering by 3 leaves.
		outIfs := h.top(t, ifScope("192.0.2.1", 3, topn.DirIn), topn.DimOutIf, base, base.Add(2*time.Minute))
		require.Equal(t, map[string]uint64{"192.0.2.1:1": 7000, "192.0.2.1:4": 200}, rowsOf(topn.DimOutIf, outIfs), what)
		none := h.top(t, ifScope("192.0.2.2", 3, topn.DirIn), topn.DimSrcIP, base, base.Add(2*time.Minute))
		require.Empty(t, none.Entries, what)
	}
	check("open minutes")
	require.NoError(t, h.agg.FlushAll())
	check("stored minutes")
	// The interface scope stores no table of its own interface (one row, its total).
	_, ok, err := h.store.Get(1, ifScope("192.0.2.1", 3, topn.DirIn), topn.DimInIf, base)
	require.NoError(t, err)
	require.False(t, ok)
}

// drillTruth is what the drill-downs must say, computed from the records.
type drillTruth struct {
	app map[string]map[topn.Dim]map[string]uint64 // app → dim → key → bytes
	ip  map[string]map[topn.Dim]map[string]uint64
}

func computeTruth(cls *apps.Classifier, recs []flow.Record) drillTruth {
	tr := drillTruth{app: map[string]map[topn.Dim]map[string]uint64{}, ip: map[string]map[topn.Dim]map[string]uint64{}}
	add := func(m map[string]map[topn.Dim]map[string]uint64, scope string, d topn.Dim, key string, b uint64) {
		if m[scope] == nil {
			m[scope] = map[topn.Dim]map[string]uint64{}
		}
		if m[scope][d] == nil {
			m[scope][d] = map[string]uint64{}
		}
		m[scope][d][key] += b
	}
	for i := range recs {
		r := &recs[i]
		app := cls.Classify(r).App()
		src, dst := r.SrcAddr.String(), r.DstAddr.String()
		sp, dp := scopedPort(r.SrcPort, r.Proto), scopedPort(r.DstPort, r.Proto)
		add(tr.app, app, topn.DimSrcIP, src, r.Bytes)
		add(tr.app, app, topn.DimDstIP, dst, r.Bytes)
		add(tr.app, app, topn.DimIP, src, r.Bytes)
		add(tr.app, app, topn.DimIP, dst, r.Bytes)
		add(tr.app, app, topn.DimSrcPort, sp, r.Bytes)
		add(tr.app, app, topn.DimDstPort, dp, r.Bytes)
		add(tr.app, app, topn.DimPort, sp, r.Bytes)
		add(tr.app, app, topn.DimPort, dp, r.Bytes)
		add(tr.ip, src, topn.DimApp, app, r.Bytes)
		add(tr.ip, dst, topn.DimApp, app, r.Bytes)
		add(tr.ip, src, topn.DimPeer, dst, r.Bytes)
		add(tr.ip, dst, topn.DimPeer, src, r.Bytes)
	}
	return tr
}

// scopedPort is a port as the tables of a scope key it: ports 32768-65535
// as one row per protocol (topn.PortRangeKey).
func scopedPort(port uint16, proto uint8) string {
	if port >= topn.DynamicPorts {
		return topn.DimSrcPort.Format(topn.PortRangeKey(proto))
	}
	return topn.DimSrcPort.Format(topn.PortKey(port, proto))
}

func drillRecords(n int, seed uint64, at time.Time) []flow.Record {
	rng := rand.New(rand.NewPCG(seed, 2))
	ports := []uint16{443, 80, 53, 5432, 22}
	out := make([]flow.Record, n)
	for i := range out {
		r := rec(fmt.Sprintf("10.0.%d.%d", rng.IntN(3), rng.IntN(20)), fmt.Sprintf("10.1.0.%d", rng.IntN(30)),
			uint16(40000+rng.IntN(50)), ports[rng.IntN(len(ports))], uint64(100+rng.IntN(1000)), at)
		r.InIf, r.OutIf = uint32(1+rng.IntN(4)), uint32(1+rng.IntN(4))
		if i%3 == 0 {
			r.Exporter = addr("192.0.2.2")
		}
		out[i] = r
	}
	return out
}

// The drill-downs of a minute equal the truth computed from the records fed:
// an application's hosts and ports, an address's applications and peers. Only
// the top drill_downs keys have one once the minute is stored; an open minute
// answers any key.
func TestDrillDownsExact(t *testing.T) {
	cls, err := apps.New(nil)
	require.NoError(t, err)
	recs := drillRecords(3000, 1, base.Add(10*time.Second))
	truth := computeTruth(cls, recs)
	h := startAggregator(t, func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 1000, true })
	h.push(t, recs...)
	check := func(what string) {
		for app, dims := range truth.app {
			sc := topn.Scope{Kind: topn.ScopeApp, App: topn.AppKey(app)}
			for d, want := range dims {
				tb := h.top(t, sc, d, base, base.Add(time.Minute))
				require.True(t, tb.Exact(), "%s %s %s", what, sc, d)
				require.Equal(t, want, rowsOf(d, tb), "%s %s %s", what, sc, d)
			}
			require.Equal(t, sumBytes(dims[topn.DimSrcIP]), h.total(t, sc, base, base.Add(time.Minute)).Bytes, "%s %s", what, sc)
		}
		for ip, dims := range truth.ip {
			sc := topn.Scope{Kind: topn.ScopeIP, IP: addr(ip)}
			for d, want := range dims {
				tb := h.top(t, sc, d, base, base.Add(time.Minute))
				require.Equal(t, want, rowsOf(d, tb), "%s %s %s", what, sc, d)
			}
			require.Equal(t, sumBytes(dims[topn.DimApp]), h.total(t, sc, base, base.Add(time.Minute)).Bytes, "%s %s", what, sc)
		}
	}
	check("open")
	require.NoError(t, h.agg.FlushAll())
	check("stored")
}

func sumBytes(m map[string]uint64) uint64 {
	var n uint64
	for _, b := range m {
		n += b
	}
	return n
}

// With drill_downs N, a stored minute keeps drill-downs for its top N
// applications and addresses only.
func TestDrillDownsOnlyForTopKeys(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 1, true })
	at := base.Add(10 * time.Second)
	h.push(t,
		rec("10.0.0.1", "10.0.0.2", 40000, 443, 5000, at),
		rec("10.0.0.3", "10.0.0.4", 40001, 5432, 100, at),
	)
	require.NoError(t, h.agg.FlushAll())
	scopes, err := h.store.Scopes(1, base, base.Add(time.Minute))
	require.NoError(t, err)
	var drills []string
	for _, sd := range scopes {
		if sd.Scope.IsDrillDown() {
			drills = append(drills, sd.Scope.String())
			require.ElementsMatch(t, sd.Scope.Dims(), sd.Dims, sd.Scope)
		}
	}
	// 10.0.0.1 and 10.0.0.2 tie at the top: the key order breaks it.
	require.ElementsMatch(t, []string{"app=https", "ip=10.0.0.1"}, drills)
}

// Interface and drill-down scopes survive a crash: the checkpoint holds the
// interfaces and the composite tables, and the restart stores them exactly.
func TestScopesSurviveCheckpointRestore(t *testing.T) {
	cls, err := apps.New(nil)
	require.NoError(t, err)
	recs := drillRecords(1000, 2, base.Add(10*time.Second))
	truth := computeTruth(cls, recs)
	h := startAggregator(t, func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 1000, true })
	h.push(t, recs...)
	in2 := h.top(t, ifScope("192.0.2.2", 2, topn.DirIn), topn.DimSrcIP, base, base.Add(time.Minute))
	require.NotEmpty(t, in2.Entries)
	require.NoError(t, h.agg.checkpoint())
	h.crash()

	h2 := startOn(t, h.store, h.store, func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 1000, true }, at(90*time.Second))
	require.NoError(t, h2.agg.Stop())
	h2.stopped = true
	got := h2.top(t, ifScope("192.0.2.2", 2, topn.DirIn), topn.DimSrcIP, base, base.Add(time.Minute))
	require.Equal(t, in2.Total, got.Total)
	require.Equal(t, rowsOf(topn.DimSrcIP, in2), rowsOf(topn.DimSrcIP, got))
	for app, dims := range truth.app {
		sc := topn.Scope{Kind: topn.ScopeApp, App: topn.AppKey(app)}
		for d, want := range dims {
			require.Equal(t, want, rowsOf(d, h2.top(t, sc, d, base, base.Add(time.Minute))), "%s %s", sc, d)
		}
	}
	for ip, dims := range truth.ip {
		sc := topn.Scope{Kind: topn.ScopeIP, IP: addr(ip)}
		require.Equal(t, dims[topn.DimPeer], rowsOf(topn.DimPeer, h2.top(t, sc, topn.DimPeer, base, base.Add(time.Minute))), sc)
	}
}

// Countries and ASes: a flow's unknown ones (0) are not counted but derived,
// the scope's total less what was counted, and the known ones are folded from
// the address tables by what each address is (spec.elides). So every scope's
// table says exactly what the records say, open, after a crash restored from
// a checkpoint, and stored: when each address has one country and AS (the
// fold), when some have two in the minute (counted flow by flow from then
// on), and when max_keys makes the address tables forget and turn away keys
// (their rows folded as they go, the turned-away flows counted at once).
func TestCountriesAndASesExactInEveryScope(t *testing.T) {
	cc := [][2]byte{{}, {'K', 'R'}, {'U', 'S'}, {'F', 'R'}}
	ases := []uint32{0, 4766, 15169, 3320}
	for _, tc := range []struct {
		name   string
		hosts  int   // distinct source addresses
		mixed  bool  // an address's country and AS vary from flow to flow
		keys   int   // max_keys (0: default)
		memory int64 // max_memory (0: default)
		direct bool  // the minute ends up counting them flow by flow
	}{
		{name: "one per address", hosts: 51},
		{name: "mixed", hosts: 51, mixed: true, direct: true},
		{name: "forgetting", hosts: 3000, keys: 40},
		// 1 MiB: 4,096 addresses per shard's minute at most (endsLimit)
		{name: "more addresses than the budget folds", hosts: 5000, memory: 1 << 20, direct: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := base.Add(10 * time.Second)
			var recs []flow.Record
			truth := map[topn.Scope]map[topn.Dim]map[string]uint64{}
			for i := range 6000 {
				h := i % tc.hosts
				r := onIf(rec(fmt.Sprintf("10.%d.%d.%d", h/4096, h/64%64, h%64), "10.1.0.9", uint16(40000+i%7), 443, uint64(100+i), at), uint32(1+i%3), 9)
				if i%4 == 0 {
					r.Exporter = addr("192.0.2.2")
				}
				src, dst := h, 7
				if tc.mixed {
					src, dst = i, i/4
				}
				r.SrcCountry, r.DstCountry = cc[src%4], cc[dst%4]
				r.SrcAS, r.DstAS = ases[src/4%4], ases[dst/4%4]
				recs = append(recs, r)
				for _, sc := range []topn.Scope{{}, {Kind: topn.ScopeExporter, Exporter: r.Exporter}, ifScope(r.Exporter.String(), r.InIf, topn.DirIn), ifScope(r.Exporter.String(), r.OutIf, topn.DirOut)} {
					if truth[sc] == nil {
						truth[sc] = map[topn.Dim]map[string]uint64{}
					}
					add := func(d topn.Dim, k topn.Key) {
						if truth[sc][d] == nil {
							truth[sc][d] = map[string]uint64{}
						}
						truth[sc][d][d.Format(k)] += r.Bytes
					}
					add(topn.DimSrcCountry, topn.CountryKey(r.SrcCountry))
					add(topn.DimDstCountry, topn.CountryKey(r.DstCountry))
					add(topn.DimCountry, topn.CountryKey(r.SrcCountry))
					add(topn.DimCountry, topn.CountryKey(r.DstCountry))
					add(topn.DimSrcAS, topn.ASKey(r.SrcAS))
					add(topn.DimDstAS, topn.ASKey(r.DstAS))
					add(topn.DimAS, topn.ASKey(r.SrcAS))
					add(topn.DimAS, topn.ASKey(r.DstAS))
				}
			}
			mod := func(c *Configuration) {
				if tc.keys > 0 {
					c.MaxKeys, c.TopK = tc.keys, tc.keys/2
				}
				if tc.memory > 0 {
					c.MaxMemory = tc.memory
				}
			}
			check := func(h *harness, what string) {
				t.Helper()
				for sc, dims := range truth {
					for d, want := range dims {
						got := h.top(t, sc, d, base, base.Add(time.Minute))
						require.Equal(t, want, rowsOf(d, got), "%s: %s %s", what, sc, d)
						require.True(t, got.Exact(), "%s: %s %s", what, sc, d)
					}
				}
			}
			h := startAggregator(t, mod)
			h.push(t, recs...)
			if tc.keys > 0 {
				require.NotZero(t, h.agg.compactions.Load(), "the address tables forgot keys")
			}
			check(h, "open")
			require.Equal(t, tc.direct, h.agg.directMinutes.Load() > 0, "counted flow by flow")
			require.NoError(t, h.agg.checkpoint())
			h.crash()
			h2 := startOn(t, h.store, h.store, mod, func() time.Time { return base })
			check(h2, "restored")
			require.NoError(t, h2.agg.FlushAll())
			check(h2, "stored")
		})
	}
}

// appgroup is read off the app tables: each group's row is the sum of its
// applications' (a rule's group=; a rule naming a port-table application
// gives it the group too), the others under "ungrouped", in the whole
// network, an exporter and an interface, open and stored.
func TestAppGroupsAreTheSumOfTheirApps(t *testing.T) {
	var rules []apps.Rule
	for _, l := range []string{"pg = tcp/5432 group=database", "my = tcp/3306 group=database", "https = tcp/443 group=web"} {
		r, err := apps.ParseRule(l)
		require.NoError(t, err)
		rules = append(rules, r)
	}
	cls, err := apps.New(rules)
	require.NoError(t, err)
	at := base.Add(10 * time.Second)
	var recs []flow.Record
	truth := map[topn.Scope]map[string]uint64{}
	for i := range 900 {
		port := []uint16{5432, 3306, 443, 22, 53}[i%5]
		r := onIf(rec(fmt.Sprintf("10.0.0.%d", i%40), "10.1.0.9", uint16(40000+i%300), port, uint64(100+i), at), uint32(1+i%2), 9)
		group := []string{"database", "database", "web", Ungrouped, Ungrouped}[i%5]
		recs = append(recs, r)
		for _, sc := range []topn.Scope{{}, {Kind: topn.ScopeExporter, Exporter: r.Exporter}, ifScope(r.Exporter.String(), r.InIf, topn.DirIn)} {
			if truth[sc] == nil {
				truth[sc] = map[string]uint64{}
			}
			truth[sc][group] += r.Bytes
		}
	}
	st := newStore(t, store.Dependencies{})
	h := startClassified(t, st, st, nil, func() time.Time { return base }, cls)
	h.push(t, recs...)
	check := func(what string) {
		t.Helper()
		for sc, want := range truth {
			got := h.top(t, sc, topn.DimAppGroup, base, base.Add(time.Minute))
			require.Equal(t, want, rowsOf(topn.DimAppGroup, got), "%s: %s", what, sc)
			require.True(t, got.Exact(), "%s: %s", what, sc)
		}
	}
	check("open")
	require.NoError(t, h.agg.FlushAll())
	check("stored")
}
