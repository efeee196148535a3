package main

import (
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// Every tmsd_ metric the pipeline registers is in the README's table, so
// the table cannot drift from the code.
func TestREADMEListsEveryMetric(t *testing.T) {
	cfg := defaultConfig()
	cfg.Data = t.TempDir()
	p, err := newPipeline(cfg, slog.New(slog.DiscardHandler), time.Now)
	require.NoError(t, err)
	// One exporter, so the per-exporter collector has series to show.
	_, err = pcapsrc.Read("../../testdata/pcaps/softflowd-v9.pcap", func(d pcapsrc.Datagram) error {
		_, _ = p.decoder.Decode(netip.MustParseAddr("192.0.2.1"), d.Payload, time.Now(), nil)
		return nil
	})
	require.NoError(t, err)

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	mfs, err := p.registry.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		if n := mf.GetName(); strings.HasPrefix(n, "tmsd_") {
			names = append(names, n)
			require.Contains(t, string(readme), "`"+n+"`", "README's metrics table misses %s", n)
		}
	}
	require.Contains(t, names, "tmsd_exporter_datagrams_total")
}
