package snmp

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
)

// Tests against a real snmpd (snmpd_test.go) wait with require.Eventually up
// to this long; a poll on 127.0.0.1 takes milliseconds.
const settle = 10 * time.Second

// memCache is a Cache in memory; the real one, internal/store, is also tried
// (TestCacheStore).
type memCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemCache() *memCache { return &memCache{m: map[string][]byte{}} }

func (c *memCache) PutMeta(name string, value []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = slices.Clone(value)
	return nil
}

func (c *memCache) GetMeta(name string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[name]
	return slices.Clone(v), ok, nil
}

func (c *memCache) Metas(prefix string, fn func(name string, value []byte) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(c.m)) {
		if strings.HasPrefix(name, prefix) {
			if err := fn(name, c.m[name]); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ Cache = (*store.Store)(nil)

// testConfig polls the agent at agent (v2c public) for the exporter of the
// same address, fast: short timeouts, no retry.
func testConfig(agent netip.AddrPort) Configuration {
	cfg := DefaultConfiguration()
	cfg.Enabled = true
	cfg.Exporters = map[netip.Addr]Credentials{agent.Addr(): {Port: agent.Port()}}
	cfg.Timeout = 300 * time.Millisecond
	cfg.Retries = 0
	return cfg
}

// startPoller starts a poller, stopped when the test ends.
func startPoller(t *testing.T, cfg Configuration, cache Cache) *Poller {
	t.Helper()
	p, err := New(cfg, Dependencies{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Cache: cache})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p
}

// state returns the poller's state of exporter.
func state(t *testing.T, p *Poller, exporter netip.Addr) ExporterState {
	t.Helper()
	for _, s := range p.Exporters() {
		if s.Exporter == exporter {
			return s
		}
	}
	t.Fatalf("exporter %s unknown", exporter)
	return ExporterState{}
}

// waitPolled waits for a good poll of exporter.
func waitPolled(t *testing.T, p *Poller, exporter netip.Addr) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, ok := p.SysName(exporter)
		return ok
	}, settle, 10*time.Millisecond, "no good poll of %s", exporter)
}

// requireTable checks what tableConf(name517) serves.
func requireTable(t *testing.T, p *Poller, exporter netip.Addr, name517 string) {
	t.Helper()
	name, ok := p.SysName(exporter)
	require.True(t, ok)
	require.Equal(t, "seoul-bb1", name)
	want := map[uint32]Interface{
		1:   {Name: "lo"},
		517: {Name: name517, Description: "to KT", SpeedMbps: 100000},
		518: {Name: "xe-0/0/2", Description: "to SKB", SpeedMbps: 10000},
		519: {Name: "ge-0/0/9"}, // ifDescr: no ifXTable row
	}
	for idx, w := range want {
		got, ok := p.Interface(exporter, idx)
		require.True(t, ok, "ifIndex %d", idx)
		require.Equal(t, w, got, "ifIndex %d", idx)
	}
	_, ok = p.Interface(exporter, 2)
	require.False(t, ok, "ifIndex 2 is not served")
	require.Equal(t, len(want), state(t, p, exporter).Interfaces)
}

func TestPollV2c(t *testing.T) {
	addr := startSNMPD(t, tableConf("xe-0/0/1"))
	exporter := addr.Addr()
	p := startPoller(t, testConfig(addr), nil)
	_, ok := p.SysName(exporter)
	require.False(t, ok, "nothing known before the exporter is seen")

	start := time.Now()
	// An IPv4-mapped address (as flow records carry them) is the same exporter.
	p.Seen(netip.AddrFrom16(exporter.As16()))
	waitPolled(t, p, exporter)
	// Promptly: Refresh is an hour, the first poll does not wait for it.
	require.Less(t, time.Since(start), 5*time.Second)
	requireTable(t, p, exporter, "xe-0/0/1")

	s := state(t, p, exporter)
	require.Equal(t, addr, s.Agent)
	require.Equal(t, "seoul-bb1", s.SysName)
	require.False(t, s.LastSuccess.IsZero())
	require.Equal(t, s.LastSuccess, s.LastAttempt)
	require.Zero(t, s.Failures)
	require.Empty(t, s.LastError)
	require.Equal(t, 1.0, testutil.ToFloat64(p.metrics.polls))
	require.Zero(t, testutil.ToFloat64(p.metrics.failures))
	var m dto.Metric
	require.NoError(t, p.metrics.duration.Write(&m))
	require.Equal(t, uint64(1), m.GetHistogram().GetSampleCount())
}

