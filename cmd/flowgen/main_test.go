package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

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
	require.Regexp(t, `^flowgen: ipfix to 127\.0\.0\.1:\d+: \d+ datagrams, 1000 flows in [0-9.]+s, \d+ flows/s\n$`, stderr.String())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var truth flowgen.Truth
	require.NoError(t, json.Unmarshal(b, &truth))
	require.Equal(t, uint64(1000), truth.Total.Flows)
	require.Equal(t, uint32(10), truth.Sampling)
	require.Equal(t, []string{"127.0.0.2", "127.0.0.3"}, truth.Exporters)
	require.NotNil(t, truth.Top)
	require.Contains(t, []string{"443/tcp", "53/udp"}, truth.Top.DstPort[0].Key, "the top port is a service")
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
