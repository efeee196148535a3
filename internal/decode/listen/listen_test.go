package listen

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/ipv4"
)

type received struct {
	src     netip.AddrPort
	payload string
}

// collector is a Handler keeping copies of what it receives.
type collector struct {
	mu      sync.Mutex
	got     []received
	batches int
}

func (c *collector) HandleBatch(now time.Time, batch []Datagram) {
	if now.IsZero() {
		panic("zero time")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches++
	for _, d := range batch {
		c.got = append(c.got, received{d.Src, string(d.Payload)})
	}
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func (c *collector) all() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]received(nil), c.got...)
}

// startListener starts a listener and stops it at the end of the test.
func startListener(t testing.TB, cfg Configuration, deps Dependencies, tweak ...func(*Listener)) *Listener {
	t.Helper()
	if deps.Name == "" {
		deps.Name = "test"
	}
	l, err := New(cfg, deps)
	require.NoError(t, err)
	for _, f := range tweak {
		f(l)
	}
	require.NoError(t, l.Start())
	t.Cleanup(func() { require.NoError(t, l.Stop()) })
	return l
}

func testConfig(addr string, sockets int) Configuration {
	cfg := DefaultConfiguration()
	cfg.Addresses = []string{addr}
	cfg.Sockets = sockets
	cfg.ReceiveBuffer = 4 << 20
	return cfg
}

func dial(t testing.TB, addr net.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestReceiveAll(t *testing.T) {
	h := &collector{}
	reg := prometheus.NewRegistry()
	l := startListener(t, testConfig("127.0.0.1:0", 2), Dependencies{Handler: h, Registry: reg, Name: "netflow"})

	addrs := l.Addrs()
	require.Len(t, addrs, 1)
	port := addrs[0].(*net.UDPAddr).Port
	require.NotZero(t, port)
	// Both reuseport sockets are bound to the port the first one got.
	require.Len(t, l.conns, 2)
	for _, c := range l.conns {
		require.Equal(t, port, c.LocalAddr().(*net.UDPAddr).Port)
	}

	// Several clients, so that the reuseport hash spreads them over both sockets.
	const clients, perClient = 4, 250
	want := map[string]netip.AddrPort{}
	var totalBytes, sent int
	for c := 0; c < clients; c++ {
		conn := dial(t, addrs[0])
		src := conn.LocalAddr().(*net.UDPAddr).AddrPort()
		for i := 0; i < perClient; i++ {
			p := fmt.Sprintf("client %d datagram %04d", c, i)
			_, err := conn.Write([]byte(p))
			require.NoError(t, err)
			want[p] = src
			totalBytes += len(p)
			sent++
			if sent%50 == 0 { // stay well within a default-sized socket buffer
				require.Eventually(t, func() bool { return h.len() >= sent }, 10*time.Second, time.Millisecond)
			}
		}
	}
	require.Eventually(t, func() bool { return h.len() >= clients*perClient }, 10*time.Second, 5*time.Millisecond)

	got := h.all()
	require.Len(t, got, clients*perClient)
	for _, r := range got {
		src, ok := want[r.payload]
		require.True(t, ok, "unexpected payload %q", r.payload)
		require.Equal(t, src, r.src)
		delete(want, r.payload)
	}
	require.Empty(t, want)

	s := l.Stats()
	require.EqualValues(t, clients*perClient, s.Datagrams)
	require.EqualValues(t, totalBytes, s.Bytes)
	require.Zero(t, s.Truncated)

	// Metrics read the same counters.
	values := gather(t, reg)
	require.EqualValues(t, clients*perClient, values[`tmsd_listener_datagrams_total{listener="netflow"}`])
	require.EqualValues(t, totalBytes, values[`tmsd_listener_bytes_total{listener="netflow"}`])
	require.Contains(t, values, `tmsd_listener_socket_drops_total{listener="netflow"}`)
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}

// recvmmsg through ipv4.PacketConn also works on IPv6 sockets.
func TestReceiveIPv6(t *testing.T) {
	probe, err := net.ListenPacket("udp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	h := &collector{}
	l := startListener(t, testConfig("[::1]:0", 2), Dependencies{Handler: h})
	conn := dial(t, l.Addrs()[0])
	for i := 0; i < 10; i++ {
		_, err := conn.Write([]byte("v6 " + strconv.Itoa(i)))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return h.len() >= 10 }, 10*time.Second, 5*time.Millisecond)
	for _, r := range h.all() {
		require.Equal(t, conn.LocalAddr().(*net.UDPAddr).AddrPort(), r.src)
		require.True(t, strings.HasPrefix(r.payload, "v6 "))
	}
}

// Without recvmmsg, datagrams are read one per system call: same results.
func TestReceiveSingleFallback(t *testing.T) {
	h := &collector{}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.MaxDatagramSize = 100
	l := startListener(t, cfg, Dependencies{Handler: h}, func(l *Listener) { l.noBatch = true })
	conn := dial(t, l.Addrs()[0])
	for i := 0; i < 100; i++ {
		_, err := conn.Write([]byte(strconv.Itoa(i)))
		require.NoError(t, err)
	}
	_, err := conn.Write(make([]byte, 101))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.Stats().Truncated == 1 }, 10*time.Second, 5*time.Millisecond)
	got := h.all()
	require.Len(t, got, 100)
	for i, r := range got {
		require.Equal(t, strconv.Itoa(i), r.payload)
		require.Equal(t, conn.LocalAddr().(*net.UDPAddr).AddrPort(), r.src)
	}
	h.mu.Lock()
	require.Equal(t, 100, h.batches)
	h.mu.Unlock()
}

