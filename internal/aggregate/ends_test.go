package aggregate

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/apps"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// endsRecords are drillRecords with the flows whose two ends share a key:
// an address talking to itself, srcport == dstport, and ICMP (ports 0, or the
// type and code in the destination port as v9 exporters put them).
func endsRecords(at time.Time) []flow.Record {
	recs := drillRecords(1500, 3, at)
	self := rec("10.0.1.5", "10.0.1.5", 40000, 443, 7000, at)
	self.InIf, self.OutIf = 2, 2
	ntp := rec("10.0.2.7", "10.1.0.9", 123, 123, 480, at)
	ntp.Proto = 17
	icmp := rec("10.0.0.3", "10.1.0.4", 0, 0, 840, at)
	icmp.Proto = 1
	echo := rec("10.0.0.3", "10.1.0.4", 0, 8<<8, 84, at)
	echo.Proto = 1
	selfNTP := rec("10.0.1.5", "10.0.1.5", 123, 123, 96, at)
	selfNTP.Proto = 17
	return append(recs, self, ntp, icmp, echo, selfNTP, self)
}

// keysPerFlow is how many keys of each dimension a flow counts under, as the
// truth says, independently of topn.Dim.CountsPerFlow.
func keysPerFlow(d topn.Dim) int {
	switch d {
	case topn.DimIP, topn.DimPort, topn.DimCountry, topn.DimAS:
		return 2
	}
	return 1
}

// sumEntries adds up a table's rows, in every metric.
func sumEntries(tb *topn.Table) topn.Counters {
	var c topn.Counters
	for _, e := range tb.Entries {
		c.Add(e.Value)
	}
	return c
}

// Every table's keys add up to exactly CountsPerFlow × its total, in bytes,
// packets and flows: twice for ip and port (a flow under each end, twice under
// one key when both ends have it, as nfdump counts), once for the others, and
// once for an ip scope's peers, whose total is the address's ip row. The
// identity holds in every scope (interfaces and drill-downs too), in the open
// minutes and in the stored ones, so other = CountsPerFlow × total − rows is
// exact when the rows are.
func TestKeysAddUpToCountsPerFlowTimesTotal(t *testing.T) {
	cls, err := apps.New(nil)
	require.NoError(t, err)
	at := base.Add(10 * time.Second)
	recs := endsRecords(at)
	h := startAggregator(t, func(c *Configuration) { c.DrillDowns, c.ScopeInterface = 1000, true })
	h.push(t, recs...)

	scopes := []topn.Scope{{}}
	seen := map[topn.Scope]bool{}
	for i := range recs {
		r := &recs[i]
		for _, sc := range []topn.Scope{
			{Kind: topn.ScopeExporter, Exporter: r.Exporter},
			{Kind: topn.ScopeProto, Proto: r.Proto},
			{Kind: topn.ScopeInterface, Exporter: r.Exporter, IfIndex: r.InIf, Dir: topn.DirIn},
			{Kind: topn.ScopeInterface, Exporter: r.Exporter, IfIndex: r.OutIf, Dir: topn.DirOut},
			{Kind: topn.ScopeApp, App: cls.Classify(r)},
			{Kind: topn.ScopeIP, IP: r.SrcAddr},
			{Kind: topn.ScopeIP, IP: r.DstAddr},
		} {
			if !seen[sc] {
				seen[sc] = true
				scopes = append(scopes, sc)
			}
		}
	}
	self := topn.Scope{Kind: topn.ScopeIP, IP: addr("10.0.1.5")}
	require.True(t, seen[self])
	check := func(what string) {
		t.Helper()
		for _, sc := range scopes {
			for _, d := range sc.Dims() {
				tb := h.top(t, sc, d, base, base.Add(time.Minute))
				require.True(t, tb.Exact(), "%s %s %s", what, sc, d)
				require.NotZero(t, tb.Total.Flows, "%s %s %s", what, sc, d)
				k := keysPerFlow(d)
				require.Equal(t, tb.Total.Times(k), sumEntries(tb), "%s %s %s: keys = %d × total", what, sc, d, k)
				_, other := tb.Top(d, 5, topn.Bytes)
				rows, _ := tb.Top(d, 5, topn.Bytes)
				sum := other
				for _, r := range rows {
					sum.Add(r.Value)
				}
				require.Equal(t, tb.Total.Times(k), sum, "%s %s %s: rows + other", what, sc, d)
			}
		}
		// The address that talks to itself: its ip row (the scope's total)
		// counts those flows at both ends, and so do its peers.
		tb := h.top(t, self, topn.DimPeer, base, base.Add(time.Minute))
		e, ok := tb.Lookup(topn.AddrKey(addr("10.0.1.5")))
		require.True(t, ok, what)
		require.Equal(t, topn.Counters{Bytes: 2 * (7000 + 7000 + 96), Packets: 2 * (70 + 70), Flows: 2 * 3}, e.Value, what)
		ip := h.top(t, topn.Scope{}, topn.DimIP, base, base.Add(time.Minute))
		row, ok := ip.Lookup(topn.AddrKey(addr("10.0.1.5")))
		require.True(t, ok, what)
		require.Equal(t, row.Value, tb.Total, "%s: the ip scope's total is the address's ip row", what)
		// 123/udp at both ends of a flow counts twice under it.
		port := h.top(t, topn.Scope{}, topn.DimPort, base, base.Add(time.Minute))
		ntp, ok := port.Lookup(topn.PortKey(123, 17))
		require.True(t, ok, what)
		require.Equal(t, topn.Counters{Bytes: 2 * (480 + 96), Packets: 2 * 4, Flows: 4}, ntp.Value, what)
	}
	check("open")
	require.NoError(t, h.agg.checkpoint())
	require.NoError(t, h.agg.FlushAll())
	check("stored")
}

