package main

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tmsd.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

// requireConfigError requires `tmsd serve --config` of body to fail naming
// the file, wantLine and wantReason.
func requireConfigError(t *testing.T, body, wantLine, wantReason string) {
	t.Helper()
	p := writeConfig(t, body)
	_, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
	require.Error(t, err, body)
	require.Contains(t, err.Error(), p+":"+wantLine+": ", body)
	require.Contains(t, err.Error(), wantReason, body)
}

func TestConfigFileAndFlags(t *testing.T) {
	p := writeConfig(t, `
netflow: [":9995", ":2055"]
http: "127.0.0.1:9090"
retention: 30d
apps:
  - "erp-db = 10.1.2.0/24 tcp/5432"
sampling:
  192.0.2.1: 100
aggregate:
  top_k: 500
  grace: 90s
  checkpoint_interval: 0
  max_memory: 256MiB
memory_limit: 768MiB
store:
  min_free_space: 1048576
`)
	cfg, rest, err := parseFlags("serve", []string{"--config", p, "--http", ":8081", "extra"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{"extra"}, rest)
	require.Equal(t, []string{":9995", ":2055"}, cfg.NetFlow)
	require.Equal(t, ":8081", cfg.HTTP, "flags override the file")
	require.Equal(t, Duration(30*24*time.Hour), cfg.Retention.Minute)
	require.Equal(t, "erp-db", cfg.Apps[0].Name)
	require.Equal(t, uint32(100), cfg.Sampling[netip.MustParseAddr("192.0.2.1")])
	require.Equal(t, 500, cfg.Aggregate.TopK)
	require.Equal(t, Duration(90*time.Second), cfg.Aggregate.Grace)
	require.Zero(t, cfg.Aggregate.CheckpointInterval, "0 turns checkpoints off")
	require.Equal(t, ByteCount(1<<20), cfg.Store.MinFreeSpace)
	require.Equal(t, ByteSize(256<<20), cfg.Aggregate.MaxMemory)
	require.Equal(t, ByteSize(768<<20), cfg.MemoryLimit)
	def := defaultConfig()
	require.Equal(t, CheckpointInterval(10*time.Second), def.Aggregate.CheckpointInterval)
	require.Equal(t, ByteCount(512<<20), def.Store.MinFreeSpace)
	eff, err := effectiveConfig(def)
	require.NoError(t, err)
	require.Equal(t, "10s", eff["aggregate"].(map[string]any)["checkpoint_interval"], "GET /api/v1/config shows it as the file takes it")
	require.Equal(t, 512<<20, eff["store"].(map[string]any)["min_free_space"])
	require.Equal(t, []string{":6343"}, cfg.SFlow, "defaults stay where neither sets a value")
}

func TestBadConfigNamesFileLineAndReason(t *testing.T) {
	f := func(body, wantLine, wantReason string) { requireConfigError(t, body, wantLine, wantReason) }
	f("http: \":8080\"\nnetflw: [\":2055\"]\n", "2", "field netflw not found")
	f("apps:\n  - \"ok = 10.0.0.0/8\"\n  - \"erp-db = 10.1.2.0/33 tcp/5432\"\n", "3", `bad CIDR "10.1.2.0/33"`)
	f("retention: forever\n", "1", `bad duration "forever"`)
	f("sampling:\n  router1: 100\n", "2", `"router1" is not an exporter IP address`)
	f("sampling:\n  192.0.2.1: 0\n", "2", "rate for 192.0.2.1 must be a whole number >= 1")
	f("aggregate:\n  top_k: many\n", "2", "cannot unmarshal")
	f("aggregate:\n  top_k: 10\n  checkpoint_interval: 100ms\n", "3", "checkpoint_interval 100ms: use 0 (off) or 1s to 1h")
	f("aggregate:\n  checkpoint_interval: 2h\n", "2", "checkpoint_interval 2h")
	f("aggregate:\n  checkpoint_interval: often\n", "2", `bad duration "often"`)
	f("log_level: info\nmemory_limit: lots\n", "2", `bad size "lots"`)
	f("aggregate:\n  max_memory: -1MiB\n", "2", `bad size "-1MiB"`)
	f("aggregate:\n  drill_downs: -1\n", "2", "drill_downs -1: use a whole number from 0 (off) to 10000")
	f("aggregate:\n  shards: 1\n  drill_downs: lots\n", "3", "drill_downs lots")
	f("store:\n  min_free_space: -1\n", "2", `"-1" is not a number of bytes >= 0`)
	f("store:\n  min_free_space: 1GB\n", "2", `"1GB" is not a number of bytes`)
	f("http: [\n", "1", "")

	_, _, err := parseFlags("serve", []string{"--retention", "soon"}, io.Discard)
	require.ErrorContains(t, err, `--retention: "soon"`)
	_, _, err = parseFlags("serve", []string{"--config", "/nonexistent/tmsd.yaml"}, io.Discard)
	require.ErrorContains(t, err, "/nonexistent/tmsd.yaml")
}

func TestCapabilitiesFollowTheConfig(t *testing.T) {
	f := func(scopeInterface bool, drillDowns DrillDowns, scopes []string, off map[string]string) {
		t.Helper()
		cfg := defaultConfig()
		cfg.Aggregate.ScopeInterface, cfg.Aggregate.DrillDowns = scopeInterface, drillDowns
		c := capabilities(cfg)
		require.Equal(t, scopes, c.Scopes)
		require.Equal(t, off, c.Off)
	}
	f(false, 0, []string{"exporter", "proto"},
		map[string]string{"if": "aggregate.scope_interface", "app": "aggregate.drill_downs", "ip": "aggregate.drill_downs"})
	f(true, 0, []string{"exporter", "proto", "if"}, map[string]string{"app": "aggregate.drill_downs", "ip": "aggregate.drill_downs"})
	f(false, 100, []string{"exporter", "proto", "app", "ip"}, map[string]string{"if": "aggregate.scope_interface"})
	f(true, 1, []string{"exporter", "proto", "if", "app", "ip"}, map[string]string{})
}