func TestTwoAddresses(t *testing.T) {
	h := &collector{}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.Addresses = append(cfg.Addresses, "127.0.0.1:0")
	l := startListener(t, cfg, Dependencies{Handler: h})
	addrs := l.Addrs()
	require.Len(t, addrs, 2)
	require.NotEqual(t, addrs[0].String(), addrs[1].String())
	for i, a := range addrs {
		_, err := dial(t, a).Write([]byte{byte(i)})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return h.len() == 2 }, 10*time.Second, 5*time.Millisecond)
}

func TestStopEndsReaders(t *testing.T) {
	h := &collector{}
	l, err := New(testConfig("127.0.0.1:0", 3), Dependencies{Handler: h, Name: "test"})
	require.NoError(t, err)
	require.Nil(t, l.Addrs())
	require.NoError(t, l.Start())
	require.Error(t, l.Start())
	done := make(chan error, 1)
	go func() { done <- l.Stop() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	// The goroutines have ended (Stop waited for them) and a second Stop is harmless.
	require.NoError(t, l.Stop())
	// The port is free again.
	pc, err := net.ListenPacket("udp", l.Addrs()[0].String())
	require.NoError(t, err)
	pc.Close()
}

func TestNewValidates(t *testing.T) {
	h := &collector{}
	ok := testConfig("127.0.0.1:0", 1)
	_, err := New(ok, Dependencies{Handler: h})
	require.NoError(t, err)
	_, err = New(ok, Dependencies{})
	require.ErrorContains(t, err, "handler")
	for name, mutate := range map[string]func(*Configuration){
		"no address":   func(c *Configuration) { c.Addresses = nil },
		"bad address":  func(c *Configuration) { c.Addresses = []string{"2055"} },
		"sockets":      func(c *Configuration) { c.Sockets = -1 },
		"batch":        func(c *Configuration) { c.BatchSize = 0 },
		"datagram":     func(c *Configuration) { c.MaxDatagramSize = 70000 },
		"rcvbuf":       func(c *Configuration) { c.ReceiveBuffer = -1 },
		"batch (high)": func(c *Configuration) { c.BatchSize = 5000 },
	} {
		cfg := ok
		mutate(&cfg)
		_, err := New(cfg, Dependencies{Handler: h})
		require.Error(t, err, name)
	}
	// Metrics are registered once per name on a registry.
	reg := prometheus.NewRegistry()
	_, err = New(ok, Dependencies{Handler: h, Registry: reg, Name: "a"})
	require.NoError(t, err)
	_, err = New(ok, Dependencies{Handler: h, Registry: reg, Name: "a"})
	require.Error(t, err)
	_, err = New(ok, Dependencies{Handler: h, Registry: reg, Name: "b"})
	require.NoError(t, err)
	// Sockets 0 means one per CPU.
	cfg := ok
	cfg.Sockets = 0
	l, err := New(cfg, Dependencies{Handler: h})
	require.NoError(t, err)
	require.Positive(t, l.cfg.Sockets)
}

func TestReceiveBufferApplied(t *testing.T) {
	h := &collector{}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.ReceiveBuffer = 1 << 20
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	l := startListener(t, cfg, Dependencies{Handler: h, Logger: logger})
	if os.Geteuid() == 0 || rmemMax(t) >= cfg.ReceiveBuffer {
		require.GreaterOrEqual(t, l.receiveBufferObtained(), cfg.ReceiveBuffer)
		require.NotContains(t, logs.String(), "rmem_max")
	} else {
		require.Contains(t, logs.String(), "net.core.rmem_max")
	}
}

func rmemMax(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("no rmem_max: %v", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return v
}

// Without SO_RCVBUFFORCE, a request above net.core.rmem_max is capped: one warning, whatever the sockets.
func TestReceiveBufferCappedWarnsOnce(t *testing.T) {
	cfg := testConfig("127.0.0.1:0", 2)
	cfg.ReceiveBuffer = 2 * rmemMax(t)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	l := startListener(t, cfg, Dependencies{Handler: &collector{}, Logger: logger},
		func(l *Listener) { l.forceRcvbuf = false })
	require.Less(t, l.receiveBufferObtained(), cfg.ReceiveBuffer)
	require.Equal(t, 1, strings.Count(logs.String(), "net.core.rmem_max="+strconv.Itoa(cfg.ReceiveBuffer)), logs.String())
	require.Contains(t, logs.String(), "obtained="+strconv.Itoa(l.receiveBufferObtained()))
}

// blockingHandler blocks its first batch until released.
type blockingHandler struct {
	release chan struct{}
	once    sync.Once
	n       atomic.Int64
}

func (b *blockingHandler) HandleBatch(_ time.Time, batch []Datagram) {
	b.once.Do(func() { <-b.release })
	b.n.Add(int64(len(batch)))
}

// A reader stuck in its handler lets the small socket buffer overflow: the kernel's drop
// counter comes back with the next datagram read.
func TestSocketDropsCounted(t *testing.T) {
	h := &blockingHandler{release: make(chan struct{})}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.ReceiveBuffer = 4096 // the kernel minimum is about this
	cfg.BatchSize = 1
	l := startListener(t, cfg, Dependencies{Handler: h})
	conn := dial(t, l.Addrs()[0])
	payload := make([]byte, 1000)
	_, err := conn.Write(payload)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return l.Stats().Datagrams == 1 }, 10*time.Second, time.Millisecond)
	for i := 0; i < 200; i++ { // far more than 4 KiB of socket buffer
		_, err := conn.Write(payload)
		require.NoError(t, err)
	}
	close(h.release)
	// Each poll sends one more datagram to carry the counter.
	require.Eventually(t, func() bool {
		_, err := conn.Write(payload)
		require.NoError(t, err)
		return l.Stats().SocketDrops > 0
	}, 10*time.Second, 10*time.Millisecond)
	s := l.Stats()
	require.Less(t, s.Datagrams, uint64(200))
	require.Greater(t, s.SocketDrops, uint64(100))
	t.Logf("stats: %+v", s)
}

