package snmp

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// fakeAgents stands in for the SNMP poll in the scheduler tests (the SNMP
// side is the real snmpd's tests): it counts polls per exporter, can fail
// them, or hold them to observe the concurrency bound.
type fakeAgents struct {
	mu       sync.Mutex
	polls    map[netip.Addr]int
	fail     bool
	hold     chan struct{} // nil: answer at once
	inflight int
	peak     int
}

func (f *fakeAgents) poll(ctx context.Context, t target) (*snapshot, error) {
	f.mu.Lock()
	f.polls[t.exporter]++
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	fail, hold := f.fail, f.hold
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fail {
		return nil, ErrPoll
	}
	return &snapshot{sysName: "r-" + t.exporter.String(), ifaces: map[uint32]Interface{1: {Name: "et-0/0/0"}}}, nil
}

func (f *fakeAgents) count(a netip.Addr) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls[a]
}

// schedPoller is a started poller on fake agents, in a synctest bubble: its
// Clock is time.Now, the bubble's fake time.
func schedPoller(t *testing.T, cfg Configuration, cache Cache) (*Poller, *fakeAgents) {
	t.Helper()
	p, err := New(cfg, Dependencies{Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler), Cache: cache})
	require.NoError(t, err)
	f := &fakeAgents{polls: map[netip.Addr]int{}}
	p.poll = f.poll
	require.NoError(t, p.Start())
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p, f
}

func schedConfig() Configuration {
	cfg := DefaultConfiguration()
	cfg.Enabled = true
	cfg.Refresh = time.Minute
	cfg.Expire = 10 * time.Minute
	return cfg
}

func TestScheduleRefreshAndExpire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := schedPoller(t, schedConfig(), nil)
		x := netip.MustParseAddr("192.0.2.1")

		p.Seen(x)
		synctest.Wait()
		require.Equal(t, 1, f.count(x), "a new exporter is polled at once")
		name, ok := p.SysName(x)
		require.True(t, ok)
		require.Equal(t, "r-192.0.2.1", name)

		// Flowing, it is polled every Refresh.
		for i := 2; i <= 5; i++ {
			time.Sleep(time.Minute - time.Second)
			p.Seen(x)
			synctest.Wait()
			require.Equal(t, i-1, f.count(x), "not before Refresh")
			time.Sleep(time.Second)
			synctest.Wait()
			require.Equal(t, i, f.count(x), "at Refresh")
		}

		// Failures keep the names and count.
		f.mu.Lock()
		f.fail = true
		f.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, 6, f.count(x))
		s := state(t, p, x)
		require.Equal(t, uint64(1), s.Failures)
		require.Equal(t, uint64(1), s.Streak)
		require.Equal(t, "r-192.0.2.1", s.SysName)

		// No flow for Expire (give or take a Refresh): forgotten, not polled.
		time.Sleep(12 * time.Minute)
		synctest.Wait()
		require.Empty(t, p.Exporters())
		_, ok = p.SysName(x)
		require.False(t, ok)
		polls := f.count(x)
		time.Sleep(time.Hour)
		synctest.Wait()
		require.Equal(t, polls, f.count(x))

		// Seen again, it is new again.
		f.mu.Lock()
		f.fail = false
		f.mu.Unlock()
		p.Seen(x)
		synctest.Wait()
		require.Equal(t, polls+1, f.count(x))
		require.Equal(t, uint64(0), state(t, p, x).Failures)
	})
}

func TestScheduleFailureRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := schedConfig()
		cfg.Refresh = time.Hour
		cfg.Expire = 24 * time.Hour
		p, f := schedPoller(t, cfg, nil)
		f.fail = true
		x := netip.MustParseAddr("192.0.2.1")
		p.Seen(x)
		synctest.Wait()
		require.Equal(t, 1, f.count(x))
		// A failure is retried after failureRetry, not a whole Refresh.
		time.Sleep(failureRetry)
		synctest.Wait()
		require.Equal(t, 2, f.count(x))
		f.mu.Lock()
		f.fail = false
		f.mu.Unlock()
		time.Sleep(failureRetry)
		synctest.Wait()
		require.Equal(t, 3, f.count(x))
		require.Zero(t, state(t, p, x).Streak)
		// Back to Refresh.
		time.Sleep(failureRetry)
		synctest.Wait()
		require.Equal(t, 3, f.count(x))
	})
}

func TestScheduleWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := schedConfig()
		cfg.Workers = 2
		p, f := schedPoller(t, cfg, nil)
		f.hold = make(chan struct{})
		var xs []netip.Addr
		for i := range 5 {
			x := netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i)})
			xs = append(xs, x)
			p.Seen(x)
		}
		synctest.Wait()
		f.mu.Lock()
		require.Equal(t, 2, f.inflight, "Workers polls at a time")
		f.mu.Unlock()
		close(f.hold)
		synctest.Wait()
		for _, x := range xs {
			require.Equal(t, 1, f.count(x))
		}
		require.Equal(t, 2, f.peak)
		require.Len(t, p.Exporters(), 5)
	})
}

func TestScheduleCachedExporter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cache := newMemCache()
		x, y := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		for _, a := range []netip.Addr{x, y} {
			b, err := encodeEntry(&snapshot{sysName: "cached", lastSuccess: time.Now().Add(-30 * time.Second),
				ifaces: map[uint32]Interface{7: {Name: "ge-0/0/7", Description: "to LGU+", SpeedMbps: 1000}}})
			require.NoError(t, err)
			require.NoError(t, cache.PutMeta("snmp/"+a.String(), b))
		}
		// An entry older than Expire is not loaded.
		old, err := encodeEntry(&snapshot{sysName: "old", lastSuccess: time.Now().Add(-11 * time.Minute)})
		require.NoError(t, err)
		require.NoError(t, cache.PutMeta("snmp/192.0.2.3", old))

		p, f := schedPoller(t, schedConfig(), cache)
		require.Len(t, p.Exporters(), 2)
		i, ok := p.Interface(x, 7)
		require.True(t, ok)
		require.Equal(t, Interface{Name: "ge-0/0/7", Description: "to LGU+", SpeedMbps: 1000}, i)

		// Cached exporters are not polled until they send flows...
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		require.Zero(t, f.count(x))
		// ...then when due (their cached poll is older than Refresh).
		p.Seen(x)
		synctest.Wait()
		require.Equal(t, 1, f.count(x))
		name, _ := p.SysName(x)
		require.Equal(t, "r-192.0.2.1", name)
		// y, never seen, is forgotten after Expire; x, flowing, stays.
		for range 10 {
			time.Sleep(time.Minute)
			p.Seen(x)
		}
		synctest.Wait()
		require.Zero(t, f.count(y))
		_, ok = p.SysName(y)
		require.False(t, ok)
		require.Len(t, p.Exporters(), 1)
		require.Equal(t, x, p.Exporters()[0].Exporter)
	})
}

func TestScheduleOnlyListed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := schedConfig()
		x, y := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		cfg.OnlyListed = true
		cfg.Exporters = map[netip.Addr]Credentials{x: {}}
		p, f := schedPoller(t, cfg, nil)
		p.Seen(x)
		p.Seen(y)
		synctest.Wait()
		require.Equal(t, 1, f.count(x))
		require.Zero(t, f.count(y))
		require.Len(t, p.Exporters(), 1)
	})
}
