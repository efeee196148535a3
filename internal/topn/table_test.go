package topn

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func key(b byte) Key { return Key{b} }

func TestMergeCarriesErrorBounds(t *testing.T) {
	// Minute 1 kept a and b; anything else had at most 5 bytes there.
	m1 := &Table{Total: Counters{Bytes: 120}, Threshold: Counters{Bytes: 5},
		Entries: []Entry{{Key: key(1), Value: Counters{Bytes: 100}}, {Key: key(2), Value: Counters{Bytes: 10}}}}
	// Minute 2 was exact and kept a and c.
	m2 := &Table{Total: Counters{Bytes: 60},
		Entries: []Entry{{Key: key(1), Value: Counters{Bytes: 50}}, {Key: key(3), Value: Counters{Bytes: 10}}}}
	mg := NewMerger(4)
	mg.Add(m1)
	mg.Add(m2)
	tab := mg.Table()
	rows, other := tab.Top(DimSrcIP, 10, Bytes)
	require.Len(t, rows, 3)
	f := func(i int, k Key, v, e uint64) {
		t.Helper()
		require.Equal(t, k, rows[i].Key)
		require.Equal(t, v, rows[i].Value.Bytes)
		require.Equal(t, e, rows[i].Error.Bytes)
	}
	f(0, key(1), 150, 0) // present in both
	f(1, key(2), 10, 0)  // minute 2 was exact: missing there means zero
	f(2, key(3), 10, 5)  // missing from minute 1, where it may have had up to 5
	require.Equal(t, uint64(10), other.Bytes)
	require.False(t, tab.Exact())
}

func TestTruncateRaisesThreshold(t *testing.T) {
	tab := &Table{Total: Counters{Bytes: 111, Packets: 30, Flows: 4}, Entries: []Entry{
		{Key: key(1), Value: Counters{Bytes: 100, Packets: 1, Flows: 1}},
		{Key: key(2), Value: Counters{Bytes: 10, Packets: 1, Flows: 1}},
		{Key: key(3), Value: Counters{Bytes: 1, Packets: 28, Flows: 1}, Error: Counters{Bytes: 2}},
		{Key: key(4), Value: Counters{Flows: 1}},
	}}
	tab.Truncate(1)
	// a is top by bytes, c by packets; flows tie and the lowest key wins (a).
	require.Len(t, tab.Entries, 2)
	require.Equal(t, key(1), tab.Entries[0].Key)
	require.Equal(t, key(3), tab.Entries[1].Key)
	require.Equal(t, Counters{Bytes: 10, Packets: 1, Flows: 1}, tab.Threshold)
	_, other := tab.Top(DimSrcIP, 0, Bytes)
	require.Equal(t, Counters{Bytes: 10, Packets: 1, Flows: 2}, other)
}

func TestKeyFormatParseRoundTrip(t *testing.T) {
	f := func(d Dim, s string) {
		t.Helper()
		k, err := d.ParseKey(s)
		require.NoError(t, err)
		require.Equal(t, s, d.Format(k))
	}
	f(DimSrcIP, "10.0.0.1")
	f(DimIP, "2001:db8::1")
	f(DimDstPort, "443/tcp")
	f(DimPort, "53/udp")
	f(DimProto, "17")
	f(DimApp, "postgresql")
	f(DimInIf, "192.0.2.1:3")
	f(DimOutIf, "2001:db8::9:7")
	_, err := DimSrcPort.ParseKey("443")
	require.Error(t, err)
}

// TopTable's heap selection gives the same rows as sorting everything.
func TestMergerTopTableEqualsFullSort(t *testing.T) {
	mg := NewMerger(0)
	for m := 0; m < 5; m++ {
		tb := &Table{Total: Counters{Bytes: 1e6}, Threshold: Counters{Bytes: uint64(m)}}
		for k := 0; k < 200; k++ {
			tb.Entries = append(tb.Entries, Entry{Key: Key{byte(k), byte(m * k % 7)}, Value: Counters{Bytes: uint64((k * 37 * (m + 1)) % 101), Packets: uint64(k % 13), Flows: 1}})
		}
		mg.Add(tb)
	}
	for _, by := range []Metric{Bytes, Packets, Flows} {
		full := mg.Table()
		want, wantOther := full.Top(DimSrcIP, 15, by)
		top := mg.TopTable(15, by)
		got, gotOther := top.Top(DimSrcIP, 15, by)
		require.Equal(t, want, got, by.String())
		require.Equal(t, wantOther, gotOther)
	}
}

// A reset merger merges as a new one.
func TestMergerReset(t *testing.T) {
	a := &Table{Total: Counters{Bytes: 10}, Threshold: Counters{Bytes: 2}, Entries: []Entry{{Key: key(1), Value: Counters{Bytes: 8}}}}
	b := &Table{Total: Counters{Bytes: 5}, Entries: []Entry{{Key: key(2), Value: Counters{Bytes: 5}}}}
	mg := NewMerger(0)
	mg.Add(a)
	mg.Add(b)
	mg.Reset()
	mg.Grow(100)
	mg.Add(b)
	fresh := NewMerger(0)
	fresh.Add(b)
	require.Equal(t, fresh.Table(), mg.Table())
	require.Equal(t, fresh.TopTable(1, Bytes), mg.TopTable(1, Bytes))
}