func TestPollV3(t *testing.T) {
	addr := startSNMPD(t, tableConf("xe-0/0/1"))
	// The exporter exports from another address than its agent's.
	exporter := netip.MustParseAddr("192.0.2.1")
	cfg := testConfig(addr)
	v3 := Credentials{Version: "3", User: v3User,
		AuthProtocol: "SHA", AuthPassphrase: v3AuthPass,
		PrivProtocol: "AES", PrivPassphrase: v3PrivPass,
		Port: addr.Port(), Agent: addr.Addr()}
	cfg.Exporters = map[netip.Addr]Credentials{exporter: v3}
	p := startPoller(t, cfg, nil)
	p.Seen(exporter)
	waitPolled(t, p, exporter)
	requireTable(t, p, exporter, "xe-0/0/1")
	require.Equal(t, addr, state(t, p, exporter).Agent)

	// The wrong passphrase, or too low a security level for `rouser priv`,
	// is an error, not an empty table.
	for name, c := range map[string]Credentials{
		"wrong auth pass": {Version: "3", User: v3User, AuthProtocol: "SHA", AuthPassphrase: "not-the-pass",
			PrivProtocol: "AES", PrivPassphrase: v3PrivPass, Port: addr.Port(), Agent: addr.Addr()},
		"authNoPriv": {Version: "3", User: v3User, AuthProtocol: "SHA", AuthPassphrase: v3AuthPass,
			Port: addr.Port(), Agent: addr.Addr()},
		"unknown user": {Version: "3", User: "nobody", AuthProtocol: "SHA", AuthPassphrase: v3AuthPass,
			PrivProtocol: "AES", PrivPassphrase: v3PrivPass, Port: addr.Port(), Agent: addr.Addr()},
	} {
		tgt, err := c.resolve(exporter)
		require.NoError(t, err, name)
		_, err = p.snmpPoll(context.Background(), tgt)
		require.ErrorIs(t, err, ErrPoll, name)
	}
}

func TestRename(t *testing.T) {
	a := newAgent(t, tableConf("xe-0/0/1"))
	exporter := a.Addr.Addr()
	cfg := testConfig(a.Addr)
	cfg.Refresh = 200 * time.Millisecond
	p := startPoller(t, cfg, nil)
	p.Seen(exporter)
	waitPolled(t, p, exporter)
	requireTable(t, p, exporter, "xe-0/0/1")

	a.Restart(tableConf("xe-0/0/1-renamed"))
	require.Eventually(t, func() bool {
		i, _ := p.Interface(exporter, 517)
		return i.Name == "xe-0/0/1-renamed"
	}, settle, 20*time.Millisecond)
	requireTable(t, p, exporter, "xe-0/0/1-renamed")
}

// requireFailing waits for at least two failed polls in a row of exporter
// and checks that they kept its names.
func requireFailing(t *testing.T, p *Poller, exporter netip.Addr) ExporterState {
	t.Helper()
	before := state(t, p, exporter)
	require.Eventually(t, func() bool { return state(t, p, exporter).Streak >= 2 }, settle, 20*time.Millisecond)
	s := state(t, p, exporter)
	require.GreaterOrEqual(t, s.Failures, uint64(2))
	require.NotEmpty(t, s.LastError)
	require.Equal(t, before.LastSuccess, s.LastSuccess)
	require.True(t, s.LastAttempt.After(s.LastSuccess))
	require.GreaterOrEqual(t, testutil.ToFloat64(p.metrics.failures), 2.0)
	requireTable(t, p, exporter, "xe-0/0/1")
	return s
}

func TestUnreachableKeepsNames(t *testing.T) {
	a := newAgent(t, tableConf("xe-0/0/1"))
	exporter := a.Addr.Addr()
	cfg := testConfig(a.Addr)
	cfg.Refresh = 200 * time.Millisecond
	cfg.Timeout = 200 * time.Millisecond
	p := startPoller(t, cfg, nil)
	p.Seen(exporter)
	waitPolled(t, p, exporter)

	a.Stop()
	requireFailing(t, p, exporter)
	_, err := p.snmpPoll(context.Background(), p.targetOf(exporter))
	require.ErrorIs(t, err, ErrPoll)

	// Back, it is polled again and the streak ends.
	a.Restart(tableConf("xe-0/0/1"))
	require.Eventually(t, func() bool { return state(t, p, exporter).Streak == 0 }, settle, 20*time.Millisecond)
	requireTable(t, p, exporter, "xe-0/0/1")
}

func TestWrongCommunity(t *testing.T) {
	a := newAgent(t, tableConf("xe-0/0/1"))
	exporter := a.Addr.Addr()
	cfg := testConfig(a.Addr)
	cfg.Refresh = 200 * time.Millisecond
	cfg.Timeout = 200 * time.Millisecond
	cache := newMemCache()
	p := startPoller(t, cfg, cache)
	p.Seen(exporter)
	waitPolled(t, p, exporter)
	cached, ok, err := cache.GetMeta("snmp/" + exporter.String())
	require.NoError(t, err)
	require.True(t, ok)

	// The agent now wants another community: snmpd drops our requests
	// unanswered, as agents do (no error reply), so they time out.
	a.Access = strings.Replace(accessConf, "rocommunity public", "rocommunity private", 1)
	a.Restart(tableConf("xe-0/0/1"))
	s := requireFailing(t, p, exporter)
	require.Contains(t, s.LastError, "timeout")
	// Nor is the cache overwritten with the failure.
	now, _, _ := cache.GetMeta("snmp/" + exporter.String())
	require.Equal(t, cached, now)
}

