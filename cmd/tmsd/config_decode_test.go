package main

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
)

func TestDecodeConfig(t *testing.T) {
	p := writeConfig(t, `
decode:
  max_exporters: 500
  max_templates: 64
  max_records_per_datagram: 100
  max_field_length: 512
  template_timeout: 2h
  hold_time: 5s
  hold_datagrams: 10
  hold_bytes: 65536
  state_interval: 30s
`)
	cfg, _, err := parseFlags("serve", []string{"--config", p}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, DecodeConfig{
		MaxExporters: 500, MaxTemplates: 64, MaxRecordsPerDatagram: 100, MaxFieldLength: 512,
		TemplateTimeout: Duration(2 * time.Hour), HoldTime: Duration(5 * time.Second), HoldDatagrams: 10,
		HoldBytes: 65536, StateInterval: Duration(30 * time.Second),
	}, cfg.Decode)
	d := cfg.Decode.decoder(nil)
	require.Equal(t, decode.Configuration{
		MaxExporters: 500, MaxTemplatesPerExporter: 64, MaxRecordsPerDatagram: 100, MaxFieldLength: 512,
		TemplateTimeout: 2 * time.Hour, HoldTime: 5 * time.Second, HoldDatagrams: 10, HoldBytes: 65536,
	}, d)
	_, err = decode.New(d)
	require.NoError(t, err)

	// Keys not given keep their defaults; the defaults are the decoder's.
	p = writeConfig(t, "decode:\n  hold_datagrams: 0\n")
	cfg, _, err = parseFlags("serve", []string{"--config", p}, io.Discard)
	require.NoError(t, err)
	want := defaultDecodeConfig()
	want.HoldDatagrams = 0
	require.Equal(t, want, cfg.Decode)
	d = cfg.Decode.decoder(nil)
	require.Equal(t, -1, d.HoldDatagrams, "0 disables holding")
	d = defaultDecodeConfig().decoder(nil)
	require.Equal(t, decode.DefaultConfiguration(), d)
	cfg.Decode.HoldTime = 0
	require.Equal(t, -1, cfg.Decode.decoder(nil).HoldDatagrams, "so does a hold_time of 0")

	// GET /api/v1/config shows the section with the file's keys.
	eff, err := effectiveConfig(defaultConfig())
	require.NoError(t, err)
	require.Equal(t, map[string]any{
		"max_exporters": 10000, "max_templates": 1024, "max_records_per_datagram": 4096, "max_field_length": 4096,
		"template_timeout": "1h0m0s", "hold_time": "2s", "hold_datagrams": 1000, "hold_bytes": 2097152, "state_interval": "5s",
	}, eff["decode"])
}

func TestBadDecodeConfigNamesFileLineAndReason(t *testing.T) {
	f := func(body, wantLine, wantReason string) { requireConfigError(t, body, wantLine, wantReason) }
	f("decode: 5\n", "1: decode", "want a mapping of max_exporters, max_templates")
	f("decode:\n  max_exporters: 10\n  max_exporter: 10\n", "3: decode.max_exporter", "unknown key: decode takes max_exporters")
	f("decode:\n  max_exporters: 0\n", "2: decode.max_exporters", "want a whole number >= 1, got 0")
	f("decode:\n  max_templates: many\n", "2: decode.max_templates", `want a whole number, got "many"`)
	f("decode:\n  max_templates: [1]\n", "2: decode.max_templates", "want a whole number, got a list")
	f("decode:\n  max_records_per_datagram: -1\n", "2: decode.max_records_per_datagram", "want a whole number >= 1, got -1")
	f("decode:\n  max_field_length: 65535\n", "2: decode.max_field_length", "want 1 to 65534 bytes, got 65535")
	f("decode:\n\n  template_timeout: soon\n", "3: decode.template_timeout", `bad duration "soon"`)
	f("decode:\n  template_timeout: 500ms\n", "2: decode.template_timeout", "want whole milliseconds of at least 1s, got 500ms")
	f("decode:\n  hold_time: 1us\n", "2: decode.hold_time", "want whole milliseconds")
	f("decode:\n  hold_datagrams: -1\n", "2: decode.hold_datagrams", "want a whole number >= 0 (0: no hold), got -1")
	f("decode:\n  hold_bytes: 0\n", "2: decode.hold_bytes", "want a whole number >= 1, got 0")
	f("decode:\n  state_interval: 0s\n", "2: decode.state_interval", "want whole milliseconds of at least 1s")
}
