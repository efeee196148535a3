// Package listen owns the UDP sockets that receive flow export datagrams (NetFlow, IPFIX, sFlow).
// Each configured address gets N SO_REUSEPORT sockets, each read by its own goroutine in batches
// (recvmmsg on Linux) into reused buffers that are handed to a Handler, one batch at a time.
// An address another process holds is refused, naming it (inuse.go): the group is one process's.
// An optional allow-list of prefixes drops other sources' datagrams before the Handler, and
// counts them per source in a fixed-size Space-Saving table (Offenders) that spoofing cannot grow.
package listen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Handler receives the datagrams read by the listener.
type Handler interface {
	// HandleBatch is called by one reader goroutine with a batch of datagrams it just read.
	// The slices are only valid during the call (buffers are reused). `now` is read once per batch.
	// HandleBatch may be called concurrently from several reader goroutines.
	HandleBatch(now time.Time, batch []Datagram)
}

// HandlerFunc adapts a function to the Handler interface.
type HandlerFunc func(now time.Time, batch []Datagram)

// HandleBatch calls f(now, batch).
func (f HandlerFunc) HandleBatch(now time.Time, batch []Datagram) { f(now, batch) }

// Datagram is one received UDP datagram.
type Datagram struct {
	// Src is the exporter's address; IPv4-mapped IPv6 addresses (dual-stack sockets) are unmapped.
	Src     netip.AddrPort
	Payload []byte
}

// Configuration is the listener's configuration.
type Configuration struct {
	// Addresses to listen on, e.g. ":2055" or "127.0.0.1:0".
	Addresses []string
	// Sockets is the number of SO_REUSEPORT sockets per address; 0 means runtime.GOMAXPROCS(0).
	Sockets int
	// ReceiveBuffer is the SO_RCVBUF size requested for each socket, in bytes; 0 keeps the system default.
	ReceiveBuffer int
	// BatchSize is the number of datagrams read per system call (recvmmsg).
	BatchSize int
	// MaxDatagramSize is the size of each receive buffer; longer datagrams are counted as truncated and dropped.
	MaxDatagramSize int
	// Allow lists the sources that may send; datagrams from others are dropped
	// before the Handler sees them, and counted. Empty: every source may send.
	Allow []netip.Prefix
}

// DefaultConfiguration returns the default configuration (no address).
func DefaultConfiguration() Configuration {
	return Configuration{
		Sockets:         0,
		ReceiveBuffer:   32 << 20,
		BatchSize:       64,
		MaxDatagramSize: 9000,
	}
}

// Dependencies are the listener's dependencies.
type Dependencies struct {
	Handler  Handler
	Registry *prometheus.Registry // nil: no metrics
	Logger   *slog.Logger         // nil: slog.Default()
	Name     string               // label value of the metrics, e.g. "netflow" or "sflow"
	// Offenders, when set, counts the sources of datagrams refused by Allow;
	// listeners may share one.
	Offenders *Offenders
}

// Stats are the listener's counters, summed over its sockets.
type Stats struct {
	Datagrams   uint64 // datagrams handed to the Handler
	Bytes       uint64 // their payload bytes
	SocketDrops uint64 // datagrams dropped by the kernel because a socket buffer was full (SO_RXQ_OVFL)
	Truncated   uint64 // datagrams longer than MaxDatagramSize, dropped
	Rejected    uint64 // datagrams from a source outside Allow, dropped
}

// Listener reads UDP datagrams from a set of sockets and hands them to a Handler.
type Listener struct {
	cfg     Configuration
	handler Handler
	log     *slog.Logger
	name    string

	// forceRcvbuf allows SO_RCVBUFFORCE (tests turn it off to exercise the capped path).
	forceRcvbuf bool
	// noBatch reads one datagram per system call (tests exercise the fallback with it).
	noBatch    bool
	rcvbufWarn sync.Once
	rcvbufGot  atomic.Int64 // last SO_RCVBUF obtained (as reported by the kernel, halved on Linux)
	errLog     throttle
	offenders  *Offenders
	rejectLog  throttle

	mu      sync.Mutex
	started bool
	stopped bool
	conns   []*net.UDPConn
	addrs   []net.Addr
	readers []*reader
	wg      sync.WaitGroup
}

// New validates the configuration and returns a listener. It opens nothing: see Start.
func New(cfg Configuration, deps Dependencies) (*Listener, error) {
	if deps.Handler == nil {
		return nil, errors.New("listen: no handler")
	}
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("listen: no address")
	}
	for _, a := range cfg.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("listen: address %q: %w", a, err)
		}
	}
	if cfg.Sockets < 0 {
		return nil, fmt.Errorf("listen: sockets %d < 0", cfg.Sockets)
	}
	if cfg.Sockets == 0 {
		cfg.Sockets = runtime.GOMAXPROCS(0)
	}
	if !reusePortSupported {
		cfg.Sockets = 1
	}
	if cfg.ReceiveBuffer < 0 {
		return nil, fmt.Errorf("listen: receive buffer %d < 0", cfg.ReceiveBuffer)
	}
	if cfg.BatchSize <= 0 || cfg.BatchSize > 1024 {
		return nil, fmt.Errorf("listen: batch size %d not in [1, 1024]", cfg.BatchSize)
	}
	if cfg.MaxDatagramSize <= 0 || cfg.MaxDatagramSize > 65535 {
		return nil, fmt.Errorf("listen: max datagram size %d not in [1, 65535]", cfg.MaxDatagramSize)
	}
	allow, err := normalizeAllow(cfg.Allow)
	if err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	l := &Listener{
		offenders:   deps.Offenders,
		rejectLog:   throttle{every: time.Minute},
		cfg:         cfg,
		handler:     deps.Handler,
		log:         deps.Logger.With("listener", deps.Name),
		name:        deps.Name,
		forceRcvbuf: true,
		errLog:      throttle{every: 10 * time.Second},
	}
	l.cfg.Addresses = append([]string(nil), cfg.Addresses...)
	l.cfg.Allow = allow
	if deps.Registry != nil {
		if err := l.registerMetrics(deps.Registry); err != nil {
			return nil, fmt.Errorf("listen: metrics: %w", err)
		}
	}
	return l, nil
}