func TestTruncatedDropped(t *testing.T) {
	h := &collector{}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.MaxDatagramSize = 100
	l := startListener(t, cfg, Dependencies{Handler: h})
	conn := dial(t, l.Addrs()[0])
	_, err := conn.Write(make([]byte, 200))
	require.NoError(t, err)
	_, err = conn.Write([]byte("short"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.len() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "short", h.all()[0].payload)
	require.Eventually(t, func() bool { return l.Stats().Truncated == 1 }, 10*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 1, l.Stats().Datagrams)
}

func TestParseDropsMalformed(t *testing.T) {
	for _, oob := range [][]byte{nil, {1, 2, 3}, make([]byte, 16), bytes.Repeat([]byte{0xff}, 40)} {
		_, ok := parseDrops(oob)
		require.False(t, ok)
	}
}

// countingHandler counts without copying, like a decoder would.
type countingHandler struct{ n atomic.Uint64 }

func (c *countingHandler) HandleBatch(_ time.Time, batch []Datagram) { c.n.Add(uint64(len(batch))) }

// BenchmarkListenerLoopback sends b.N datagrams of 500 bytes over loopback (sendmmsg, at most
// `window` in flight) to a one-socket listener. allocs/op counts sender and receiver.
func BenchmarkListenerLoopback(b *testing.B) {
	h := &countingHandler{}
	cfg := testConfig("127.0.0.1:0", 1)
	cfg.ReceiveBuffer = 32 << 20
	l := startListener(b, cfg, Dependencies{Handler: h})
	conn := dial(b, l.Addrs()[0])
	pc := ipv4.NewPacketConn(conn)
	const batch, window = 64, 4096
	payload := make([]byte, 500)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{payload}
	}
	deadline := time.Now().Add(60 * time.Second)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N && time.Now().Before(deadline) {
		if sent-int(h.n.Load()+l.Stats().SocketDrops) > window {
			time.Sleep(10 * time.Microsecond)
			continue
		}
		n := min(batch, b.N-sent)
		w, err := pc.WriteBatch(msgs[:n], 0)
		if err != nil {
			b.Fatal(err)
		}
		sent += w
	}
	// Wait for the tail, bounded.
	for last, progress := h.n.Load(), time.Now(); time.Now().Before(deadline) && last < uint64(sent) &&
		time.Since(progress) < 200*time.Millisecond; {
		time.Sleep(100 * time.Microsecond)
		if n := h.n.Load(); n != last {
			last, progress = n, time.Now()
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	got := h.n.Load()
	b.ReportMetric(float64(got)/elapsed.Seconds(), "datagrams/s")
	b.ReportMetric(float64(uint64(sent)-got), "lost")
}
