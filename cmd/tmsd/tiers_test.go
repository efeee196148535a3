package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
)

const day = 24 * time.Hour

func TestRetentionForms(t *testing.T) {
	f := func(body string, minute, hour, dayR time.Duration) {
		t.Helper()
		cfg, _, err := parseFlags("serve", []string{"--config", writeConfig(t, body)}, io.Discard)
		require.NoError(t, err, body)
		require.Equal(t, Duration(minute), cfg.Retention.Minute, body)
		require.Equal(t, Duration(hour), cfg.Retention.Hour, body)
		require.Equal(t, Duration(dayR), cfg.Retention.Day, body)
	}
	f("http: \":8080\"\n", 14*day, 400*day, 1825*day)
	f("retention: 30d\n", 30*day, 400*day, 1825*day)
	f("retention:\n  minute: 7d\n  hour: 90d\n  day: 3650d\n", 7*day, 90*day, 3650*day)
	f("retention: {hour: 800d}\n", 14*day, 800*day, 1825*day)

	cfg, _, err := parseFlags("serve", []string{"--config", writeConfig(t, "retention: {minute: 3d, hour: 30d}\n"), "--retention", "5d"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, Duration(5*day), cfg.Retention.Minute, "the flag sets the minute tier")
	require.Equal(t, Duration(30*day), cfg.Retention.Hour)
}

func TestStoreMaxDisk(t *testing.T) {
	f := func(v string, want int64) {
		t.Helper()
		cfg, _, err := parseFlags("serve", []string{"--config", writeConfig(t, "store:\n  max_disk: "+v+"\n")}, io.Discard)
		require.NoError(t, err, v)
		require.Equal(t, ByteSize(want), cfg.Store.MaxDisk, v)
		require.Equal(t, want, cfg.rollupConfiguration().MaxDisk, v)
	}
	f("50GiB", 50<<30)
	f("500MB", 500e6)
	f("1.5TB", 1.5e12)
	f("104857600", 100<<20)
	f("100MB", 100e6)
	f("0", 0)
}

func TestRollupDefaultsFollowTheAggregator(t *testing.T) {
	cfg, _, err := parseFlags("serve", []string{"--config", writeConfig(t, "aggregate:\n  top_k: 300\n  grace: 2m\n  max_age: 30m\n")}, io.Discard)
	require.NoError(t, err)
	rc := cfg.rollupConfiguration()
	require.Equal(t, 600, rc.HourTopK)
	require.Equal(t, 600, rc.DayTopK)
	require.Equal(t, 37*time.Minute, rc.Delay, "grace + max_age + 5m")
	require.Zero(t, rc.MaxDisk)

	cfg, _, err = parseFlags("serve", []string{"--config", writeConfig(t, "rollup:\n  hour_top_k: 1500\n  day_top_k: 4000\n  delay: 2h\n")}, io.Discard)
	require.NoError(t, err)
	rc = cfg.rollupConfiguration()
	require.Equal(t, 1500, rc.HourTopK)
	require.Equal(t, 4000, rc.DayTopK)
	require.Equal(t, 2*time.Hour, rc.Delay)
}

func TestBadTierConfigNamesFileLineAndReason(t *testing.T) {
	f := func(body, wantLine, wantReason string) { requireConfigError(t, body, wantLine, wantReason) }
	f("retention:\n  minute: 14d\n  week: 3d\n", "3: retention.week", "unknown key: retention takes minute, hour, day")
	f("retention:\n  hour: 5y\n", "2: retention.hour", `bad duration "5y"`)
	f("retention: 0s\n", "1: retention", `want a duration > 0, got "0s"`)
	f("retention: [14d]\n", "1: retention", "want a duration (the minute tier) or a mapping")
	f("store:\n  max_disk: lots\n", "2: store.max_disk", `bad size "lots"`)
	f("store:\n  max_disk: -5GB\n", "2: store.max_disk", `bad size "-5GB"`)
	f("store:\n  min_free_space: 0\n  max_disk: 50MB\n", "3: store.max_disk", "50MB is too small: Badger's working files "+
		"(memtable logs, level-0 tables, value log file) may take 69.8 MiB however little the store holds, "+
		"and the cap evicts down to 90% of itself; the smallest cap that works is 82MB")
	f("store:\n  max_disk: 81000000\n", "2: store.max_disk", "81MB is too small")
	f("store:\n  max_size: 5GB\n", "2: store.max_size", "unknown key: store takes min_free_space, max_disk")
	f("rollup:\n  hour_k: 5\n", "2: rollup.hour_k", "unknown key: rollup takes hour_top_k, day_top_k, delay")
	f("rollup:\n  hour_top_k: many\n", "2: rollup.hour_top_k", `want a whole number, got "many"`)
	f("rollup:\n  delay: soon\n", "2: rollup.delay", `bad duration "soon"`)
	f("aggregate:\n  top_k: 1000\nrollup:\n  hour_top_k: 500\n", "4: rollup.hour_top_k", "500 must be at least aggregate.top_k (1000)")
	f("rollup:\n  hour_top_k: 3000\n  day_top_k: 2500\n", "3: rollup.day_top_k", "2500 must be at least rollup.hour_top_k (3000)")
	f("aggregate:\n  grace: 5m\nrollup:\n  delay: 3m\n", "4: rollup.delay", "3m must be at least aggregate.grace (5m)")
	f("retention:\n  minute: 2h\n", "2: retention.minute", "2h must be longer than an hour plus rollup.delay (1h6m)")
	f("retention: 1h\n", "1: retention", "1h must be longer")
	f("retention:\n  hour: 1d\n", "2: retention.hour", "1d must be longer than a day plus rollup.delay")

	_, _, err := parseFlags("serve", []string{"--config", writeConfig(t, "retention: 14d\n"), "--retention", "90m"}, io.Discard)
	require.ErrorContains(t, err, "--retention: 1h30m must be longer than an hour plus rollup.delay")
	require.NotContains(t, err.Error(), "tmsd.yaml", "the flag, not the file, set it")
}

func TestImportAcceptsAShortMinuteRetention(t *testing.T) {
	_, _, err := parseFlags("import", []string{"--retention", "1m"}, io.Discard)
	require.NoError(t, err, "import writes minutes only; serve checks the retentions")
}

// The pipeline writes minutes through the rollups' tracker, rolls them up, and
// the API answers from the hour tier with the minutes' exact figures.
func TestPipelineAnswersFromRolledUpHours(t *testing.T) {
	h0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = nil, nil, "127.0.0.1:0", t.TempDir()
	cfg.Retention = Retention{Minute: Duration(36500 * day), Hour: Duration(36500 * day), Day: Duration(36500 * day)}
	var now atomic.Int64
	now.Store(h0.Add(5 * time.Hour).UnixNano())
	p, err := newPipeline(cfg, newLogger("warn"), func() time.Time { return time.Unix(0, now.Load()).UTC() })
	require.NoError(t, err)
	require.NoError(t, p.startServe(cfg))
	t.Cleanup(func() { require.NoError(t, p.stop()) })

	exporter := flow.AddrFrom(netip.MustParseAddr("192.0.2.1"))
	var recs []flow.Record
	var want uint64 // bytes in [h0+17m, h0+3h)
	for m := range 3 * 60 {
		ms := h0.Add(time.Duration(m)*time.Minute + 30*time.Second).UnixMilli()
		for i, src := range []string{"10.0.0.1", "10.0.0.2"} {
			b := uint64(1000*(i+1) + m)
			recs = append(recs, flow.Record{Exporter: exporter, SrcAddr: flow.AddrFrom(netip.MustParseAddr(src)),
				DstAddr: flow.AddrFrom(netip.MustParseAddr("10.9.9.9")), Bytes: b, Packets: 1, End: ms, Received: ms,
				SrcPort: 40000, DstPort: 443, Proto: 6, SamplingRate: 1})
			if m >= 17 {
				want += b
			}
		}
	}
	pushAll(p.ring, recs)
	require.NoError(t, p.agg.Sync(10*time.Second))
	require.NoError(t, p.agg.FlushAll())
	require.NoError(t, p.rollup.Pass())
	require.Equal(t, h0.Add(3*time.Hour), p.rollup.Rolled(store.TierHour))

	var top struct {
		Tiers []string `json:"tiers"`
		Exact bool     `json:"exact"`
		Total struct {
			Bytes uint64 `json:"bytes"`
		} `json:"total"`
		Rows []struct {
			Key string `json:"key"`
		} `json:"rows"`
	}
	u := fmt.Sprintf("http://%s/api/v1/top?by=srcip&from=%s&to=%s", p.api.Addr(), h0.Add(17*time.Minute).Format(time.RFC3339), h0.Add(3*time.Hour).Format(time.RFC3339))
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&top))
	require.Equal(t, []string{"minute", "hour"}, top.Tiers)
	require.True(t, top.Exact)
	require.Equal(t, want, top.Total.Bytes)
	require.Len(t, top.Rows, 2)
	require.Equal(t, "10.0.0.2", top.Rows[0].Key)
}