func (l *Listener) registerMetrics(reg *prometheus.Registry) error {
	labels := prometheus.Labels{"listener": l.name}
	metrics := []struct {
		name, help string
		get        func(Stats) uint64
	}{
		{"tmsd_listener_datagrams_total", "UDP datagrams received.", func(s Stats) uint64 { return s.Datagrams }},
		{"tmsd_listener_bytes_total", "UDP payload bytes received.", func(s Stats) uint64 { return s.Bytes }},
		{"tmsd_listener_socket_drops_total", "UDP datagrams dropped by the kernel (socket buffer full).", func(s Stats) uint64 { return s.SocketDrops }},
		{"tmsd_listener_truncated_total", "UDP datagrams longer than the receive buffer, dropped.", func(s Stats) uint64 { return s.Truncated }},
		{"tmsd_rejected_datagrams_total", "UDP datagrams from a source outside the allow-list, dropped before decoding.", func(s Stats) uint64 { return s.Rejected }},
	}
	for _, m := range metrics {
		get := m.get
		c := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help, ConstLabels: labels},
			func() float64 { return float64(get(l.Stats())) })
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Start opens the sockets and starts one reader goroutine per socket.
// When an address has port 0, its first socket picks the port and the others bind to it.
func (l *Listener) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.started || l.stopped {
		return errors.New("listen: already started")
	}
	l.started = true
	lc := net.ListenConfig{Control: l.control}
	var conns []*net.UDPConn
	var addrs []net.Addr
	fail := func(err error) error {
		for _, c := range conns {
			c.Close()
		}
		return err
	}
	for _, configured := range l.cfg.Addresses {
		// Another process on the address would share its traffic through
		// SO_REUSEPORT: refuse it (inuse.go).
		if err := CheckFree(l.name, "udp", configured); err != nil {
			return fail(err)
		}
		address := configured
		own := map[uint64]bool{}
		var local *net.UDPAddr
		for i := 0; i < l.cfg.Sockets; i++ {
			pc, err := lc.ListenPacket(context.Background(), "udp", address)
			if err != nil {
				return fail(fmt.Errorf("listen: %s: %w", address, err))
			}
			conn := pc.(*net.UDPConn)
			conns = append(conns, conn)
			if ino, ok := socketInode(conn); ok {
				own[ino] = true
			} else {
				own = nil // cannot tell ours from others
			}
			if i > 0 {
				continue
			}
			local = conn.LocalAddr().(*net.UDPAddr)
			addrs = append(addrs, local)
			host, port, _ := net.SplitHostPort(address)
			if port == "0" || port == "" {
				// Bind the remaining sockets to the port the kernel chose.
				address = net.JoinHostPort(host, fmt.Sprint(local.Port))
			}
		}
		// A process that probed at the same moment may have joined the group.
		if own != nil {
			if err := l.checkAlone(configured, local.AddrPort(), own); err != nil {
				return fail(err)
			}
		}
	}
	l.conns, l.addrs = conns, addrs
	for _, conn := range conns {
		r := newReader(l, conn)
		l.readers = append(l.readers, r)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			r.run()
		}()
	}
	return nil
}

// Stop closes the sockets and waits for the reader goroutines to end.
func (l *Listener) Stop() error {
	l.mu.Lock()
	if l.stopped || !l.started {
		l.stopped = true
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	var errs []error
	for _, c := range l.conns {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("listen: close: %w", err)
	}
	return nil
}

// Addrs returns the bound address of each configured address, in order (nil before Start).
func (l *Listener) Addrs() []net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]net.Addr(nil), l.addrs...)
}

// Stats returns the counters summed over all sockets.
// SocketDrops is the kernel's per-socket drop counter as last reported with a received
// datagram: drops after the last datagram read show up with the next one.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s Stats
	for _, r := range l.readers {
		s.Datagrams += r.datagrams.Load()
		s.Bytes += r.bytes.Load()
		s.SocketDrops += r.drops.Load()
		s.Truncated += r.truncated.Load()
		s.Rejected += r.rejected.Load()
	}
	return s
}

// receiveBufferObtained is the last SO_RCVBUF obtained (0 if never set).
func (l *Listener) receiveBufferObtained() int { return int(l.rcvbufGot.Load()) }

// throttle lets one event through per period.
type throttle struct {
	every time.Duration
	last  atomic.Int64
}

func (t *throttle) allow(now time.Time) bool {
	last := t.last.Load()
	if last != 0 && now.UnixNano()-last < int64(t.every) {
		return false
	}
	return t.last.CompareAndSwap(last, now.UnixNano())
}
