package query

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/topn"
)

func TestMergeTopCombinesBounds(t *testing.T) {
	k := func(p uint16) topn.Key { return topn.PortKey(p, 6) }
	c := func(b uint64) topn.Counters { return topn.Counters{Bytes: b, Packets: b / 100, Flows: 1} }
	// Aggregator A lists 443 and 80 and dropped keys of at most 50 bytes;
	// B lists 443 and 22, exactly (no threshold).
	a := Result{Table: &topn.Table{Total: c(1500), Threshold: c(50),
		Entries: []topn.Entry{{Key: k(443), Value: c(1000)}, {Key: k(80), Value: c(400)}}},
		Answer: Answer{Exact: false, Tiers: []string{"minute"}}}
	b := Result{Table: &topn.Table{Total: c(900),
		Entries: []topn.Entry{{Key: k(443), Value: c(600)}, {Key: k(22), Value: c(300)}}},
		Answer: Answer{Exact: true, Tiers: []string{"hour", "minute"}}}
	got := MergeTop([]Result{a, b}, 2, topn.Bytes)
	require.Equal(t, uint64(2400), got.Table.Total.Bytes, "totals add")
	require.Len(t, got.Table.Entries, 2)
	require.Equal(t, k(443), got.Table.Entries[0].Key)
	require.Equal(t, uint64(1600), got.Table.Entries[0].Value.Bytes)
	require.Zero(t, got.Table.Entries[0].Error.Bytes, "listed by both: exact")
	require.Equal(t, k(80), got.Table.Entries[1].Key)
	require.Equal(t, uint64(400), got.Table.Entries[1].Value.Bytes)
	require.Zero(t, got.Table.Entries[1].Error.Bytes, "B lists every key it has: 80 is not at B")
	require.False(t, got.Exact)
	require.Equal(t, []string{"minute", "hour"}, got.Tiers)

	// 22 is missing from A, which dropped keys up to 50 bytes: bounded by it.
	got = MergeTop([]Result{a, b}, 3, topn.Bytes)
	require.Equal(t, k(22), got.Table.Entries[2].Key)
	require.Equal(t, uint64(300), got.Table.Entries[2].Value.Bytes)
	require.Equal(t, uint64(50), got.Table.Entries[2].Error.Bytes)

	got.MissingPeer("http://aggregator-3:8080")
	require.True(t, got.Partial)
	require.Equal(t, []string{"http://aggregator-3:8080"}, got.Unanswered)
}

func TestMergeSeriesAndReport(t *testing.T) {
	c := func(b uint64) topn.Counters { return topn.Counters{Bytes: b} }
	s := SeriesResult{Points: []Point{{Value: c(1)}, {Value: c(2)}}, Answer: Answer{Exact: true}}
	s.MergeSeries(SeriesResult{Points: []Point{{Value: c(10)}, {Value: c(20), Error: c(3)}}, Answer: Answer{Exact: false, Partial: true}})
	require.Equal(t, []Point{{Value: c(11)}, {Value: c(22), Error: c(3)}}, s.Points)
	require.False(t, s.Exact)
	require.True(t, s.Partial)

	r := ReportResult{Rows: []ReportRow{{Value: c(5), Points: []Point{{Value: c(5)}}}}, Total: []Point{{Value: c(7)}}, Other: []Point{{Value: c(2)}}}
	r.MergeReport(ReportResult{Rows: []ReportRow{{Value: c(1), Error: c(1), Points: []Point{{Value: c(1), Error: c(1)}}}},
		Total: []Point{{Value: c(4)}}, Other: []Point{{Value: c(3)}}})
	require.Equal(t, c(6), r.Rows[0].Value)
	require.Equal(t, c(1), r.Rows[0].Error)
	require.Equal(t, c(11), r.Total[0].Value)
	require.Equal(t, c(5), r.Other[0].Value)
}
