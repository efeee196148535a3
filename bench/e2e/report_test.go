package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkloadReport checks the report says which workload was sent, as
// flowgen's truth describes it, and per format how often flows repeated
// their tuple: at tmsd's best step and over every step.
func TestWorkloadReport(t *testing.T) {
	// The truth file's fields, as flowgen writes them.
	var tr truth
	require.NoError(t, json.Unmarshal([]byte(`{
		"workload": {"profile": "backbone", "sources": 100000, "destinations": 10000, "zipf": 1.1, "services": 60,
			"interfaces": 48, "exporters": 4, "pool": 2048, "templates": "every 100 datagrams", "tuple_repeat": 1},
		"tuples": {"minutes": 1, "distinct": 4990000, "flows_per_tuple": 1.002}}`), &tr))
	best := &step{Achieved: 998_000, Tuples: tr.Tuples, Pass: true}
	all := []*series{
		{Format: "v9", Kind: kTmsd, Label: kTmsd, Workload: tr.Workload, Best: best,
			Steps: []*step{{Tuples: &tupleStats{Minutes: 1, Distinct: 500_000, FlowsPerTuple: 1}}, best}},
		{Format: "v9", Kind: kGoflow2, Label: kGoflow2, Workload: tr.Workload,
			Steps: []*step{{Tuples: &tupleStats{Minutes: 2, Distinct: 100, FlowsPerTuple: 1.01}}}},
		{Format: "sflow", Kind: kTmsd, Label: kTmsd, NA: "interrupted"},
	}
	o := &opts{profile: "backbone", duration: 5 * time.Second, genFlags: []string{"-tuple-repeat", "1"}}
	md := report(o, all, time.Minute, "1", "2")
	require.Contains(t, md, "Generator: bin/flowgen -profile backbone -tuple-repeat 1, ")
	require.Contains(t, md, "Workload (from the generator's truth files): profile backbone: sources Zipf (s=1.1) over 100,000 addresses, "+
		"destinations over 10,000 others, 60 services (client ports 32768–60999 on the other side), 48 interfaces a side, 4 exporters, "+
		"2,048 pre-built datagrams per exporter, client ports rotated on every send")
	require.Contains(t, md, "| v9 | every 100 datagrams | 1.00 (998,000 flows/s, 4,990,000 distinct tuples in 1 minute(s)) | 1.00–1.01 |\n")
	require.Contains(t, md, "| sflow | — | — | — |\n")
	require.Contains(t, md, "a whole minute at the same rate repeats them up to 12× more")
	require.Contains(t, md, "| 1.00 |", "every step's flows per tuple")

	all[0].Workload.Profile, all[0].Workload.DstHosts, all[0].Workload.TupleRepeat = "pool", 0, 0
	md = report(o, all, time.Minute, "1", "2")
	require.Contains(t, md, "profile pool: sources Zipf (s=1.1) over 100,000 addresses, destinations from the same hosts")
	require.Contains(t, md, "datagrams re-sent unchanged")
	require.NotContains(t, report(o, all[2:], time.Minute, "1", "2"), "Workload (", "no truth read, no workload claimed")
}

// TestGenMaxReport checks the generator-alone table: rates, CPU cost, the
// workload's tuple figure, and an error in its row.
func TestGenMaxReport(t *testing.T) {
	o := &opts{profile: "backbone", genCPU: "1", genMaxDuration: 3 * time.Second}
	md := genMaxReport(o, []*genMax{
		{Format: "v9", Achieved: 6_123_456.4, Sent: 18_370_369, CPUS: 3.1, FlowsPerCPU: 18_370_369 / 3.1, Tuples: &tupleStats{Distinct: 18_000_000, FlowsPerTuple: 1.0205}},
		{Format: "sflow", Err: "flowgen: exit status 2 | bad"},
	})
	require.Contains(t, md, "`flowgen -rate 0 -duration 3s -profile backbone`, pinned to CPU 1,")
	require.Contains(t, md, "| v9 | 6,123,456 | 5,925,925 | 1.02 |\n")
	require.Contains(t, md, "| sflow | error: flowgen: exit status 2 / bad | | |\n")
	require.Empty(t, genMaxReport(o, nil))
}