func TestSeenNeverBlocks(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Enabled = true
	p, err := New(cfg, Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	// Not started: nothing takes from the queue (and nothing is polled: the
	// addresses are 127/8 anyway).
	addr := func(i int) netip.Addr {
		return netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	for i := range seenQueue {
		p.Seen(addr(i))
	}
	require.Len(t, p.seen, seenQueue)

	const n = 1_000_000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			p.Seen(addr(seenQueue + i%(n/2))) // each new address twice
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Seen blocked (or takes over 30 µs a call)")
	}
	require.Equal(t, float64(n), testutil.ToFloat64(p.metrics.seenDropped))
	require.Len(t, p.seen, seenQueue)

	// A flood of flows from one new exporter queues it once.
	p, err = New(cfg, Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for range 1000 {
		p.Seen(addr(1))
	}
	require.Len(t, p.seen, 1)
	require.Zero(t, testutil.ToFloat64(p.metrics.seenDropped))

	// A known exporter costs no allocation.
	known := netip.MustParseAddr("192.0.2.1")
	p.add([]netip.Addr{known}, time.Now())
	require.Zero(t, testing.AllocsPerRun(1000, func() { p.Seen(known) }))
	require.Equal(t, flowing, (*p.exporters.Load())[known.As16()].active.Load())
}

func TestDisabled(t *testing.T) {
	p, err := New(DefaultConfiguration(), Dependencies{})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	p.Seen(netip.MustParseAddr("127.0.0.1"))
	require.Empty(t, p.seen)
	require.Empty(t, p.Exporters())
	require.NoError(t, p.Stop())
}

// testCache polls with one poller into cache, then checks that a second one
// on the same cache knows the names before any poll (and polls nothing while
// its exporter sends no flow).
func testCache(t *testing.T, open func() Cache, reopen func() Cache) {
	a := newAgent(t, tableConf("xe-0/0/1"))
	exporter := a.Addr.Addr()
	cfg := testConfig(a.Addr)
	first := startPoller(t, cfg, open())
	first.Seen(exporter)
	waitPolled(t, first, exporter)
	polled := state(t, first, exporter)
	require.NoError(t, first.Stop())
	a.Stop() // a poll now would fail: the names below are the cache's

	second := startPoller(t, cfg, reopen())
	requireTable(t, second, exporter, "xe-0/0/1")
	s := state(t, second, exporter)
	require.True(t, polled.LastSuccess.Equal(s.LastSuccess), "%s != %s", polled.LastSuccess, s.LastSuccess)
	require.True(t, s.LastAttempt.IsZero(), "not polled since start")
	require.Zero(t, testutil.ToFloat64(second.metrics.polls))
}

func TestCache(t *testing.T) {
	cache := newMemCache()
	testCache(t, func() Cache { return cache }, func() Cache { return cache })
	// Unreadable entries are skipped, not fatal.
	require.NoError(t, cache.PutMeta("snmp/192.0.2.9", []byte(`{"v":99}`)))
	require.NoError(t, cache.PutMeta("snmp/not-an-address", []byte(`{}`)))
	p := startPoller(t, testConfig(netip.MustParseAddrPort("127.0.0.1:161")), cache)
	require.Len(t, p.Exporters(), 1)
}

// TestCacheStore runs testCache on the real store, closed and reopened in
// between as at a restart.
func TestCacheStore(t *testing.T) {
	cfg := store.DefaultConfiguration()
	cfg.Path = t.TempDir()
	cfg.MinFreeSpace = 0
	open := func() Cache {
		s, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		require.NoError(t, s.Start())
		t.Cleanup(func() { require.NoError(t, s.Stop()) })
		return s
	}
	var first *store.Store
	testCache(t, func() Cache {
		first = open().(*store.Store)
		return first
	}, func() Cache {
		require.NoError(t, first.Stop())
		return open()
	})
}

// BenchmarkSeen is the ingest path's cost for a known exporter.
func BenchmarkSeen(b *testing.B) {
	cfg := DefaultConfiguration()
	cfg.Enabled = true
	p, err := New(cfg, Dependencies{Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	known := netip.MustParseAddr("192.0.2.1")
	p.add([]netip.Addr{known}, time.Now())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Seen(known)
		}
	})
}