// Truncated selects with heaps what Table().Truncate sorts for, and AddEach
// merges a walked table as Add merges its entries.
func TestMergerTruncatedEqualsTruncate(t *testing.T) {
	tables := func() []*Table {
		var out []*Table
		for m := 0; m < 5; m++ {
			tb := &Table{Total: Counters{Bytes: 1e6, Packets: 1e4, Flows: 1e3}, Threshold: Counters{Bytes: uint64(m), Packets: uint64(m % 2)}}
			for k := 0; k < 300; k++ {
				tb.Entries = append(tb.Entries, Entry{Key: Key{byte(k), byte(m * k % 7)}, Error: tb.Threshold,
					Value: Counters{Bytes: uint64((k * 37 * (m + 1)) % 101), Packets: uint64(k % 13), Flows: uint64(k % 3)}})
			}
			out = append(out, tb)
		}
		return out
	}
	f := func(k int) {
		t.Helper()
		byAdd, byEach := NewMerger(0), NewMerger(0)
		for _, tb := range tables() {
			byAdd.Add(tb)
			byEach.AddEach(tb.Total, tb.Threshold, tb.Threshold, func(fn func(Key, Counters)) {
				for _, e := range tb.Entries {
					fn(e.Key, e.Value)
				}
			})
		}
		want := byAdd.Table()
		want.Truncate(k)
		require.Equal(t, want, byEach.Truncated(k), "k=%d", k)
	}
	for _, k := range []int{1, 10, 100, 299, 2000, 0} {
		f(k)
	}
}

// ip and port count each flow under both its ends: their keys add up to twice
// the total, and other is what the listed keys leave of that, in every metric.
func TestTopOtherCountsEveryEnd(t *testing.T) {
	// Three flows: a→b (100 B, 2 pkts), a→c (50 B, 1 pkt), d→d (10 B, 1 pkt),
	// the last under d at both ends, as nfdump -s ip counts it.
	a, b, c, d := key(1), key(2), key(3), key(4)
	ip := &Table{Total: Counters{Bytes: 160, Packets: 4, Flows: 3}, Entries: []Entry{
		{Key: a, Value: Counters{Bytes: 150, Packets: 3, Flows: 2}},
		{Key: b, Value: Counters{Bytes: 100, Packets: 2, Flows: 1}},
		{Key: c, Value: Counters{Bytes: 50, Packets: 1, Flows: 1}},
		{Key: d, Value: Counters{Bytes: 20, Packets: 2, Flows: 2}},
	}}
	f := func(dim Dim, n int, by Metric, wantOther Counters) {
		t.Helper()
		rows, other := ip.Top(dim, n, by)
		require.Equal(t, wantOther, other, "%s n=%d by %s", dim, n, by)
		sum := other
		for _, r := range rows {
			sum.Add(r.Value)
		}
		require.Equal(t, ip.Total.Times(2), sum, "rows + other = 2 × total")
	}
	f(DimIP, 1, Bytes, Counters{Bytes: 170, Packets: 5, Flows: 4})
	f(DimIP, 2, Bytes, Counters{Bytes: 70, Packets: 3, Flows: 3})
	f(DimIP, 2, Flows, Counters{Bytes: 150, Packets: 3, Flows: 2}) // a and d
	f(DimPort, 3, Packets, Counters{Bytes: 50, Packets: 1, Flows: 1})
	f(DimIP, 0, Bytes, Counters{})
	// Shares of every key add up to 200 %: Σ key / total = 2 in each metric.
	for _, m := range []Metric{Bytes, Packets, Flows} {
		rows, _ := ip.Top(DimIP, 0, m)
		var share float64
		for _, r := range rows {
			share += float64(r.Value.Get(m)) / float64(ip.Total.Get(m))
		}
		require.InDelta(t, 2.0, share, 1e-12, m.String())
	}

	// A one-end dimension is unchanged: other = total − rows.
	dst := &Table{Total: Counters{Bytes: 160, Packets: 4, Flows: 3}, Entries: []Entry{
		{Key: b, Value: Counters{Bytes: 100, Packets: 2, Flows: 1}},
		{Key: c, Value: Counters{Bytes: 50, Packets: 1, Flows: 1}},
		{Key: d, Value: Counters{Bytes: 10, Packets: 1, Flows: 1}},
	}}
	rows, other := dst.Top(DimDstIP, 1, Bytes)
	require.Len(t, rows, 1)
	require.Equal(t, Counters{Bytes: 60, Packets: 2, Flows: 2}, other)

	// Rows that are lower bounds (a compacted table) leave other as an upper
	// bound: here the truth is a=150, and other may be over by a's error.
	cut := &Table{Total: ip.Total, Threshold: Counters{Bytes: 50, Packets: 1, Flows: 1}, Entries: []Entry{
		{Key: a, Value: Counters{Bytes: 120, Packets: 2, Flows: 1}, Error: Counters{Bytes: 50, Packets: 1, Flows: 1}},
	}}
	_, other = cut.Top(DimIP, 1, Bytes)
	require.Equal(t, Counters{Bytes: 200, Packets: 6, Flows: 5}, other)
	trueOther := Counters{Bytes: 170, Packets: 5, Flows: 4}
	require.LessOrEqual(t, trueOther.Bytes, other.Bytes)
	require.GreaterOrEqual(t, trueOther.Bytes+50, other.Bytes)
}

func TestCountsPerFlow(t *testing.T) {
	for _, d := range Dims {
		want := 1
		switch d {
		case DimIP, DimPort, DimCountry, DimAS:
			want = 2
		}
		require.Equal(t, want, d.CountsPerFlow(), d.String())
	}
}
