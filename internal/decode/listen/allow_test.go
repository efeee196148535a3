package listen

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// dialFrom sends from a given loopback address: 127.0.0.0/8 is all local on
// Linux, so each of 127.0.0.x is a distinct exporter.
func dialFrom(t *testing.T, src string, to net.Addr) *net.UDPConn {
	t.Helper()
	laddr := &net.UDPAddr{IP: net.ParseIP(src)}
	c, err := net.DialUDP("udp", laddr, to.(*net.UDPAddr))
	if err != nil {
		t.Skipf("cannot send from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAllowListDropsOtherSources(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			h := &collector{}
			reg := prometheus.NewRegistry()
			var logs bytes.Buffer
			offenders := NewOffenders(4)
			cfg := testConfig("127.0.0.1:0", 1)
			cfg.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.8/30")}
			l := startListener(t, cfg, Dependencies{Handler: h, Registry: reg, Name: "netflow", Offenders: offenders,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))}, func(l *Listener) { l.noBatch = single })
			to := l.Addrs()[0]

			// 127.0.0.2 sends 3, 127.0.0.3 sends 1, both refused; .1 and .9 are allowed.
			sends := []struct {
				src   string
				count int
			}{{"127.0.0.1", 2}, {"127.0.0.2", 3}, {"127.0.0.9", 1}, {"127.0.0.3", 1}}
			var allowedBytes int
			for _, s := range sends {
				c := dialFrom(t, s.src, to)
				for i := range s.count {
					p := fmt.Sprintf("from %s #%d", s.src, i)
					_, err := c.Write([]byte(p))
					require.NoError(t, err)
					if s.src == "127.0.0.1" || s.src == "127.0.0.9" {
						allowedBytes += len(p)
					}
				}
			}
			require.Eventually(t, func() bool {
				s := l.Stats()
				return s.Rejected == 4 && s.Datagrams == 3
			}, 10*time.Second, time.Millisecond, "stats: %+v", l.Stats())

			got := map[netip.Addr]int{}
			for _, r := range h.all() {
				got[r.src.Addr()]++
			}
			require.Equal(t, map[netip.Addr]int{netip.MustParseAddr("127.0.0.1"): 2, netip.MustParseAddr("127.0.0.9"): 1}, got)
			require.EqualValues(t, allowedBytes, l.Stats().Bytes, "refused datagrams' bytes are not counted as received")

			total, top := offenders.Snapshot()
			require.EqualValues(t, 4, total)
			require.Len(t, top, 2)
			require.Equal(t, netip.MustParseAddr("127.0.0.2"), top[0].Source)
			require.EqualValues(t, 3, top[0].Datagrams)
			require.Equal(t, netip.MustParseAddr("127.0.0.3"), top[1].Source)
			require.EqualValues(t, 1, top[1].Datagrams)
			require.False(t, top[0].LastSeen.IsZero())

			values := gather(t, reg)
			require.EqualValues(t, 4, values[`tmsd_rejected_datagrams_total{listener="netflow"}`])
			require.EqualValues(t, 3, values[`tmsd_listener_datagrams_total{listener="netflow"}`])
			require.Equal(t, 1, bytes.Count(logs.Bytes(), []byte("outside the allow-list")), "logged once per minute: %s", logs.String())
		})
	}
}

func TestNoAllowListTakesEveryone(t *testing.T) {
	h := &collector{}
	l := startListener(t, testConfig("127.0.0.1:0", 1), Dependencies{Handler: h, Offenders: NewOffenders(0)})
	c := dialFrom(t, "127.0.0.5", l.Addrs()[0])
	_, err := c.Write([]byte("x"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.len() == 1 }, 10*time.Second, time.Millisecond)
	require.Zero(t, l.Stats().Rejected)
}

