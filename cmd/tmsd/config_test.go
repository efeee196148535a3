package main

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
	f("http: \":8080\"\nnetflw: [\":2055\"]\n", "2: netflw", "unknown key: the configuration takes netflow, sflow")
	f("apps:\n  - \"ok = 10.0.0.0/8\"\n  - \"erp-db = 10.1.2.0/33 tcp/5432\"\n", "3: apps", `app rule "erp-db = 10.1.2.0/33 tcp/5432": bad CIDR "10.1.2.0/33"`)
	f("retention: forever\n", "1: retention", `bad duration "forever"`)
	f("sampling:\n  router1: 100\n", "2: sampling", `"router1" is not an exporter IP address`)
	f("sampling:\n  192.0.2.1: 0\n", "2: sampling", "rate for 192.0.2.1 must be a whole number >= 1")
	f("aggregate:\n  top_k: many\n", "2: aggregate.top_k", `want a whole number, got "many"`)
	f("aggregate:\n  top_k: 10\n  checkpoint_interval: 100ms\n", "3: aggregate.checkpoint_interval", "want 0 (off) or 1s to 1h, got 100ms")
	f("aggregate:\n  checkpoint_interval: 2h\n", "2: aggregate.checkpoint_interval", "got 2h")
	f("aggregate:\n  checkpoint_interval: often\n", "2: aggregate.checkpoint_interval", `bad duration "often"`)
	f("log_level: info\nmemory_limit: lots\n", "2: memory_limit", `bad size "lots"`)
	f("aggregate:\n  max_memory: -1MiB\n", "2: aggregate.max_memory", `bad size "-1MiB"`)
	f("aggregate:\n  drill_downs: -1\n", "2: aggregate.drill_downs", `want a whole number from 0 (off) to 10000, got "-1"`)
	f("aggregate:\n  shards: 1\n  drill_downs: lots\n", "3: aggregate.drill_downs", `got "lots"`)
	f("store:\n  min_free_space: -1\n", "2: store.min_free_space", `"-1" is not a number of bytes >= 0`)
	f("store:\n  min_free_space: 1GB\n", "2: store.min_free_space", `"1GB" is not a number of bytes`)
	f("http: [\n", "1", "")

	_, _, err := parseFlags("serve", []string{"--retention", "soon"}, io.Discard)
	require.ErrorContains(t, err, `--retention: "soon" is not a duration`)
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