// Where tables compact, rows are lower bounds and other an upper bound: the
// rows never add up past CountsPerFlow × total, and the true remainder lies
// within other minus the rows' errors and other.
func TestOtherBoundsUnderCompaction(t *testing.T) {
	h := startAggregator(t, func(c *Configuration) { c.Shards = 1; c.TopK = 10; c.MaxKeys = 100 })
	at := base.Add(5 * time.Second)
	var recs []flow.Record
	truth := map[topn.Dim]map[topn.Key]topn.Counters{topn.DimIP: {}, topn.DimPort: {}, topn.DimSrcIP: {}}
	count := func(d topn.Dim, k topn.Key, r *flow.Record) {
		c := truth[d][k]
		c.Add(topn.Counters{Bytes: r.Bytes, Packets: r.Packets, Flows: 1})
		truth[d][k] = c
	}
	for i := range 3000 {
		r := rec(fmt.Sprintf("10.1.%d.%d", i/250, i%250), fmt.Sprintf("10.2.0.%d", i%40), uint16(1024+i), uint16(1024+i%300), uint64(100+i%17), at)
		if i%10 == 0 {
			r = rec("10.9.9.9", "10.9.9.9", 443, 443, 5000, at) // heavy, and the same key at both ends
		}
		recs = append(recs, r)
		count(topn.DimIP, topn.AddrKey(r.SrcAddr), &r)
		count(topn.DimIP, topn.AddrKey(r.DstAddr), &r)
		count(topn.DimPort, topn.PortKey(r.SrcPort, r.Proto), &r)
		count(topn.DimPort, topn.PortKey(r.DstPort, r.Proto), &r)
		count(topn.DimSrcIP, topn.AddrKey(r.SrcAddr), &r)
	}
	h.push(t, recs...)
	check := func(what string) {
		t.Helper()
		for d, keys := range truth {
			tb := h.top(t, topn.Scope{}, d, base, base.Add(time.Minute))
			require.False(t, tb.Exact(), "%s %s compacted", what, d)
			whole := tb.Total.Times(keysPerFlow(d))
			for _, m := range []topn.Metric{topn.Bytes, topn.Packets, topn.Flows} {
				rows, other := tb.Top(d, 10, m)
				var lo, hi, listed topn.Counters // the rows' values, their upper bounds, their truth
				for _, r := range rows {
					lo.Add(r.Value)
					hi.Add(r.Value)
					hi.Add(r.Error)
					listed.Add(keys[r.Key])
				}
				require.LessOrEqual(t, lo.Get(m), whole.Get(m), "%s %s by %s: rows within %d × total", what, d, m, keysPerFlow(d))
				wantOther := whole
				wantOther.Sub(lo)
				require.Equal(t, wantOther, other, "%s %s by %s", what, d, m)
				trueOther := whole
				trueOther.Sub(listed)
				for _, mm := range []topn.Metric{topn.Bytes, topn.Packets, topn.Flows} {
					require.LessOrEqual(t, trueOther.Get(mm), other.Get(mm), "%s %s by %s: other is an upper bound of %s", what, d, m, mm)
					require.GreaterOrEqual(t, trueOther.Get(mm)+(hi.Get(mm)-lo.Get(mm)), other.Get(mm), "%s %s by %s: within the rows' errors (%s)", what, d, m, mm)
				}
			}
		}
	}
	check("open")
	require.NoError(t, h.agg.FlushAll())
	check("stored")
}