func TestNormalizeAllow(t *testing.T) {
	f := func(in []string, want []string, wantErr string) {
		t.Helper()
		var ps []netip.Prefix
		for _, s := range in {
			ps = append(ps, netip.MustParsePrefix(s))
		}
		got, err := normalizeAllow(ps)
		if wantErr != "" {
			require.ErrorContains(t, err, wantErr)
			return
		}
		require.NoError(t, err)
		var gs []string
		for _, p := range got {
			gs = append(gs, p.String())
		}
		require.Equal(t, want, gs)
	}
	f([]string{"10.1.2.3/8", "10.0.0.0/8", "2001:db8::1/32"}, []string{"10.0.0.0/8", "2001:db8::/32"}, "")
	f([]string{"::ffff:192.0.2.0/120"}, []string{"192.0.2.0/24"}, "")
	f([]string{"::ffff:0.0.0.0/64"}, nil, "IPv4-mapped")
	_, err := normalizeAllow([]netip.Prefix{{}})
	require.ErrorContains(t, err, "invalid prefix")
}

func TestAllowed(t *testing.T) {
	list, err := normalizeAllow([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")})
	require.NoError(t, err)
	f := func(addr string, want bool) {
		t.Helper()
		require.Equal(t, want, allowed(list, netip.MustParseAddr(addr)), addr)
	}
	f("192.0.2.77", true)
	f("192.0.3.1", false)
	f("2001:db8::5", true)
	f("fe80::1%eth0", false)
	f("2001:db8::5%eth0", true) // zones are dropped before matching
	f("2001:db9::5", false)
}

// The filter runs per datagram on the reader goroutine: it must not allocate,
// neither for allowed nor for refused sources, once the offenders table is full.
func TestFilterDoesNotAllocate(t *testing.T) {
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	l, err := New(cfg, Dependencies{Handler: &collector{}, Offenders: NewOffenders(8)})
	require.NoError(t, err)
	l.noBatch = true
	r := newReader(l, nil)
	batch := make([]Datagram, 0, cfg.BatchSize)
	payload := []byte("datagram")
	now := time.Now()
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		batch = batch[:0]
		for j := 0; j < 16; j++ {
			i++
			src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}) // many sources: the table turns over
			if j%2 == 0 {
				src = netip.AddrFrom4([4]byte{192, 0, 2, byte(j)})
			}
			batch = append(batch, Datagram{Src: netip.AddrPortFrom(src, 2055), Payload: payload})
		}
		kept, n := r.filter(now, batch, uint64(16*len(payload)))
		if len(kept) != 8 || n != uint64(8*len(payload)) {
			panic(fmt.Sprintf("kept %d datagrams, %d bytes", len(kept), n))
		}
	})
	require.Zero(t, allocs)
}

func TestOffendersSpaceSaving(t *testing.T) {
	o := NewOffenders(16)
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	heavy := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::66")}
	// 10,000 one-off spoofed sources interleaved with two heavy ones, each
	// sending more than total/k (about 840).
	var srcs []netip.Addr
	for i := range 10_000 {
		srcs = append(srcs, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
		if i%5 == 0 {
			srcs = append(srcs, heavy[0])
		}
		if i%7 == 0 {
			srcs = append(srcs, heavy[1])
		}
	}
	for i := 0; i < len(srcs); i += 64 {
		o.add(t0.Add(time.Duration(i)*time.Millisecond), srcs[i:min(i+64, len(srcs))])
	}
	total, top := o.Snapshot()
	require.EqualValues(t, len(srcs), total)
	require.Len(t, top, 16, "bounded by k whatever the number of sources")
	require.Equal(t, heavy[0], top[0].Source)
	require.Equal(t, heavy[1], top[1].Source)
	for i, want := range []uint64{2000, 1429} {
		// Space-Saving over-counts by at most Error, never under-counts.
		require.GreaterOrEqual(t, top[i].Datagrams, want)
		require.LessOrEqual(t, top[i].Datagrams-top[i].Error, want)
	}
	var sum uint64
	for _, e := range top {
		sum += e.Datagrams
	}
	require.Equal(t, total, sum, "Space-Saving's counters always sum to the total")
	require.True(t, top[0].LastSeen.After(t0))
}