// configKeys are the keys of the configuration file, as a user writes them
// ("aggregate.top_k"): the fields of Config and of its sections, down to the
// values their own types decode.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
		name, ft := tag[0], t.Field(i).Type
		if len(tag) > 1 && tag[1] == "inline" {
			keys = append(keys, configKeys(ft, prefix)...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(unmarshalerType) {
			keys = append(keys, configKeys(ft, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

// nest writes value at the dotted key in block YAML, after a comment line
// (so that the value's line is not 1), and returns the value's line.
func nest(key, value string) (body string, line int) {
	parts := strings.Split(key, ".")
	var b strings.Builder
	b.WriteString("# tmsd.yaml\n")
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + value)
		}
		b.WriteString("\n")
	}
	return b.String(), 1 + len(parts)
}

// Every key of the configuration, set to a bad value, stops start-up with
// "FILE:LINE: KEY: reason", KEY as the user wrote it: never a key derived
// from it (rollup.hour_top_k for aggregate.top_k), nor a Go type, nor a
// component's own name for it.
func TestEveryConfigKeyErrorNamesFileLineAndKey(t *testing.T) {
	cases := map[string]struct{ value, reason string }{
		"netflow":                         {`[":2055", bogus]`, `"bogus" is not a listen address HOST:PORT`},
		"sflow":                           {`[":6343:1"]`, `":6343:1" is not a listen address HOST:PORT`},
		"http":                            {`"8080"`, `want a listen address HOST:PORT, such as :8080 or 127.0.0.1:8080, got "8080"`},
		"data":                            {`""`, `want a directory, got ""`},
		"retention":                       {"forever", `bad duration "forever"`},
		"log_level":                       {"loud", `want debug, info, warn or error, got "loud"`},
		"ring_size":                       {"100", "want 1024 to 16777216 records (rounded up to a power of two), got 100"},
		"memory_limit":                    {"1024", "want 0 (none) or at least 64MiB, got 1024"},
		"apps":                            {`["web = 10.0.0.0/33"]`, `app rule "web = 10.0.0.0/33": bad CIDR "10.0.0.0/33"`},
		"sampling":                        {"{192.0.2.1: 0}", `the rate for 192.0.2.1 must be a whole number >= 1, got "0"`},
		"rollup.hour_top_k":               {"-1", "want 0 (2 × aggregate.top_k) or more, got -1"},
		"rollup.day_top_k":                {"many", `want a whole number, got "many"`},
		"rollup.delay":                    {"soon", `bad duration "soon"`},
		"listener.sockets":                {"-1", "want 0 (one per CPU) to 1024, got -1"},
		"listener.receive_buffer":         {"-1", "want 0 (the system's default) to 1073741824 bytes, got -1"},
		"listener.batch_size":             {"0", "want 1 to 1024 datagrams, got 0"},
		"listener.allow":                  {"[10.0.0.1/8]", `"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`},
		"aggregate.shards":                {"-1", "want 0 (one per CPU) to 1024, got -1"},
		"aggregate.top_k":                 {"-5", "want a whole number >= 1, got -5"},
		"aggregate.max_keys":              {"10", "10 must be at least twice aggregate.top_k (1000)"},
		"aggregate.max_memory":            {"1KiB", "want at least 1MiB, got 1024"},
		"aggregate.grace":                 {"-1m", `bad duration "-1m"`},
		"aggregate.max_age":               {"0s", "want a duration > 0, got 0s"},
		"aggregate.checkpoint_interval":   {"2h", "want 0 (off) or 1s to 1h, got 2h"},
		"aggregate.scope_interface":       {"maybe", `want true or false, got "maybe"`},
		"aggregate.drill_downs":           {"20000", `want a whole number from 0 (off) to 10000, got "20000"`},
		"api.read_tokens":                 {"[abc]", `a token must be given by its hash, "sha256:" and 64 hex digits`},
		"api.admin_tokens":                {"[abc]", `a token must be given by its hash, "sha256:" and 64 hex digits`},
		"api.tls_cert":                    {"c.pem", "given without api.tls_key: give both or neither"},
		"api.tls_key":                     {"k.pem", "given without api.tls_cert: give both or neither"},
		"api.max_n":                       {"0", "want a whole number >= 1, got 0"},
		"api.max_range":                   {"0s", "want a duration > 0, got 0s"},
		"decode.max_exporters":            {"0", "want a whole number >= 1, got 0"},
		"decode.max_templates":            {"[1]", "want a whole number, got a list"},
		"decode.max_records_per_datagram": {"-1", "want a whole number >= 1, got -1"},
		"decode.max_field_length":         {"65535", "want 1 to 65534 bytes, got 65535"},
		"decode.template_timeout":         {"500ms", "want whole milliseconds of at least 1s, got 500ms"},
		"decode.hold_time":                {"1us", "want whole milliseconds (0: no hold), got 1µs"},
		"decode.hold_datagrams":           {"-1", "want a whole number >= 0 (0: no hold), got -1"},
		"decode.hold_bytes":               {"0", "want a whole number >= 1, got 0"},
		"decode.state_interval":           {"0s", "want whole milliseconds of at least 1s, got 0s"},
		"store.min_free_space":            {"-1", `"-1" is not a number of bytes >= 0`},
		"store.max_disk":                  {"lots", `bad size "lots"`},
		"geoip.country":                   {"/nonexistent/c.mmdb", `cannot read "/nonexistent/c.mmdb": want an .mmdb file`},
		"geoip.asn":                       {"/nonexistent/a.mmdb", `cannot read "/nonexistent/a.mmdb": want an .mmdb file`},
		"geoip.embedded":                  {"maybe", `want true or false, got "maybe"`},
		"geoip.as_source":                 {"router", `want export or database, got "router"`},
		"geoip.reload_interval":           {"-1m", `bad duration "-1m"`},
		"exporters":                       {`{192.0.2.1: ""}`, "the name of 192.0.2.1 must be a non-empty string"},
		"interfaces":                      {"{192.0.2.1: {0: {name: ae0}}}", `"0" is not an ifIndex (a whole number from 1)`},
		"naming.interface_sources":        {"[static, ldap]", `unknown interface source "ldap" (want static, options, snmp)`},
		"naming.reverse_dns":              {"maybe", `want true or false, got "maybe"`},
		"naming.dns_timeout":              {"0s", "want a duration > 0, got 0s"},
		"snmp.enabled":                    {"maybe", `want true or false, got "maybe"`},
		"snmp.version":                    {"1", `unknown "1" (2c or 3)`},
		"snmp.community":                  {`""`, "must be set for SNMP v2c"},
		"snmp.user":                       {"[x]", "want a string, got a list"},
		"snmp.auth_protocol":              {"[x]", "want a string, got a list"},
		"snmp.auth_passphrase":            {"[x]", "want a string"},
		"snmp.priv_protocol":              {"[x]", "want a string, got a list"},
		"snmp.priv_passphrase":            {"[x]", "want a string"},
		"snmp.port":                       {"70000", "want a whole number"},
		"snmp.agent":                      {"192.0.2.9", "the agent address is per exporter (snmp.exporters.ADDRESS.agent)"},
		"snmp.exporters":                  {"{bogus: {}}", `"bogus" is not an exporter IP address`},
		"snmp.only_listed":                {"maybe", `want true or false, got "maybe"`},
		"snmp.refresh":                    {"0s", "must be positive, got 0s"},
		"snmp.timeout":                    {"0s", "must be positive, got 0s"},
		"snmp.retries":                    {"-1", "must not be negative, got -1"},
		"snmp.workers":                    {"0", "must be at least 1, got 0"},
		"alerts.rules":                    {"[{name: bad, threshold: 8X}]", `invalid alert rule: alerts: rule "bad": threshold: "8X"`},
		"alerts.targets":                  {"[{name: noc, type: pager}]", `notify: target "noc"`},
		"alerts.dashboard_url":            {"tmsd.example", `want an http:// or https:// URL, got "tmsd.example"`},
		"alerts.history_retention":        {"soon", `bad duration "soon"`},
		"api.peers":                       {"[aggregator-2:8080]", `"aggregator-2:8080" is not a peer's base URL, such as http://aggregator-2:8080`},
		"role":                            {"leader", `want all, collector or aggregator, got "leader"`},
		"kafka.brokers":                   {"[bogus]", `"bogus" is not a broker address HOST:PORT`},
		"kafka.topic":                     {`""`, `want a topic name, got ""`},
		"kafka.partitions":                {"-1", "want 0 (this machine's cores) to 100000, got -1"},
		"kafka.replication_factor":        {"40000", "want 0 (the cluster's default) to 32767, got 40000"},
		"kafka.key":                       {"random", `want exporter or flow, got "random"`},
		"kafka.compression":               {"brotli", `want none, gzip, snappy, lz4 or zstd, got "brotli"`},
		"kafka.linger":                    {"2m", "want 0 to 1m, got 2m"},
		"kafka.batch_bytes":               {"10", "want 1KiB to 1GiB, got 10"},
		"kafka.max_buffered":              {"0", "want a whole number >= 1, got 0"},
		"kafka.group":                     {`""`, `want a consumer group name, got ""`},
		"kafka.session_timeout":           {"0s", "want 1s to 30m, got 0s"},
		"kafka.flush_timeout":             {"0s", "want a duration > 0, got 0s"},
		// The tiers of retention, in its per-tier form.
		"retention.minute": {"-1d", `bad duration "-1d"`},
		"retention.hour":   {"0s", `want a duration > 0, got "0s"`},
		"retention.day":    {"soon", `bad duration "soon"`},
	}
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		require.Contains(t, cases, k, "no bad value tried for the key %s", k)
	}
	f := func(body string, line int, key, reason string) {
		t.Helper()
		p := writeConfig(t, body)
		_, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
		require.Error(t, err, body)
		want := fmt.Sprintf("%s:%d: %s: %s", p, line, key, reason)
		require.Equal(t, want, err.Error()[:min(len(err.Error()), len(want))], body)
		require.NotContains(t, err.Error(), "main.", "%s: no Go type in the message", body)
	}
	for key, c := range cases {
		body, line := nest(key, c.value)
		f(body, line, key, c.reason)
	}

	// In flow style, several keys on one line: still the key that is wrong.
	f("aggregate: {shards: 2, top_k: -5}\n", 1, "aggregate.top_k", "want a whole number >= 1, got -5")
	f("listener: {batch_size: 64, sockets: x}\n", 1, "listener.sockets", `want a whole number, got "x"`)
	// A value the user set, not the derived key it would break (rollup.hour_top_k
	// is 2 × top_k) nor the one at its default (max_keys).
	f("# big tables\naggregate:\n  top_k: 150000\n", 3, "aggregate.top_k", "150000 is more than half of aggregate.max_keys (200000)")
	f("aggregate:\n  max_age: 30d\n", 2, "aggregate.max_age", "retention.minute (14d) must be longer than an hour plus rollup.delay (720h6m)")
	f("retention: 1h\n", 1, "retention", "1h must be longer than an hour plus rollup.delay (1h6m)")
	// The key a list's bad element belongs to, at the element's line.
	f("netflow:\n  - \":2055\"\n  - \"0.0.0.0:99999\"\n", 3, "netflow", `"0.0.0.0:99999" is not a listen address HOST:PORT, such as :2055 or 192.0.2.1:2055: port "99999" is not a number from 0 to 65535`)
	f("apps:\n  - \"ok = 10.0.0.0/8\"\n  - \"bad = tcp/http\"\n", 3, "apps", `app rule "bad = tcp/http": bad port "tcp/http"`)
	// Keys the configuration does not have, at any depth.
	f("aggregate:\n  topk: 5\n", 2, "aggregate.topk", "unknown key: aggregate takes shards, top_k, max_keys")
	f("top_k: 5\n", 1, "top_k", "unknown key: the configuration takes netflow, sflow, http")
	f("aggregate:\n  top_k: 10\n  top_k: 20\n", 3, "aggregate.top_k", "given twice (first on line 2)")
	f("aggregate: 5\n", 1, "aggregate", `want a mapping of shards, top_k`)

	// The case: one message, the user's key, no derived key.
	p := writeConfig(t, "aggregate: {top_k: -5}\n")
	_, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
	require.EqualError(t, err, p+":1: aggregate.top_k: want a whole number >= 1, got -5")
	// An app rule's error says "app rule" once.
	p = writeConfig(t, "apps: [\"x = 10.0.0.0/33\"]\n")
	_, _, err = parseFlags("serve", []string{"--config", p}, io.Discard)
	require.EqualError(t, err, p+`:1: apps: app rule "x = 10.0.0.0/33": bad CIDR "10.0.0.0/33"`)
}

// A bad value from a flag is named by the flag, over the file's.
func TestFlagErrorsNameTheFlag(t *testing.T) {
	p := writeConfig(t, "netflow: [\":2055\"]\nhttp: \":8080\"\n")
	f := func(args []string, want string) {
		t.Helper()
		_, _, err := parseFlags("serve", append([]string{"--config", p}, args...), io.Discard)
		require.EqualError(t, err, want, args)
		var ue *usageError
		require.ErrorAs(t, err, &ue, "a flag's bad value is the command line's fault (exit 2)")
	}
	f([]string{"--retention", "soon"}, `serve: --retention: "soon" is not a duration such as 90m, 36h or 14d`)
	f([]string{"--retention", "90m"}, "serve: --retention: 1h30m must be longer than an hour plus rollup.delay (1h6m): minutes must outlive their hour's rollup")
	f([]string{"--netflow", ":2055,nowhere"}, `serve: --netflow: "nowhere" is not a listen address HOST:PORT, such as :2055 or 192.0.2.1:2055: missing port in address`)
	f([]string{"--sflow", "[::1]:x"}, `serve: --sflow: "[::1]:x" is not a listen address HOST:PORT, such as :2055 or 192.0.2.1:2055: port "x" is not a number from 0 to 65535`)
	f([]string{"--http", "8080"}, `serve: --http: want a listen address HOST:PORT, such as :8080 or 127.0.0.1:8080, got "8080"`)
	f([]string{"--data", ""}, `serve: --data: want a directory, got ""`)
	f([]string{"--tls-cert", "c.pem"}, "serve: --tls-cert: given without --tls-key: give both or neither")
}
