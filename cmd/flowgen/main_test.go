package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flowgen"
)

// sink is a socket nobody reads.
func sink(t *testing.T) string {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn.LocalAddr().String()
}

func TestRunWritesTruth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "truth.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{
		"-format", "ipfix", "-target", sink(t), "-count", "1000", "-rate", "100000",
		"-exporters", "2", "-sampling", "10", "-ports", "443/tcp, 53/udp", "-truth", path,
	}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	require.Empty(t, stdout.String())
	require.Regexp(t, `^flowgen: ipfix to 127\.0\.0\.1:\d+: \d+ datagrams, 1000 flows in [0-9.]+s, \d+ flows/s \(profile backbone, 1\.00 flows per distinct tuple and minute\)\n$`, stderr.String())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var truth flowgen.Truth
	require.NoError(t, json.Unmarshal(b, &truth))
	require.Equal(t, uint64(1000), truth.Total.Flows)
	require.Equal(t, uint32(10), truth.Sampling)
	require.Equal(t, []string{"127.0.0.2", "127.0.0.3"}, truth.Exporters)
	require.NotNil(t, truth.Top)
	require.Contains(t, []string{"443/tcp", "53/udp"}, truth.Top.DstPort[0].Key, "the top port is a service")
	require.Equal(t, &flowgen.Workload{Profile: "backbone", Sources: 100_000, DstHosts: 10_000, Zipf: 1.1, Services: 2,
		Interfaces: 48, Exporters: 2, Pool: 2048, Templates: "every 100 datagrams", TupleRepeat: 1}, truth.Workload)
	require.NotNil(t, truth.Tuples)
}

// TestParseProfileFlags checks the workload flags reach the configuration:
// the profile, both host pools, templates by count or by time, the tuple repeat.
func TestParseProfileFlags(t *testing.T) {
	f := func(args []string, want func(c *flowgen.Config)) {
		t.Helper()
		var stderr bytes.Buffer
		o, err := parse(append([]string{"-format", "v9", "-count", "1"}, args...), &stderr)
		require.NoError(t, err, "%q", args)
		w := flowgen.Config{Format: "v9", Target: "127.0.0.1:2055", Count: 1, Exporters: 4, Seed: 1, Zipf: 1.1, Sampling: 1,
			Batch: 64, Profile: "backbone"}
		want(&w)
		require.Equal(t, w, o.cfg, "%q", args)
	}
	f(nil, func(*flowgen.Config) {})
	f([]string{"-hosts", "5000", "-dst-hosts", "700", "-tuple-repeat", "11"}, func(c *flowgen.Config) {
		c.Hosts, c.DstHosts, c.TupleRepeat = 5000, 700, 11
	})
	f([]string{"-templates-every", "20"}, func(c *flowgen.Config) { c.TemplatesEveryDatagrams = 20 })
	f([]string{"-templates-every", "-1"}, func(c *flowgen.Config) { c.TemplatesEveryDatagrams = -1 })
	f([]string{"-templates-every", "250ms"}, func(c *flowgen.Config) { c.TemplatesEvery = 250 * time.Millisecond })
	f([]string{"-profile", "pool"}, func(c *flowgen.Config) { c.Profile = "pool" })
	f([]string{"-profile", "pool", "-ports", "443/tcp,53/udp"}, func(c *flowgen.Config) {
		c.Profile, c.Ports = "pool", []string{"443/tcp", "53/udp"}
	})
}

func TestRunSummaryOnStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-format", "sflow", "-target", sink(t), "-count", "50", "-sources", "127.0.0.9"}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	var summary map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &summary))
	require.NotContains(t, summary, "top")
	require.Equal(t, []any{"127.0.0.9"}, summary["exporters"])
}

func TestRunBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-format", "v5"}, // neither count nor duration
		{"-format", "v5", "-count", "1", "-duration", "11m"},
		{"-format", "v5", "-count", "1", "-sampling", "0"},
		{"-format", "v5", "-count", "1", "-sources", "nonsense"},
		{"-format", "v5", "-count", "1", "extra"},
		{"-format", "v9", "-count", "1", "-profile", "mesh"},
		{"-format", "v9", "-count", "1", "-profile", "pool", "-dst-hosts", "10"},
		{"-format", "v9", "-count", "1", "-profile", "pool", "-tuple-repeat", "2"},
		{"-format", "v9", "-count", "1", "-templates-every", "soon"},
		{"-format", "v9", "-count", "1", "-templates-every", "0"},
		{"-format", "v9", "-count", "1", "-hosts", "16000000", "-dst-hosts", "1000000"},
		{"-bogus"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 2, run(context.Background(), args, &stdout, &stderr), "%q", args)
		require.NotEmpty(t, stderr.String())
	}
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"-h"}, &stdout, &stderr))
	require.Contains(t, stderr.String(), "-templates-every")
}
