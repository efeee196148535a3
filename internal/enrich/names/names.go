// Package names owns the labels of exporters and their interfaces: what an
// engineer reads in place of 10.0.0.1 and ifIndex 517. Interfaces are named
// from static config, NetFlow options data and SNMP, in a configured order;
// exporters from config, SNMP sysName, reverse DNS (cached, asynchronous), then
// the address. Only the API asks, never the per-flow path.
package names

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Interface is what is known of one interface.
type Interface struct {
	Name        string `json:"name,omitempty" yaml:"name"`
	Description string `json:"description,omitempty" yaml:"description"`
	SpeedMbps   uint64 `json:"speed_mbps,omitempty" yaml:"-"`
	// Source is where the name came from: static, options or snmp.
	Source string `json:"source,omitempty" yaml:"-"`
}

// Interface sources, the values of Configuration.Order.
const (
	SourceStatic  = "static"
	SourceOptions = "options"
	SourceSNMP    = "snmp"
)

// Static is the names given in the configuration; it is replaced whole on a reload.
type Static struct {
	Exporters  map[netip.Addr]string
	Interfaces map[netip.Addr]map[uint32]Interface
}

// Configuration of the names.
type Configuration struct {
	Static Static
	// Order is the interface sources by preference: the first that knows a
	// field (name, description, speed) gives it.
	Order []string
	// ReverseDNS names exporters that neither the config nor SNMP names.
	ReverseDNS bool
	DNSTimeout time.Duration
	// DNSTTL is how long a reverse DNS answer (or failure) is kept.
	DNSTTL time.Duration
}

// DefaultConfiguration is static, then options data, then SNMP; reverse DNS on.
func DefaultConfiguration() Configuration {
	return Configuration{
		Order:      []string{SourceStatic, SourceOptions, SourceSNMP},
		ReverseDNS: true, DNSTimeout: 2 * time.Second, DNSTTL: time.Hour,
	}
}

// Options is the decoder: interfaces named in NetFlow v9/IPFIX options data.
type Options interface {
	OptionsInterface(exporter netip.Addr, ifIndex uint32) (name, description string, ok bool)
	OptionsInterfaces(exporter netip.Addr) map[uint32][2]string
}

// SNMP is the poller.
type SNMP interface {
	Interface(exporter netip.Addr, ifIndex uint32) (Interface, bool)
	Interfaces(exporter netip.Addr) map[uint32]Interface
	SysName(exporter netip.Addr) (string, bool)
}

// Dependencies of the names; Options and SNMP may be nil.
type Dependencies struct {
	Options Options
	SNMP    SNMP
	// LookupAddr resolves an address to names (nil: net.DefaultResolver's).
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	Registry   *prometheus.Registry
	Logger     *slog.Logger
	Clock      func() time.Time
}

// Names answers labels. It is safe for concurrent use.
type Names struct {
	cfg  Configuration
	deps Dependencies

	mu     sync.RWMutex
	static Static

	dnsMu    sync.Mutex
	dns      map[netip.Addr]dnsEntry
	inflight int
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc

	dnsLookups, dnsFailures prometheus.Counter
}

type dnsEntry struct {
	name    string
	expires time.Time
	pending bool
}

// maxInflight bounds concurrent reverse DNS lookups: a page listing 500
// exporters must not start 500 queries at once.
const maxInflight = 8

// New validates the configuration; it starts nothing.
func New(cfg Configuration, deps Dependencies) (*Names, error) {
	seen := map[string]bool{}
	for _, s := range cfg.Order {
		switch s {
		case SourceStatic, SourceOptions, SourceSNMP:
		default:
			return nil, fmt.Errorf("names: unknown interface source %q (want static, options, snmp)", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("names: interface source %q listed twice", s)
		}
		seen[s] = true
	}
	if cfg.ReverseDNS && (cfg.DNSTimeout <= 0 || cfg.DNSTTL <= 0) {
		return nil, errors.New("names: dns_timeout and dns_ttl must be positive")
	}
	if deps.LookupAddr == nil {
		deps.LookupAddr = net.DefaultResolver.LookupAddr
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	n := &Names{cfg: cfg, deps: deps, static: cfg.Static, dns: map[netip.Addr]dnsEntry{}}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.dnsLookups = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_names_reverse_dns_lookups_total",
		Help: "Reverse DNS lookups of exporter addresses."})
	n.dnsFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "tmsd_names_reverse_dns_failures_total",
		Help: "Reverse DNS lookups of exporter addresses that failed or timed out (the address is shown)."})
	if deps.Registry != nil {
		if err := errors.Join(deps.Registry.Register(n.dnsLookups), deps.Registry.Register(n.dnsFailures)); err != nil {
			return nil, fmt.Errorf("names: %w", err)
		}
	}
	return n, nil
}

// Start does nothing: lookups start when a name is asked for.
func (n *Names) Start() error { return nil }

// Stop cancels reverse DNS lookups in flight and waits for them.
func (n *Names) Stop() error {
	n.cancel()
	n.wg.Wait()
	return nil
}

// SetStatic replaces the configured names (a reload).
func (n *Names) SetStatic(s Static) {
	n.mu.Lock()
	n.static = s
	n.mu.Unlock()
}

// Interface is what the sources know of an interface, merged field by field
// in the configured order; ok false when none knows its name.
func (n *Names) Interface(exporter netip.Addr, ifIndex uint32) (Interface, bool) {
	if n == nil {
		return Interface{}, false
	}
	exporter = exporter.Unmap()
	var out Interface
	for _, src := range n.cfg.Order {
		var got Interface
		var ok bool
		switch src {
		case SourceStatic:
			n.mu.RLock()
			got, ok = n.static.Interfaces[exporter][ifIndex]
			n.mu.RUnlock()
		case SourceOptions:
			if n.deps.Options != nil {
				got.Name, got.Description, ok = n.deps.Options.OptionsInterface(exporter, ifIndex)
			}
		case SourceSNMP:
			if n.deps.SNMP != nil {
				got, ok = n.deps.SNMP.Interface(exporter, ifIndex)
			}
		}
		if !ok {
			continue
		}
		if out.Name == "" && got.Name != "" {
			out.Name, out.Source = got.Name, src
		}
		if out.Description == "" {
			out.Description = got.Description
		}
		if out.SpeedMbps == 0 {
			out.SpeedMbps = got.SpeedMbps
		}
	}
	return out, out.Name != ""
}

// Interfaces lists every named interface of an exporter.
func (n *Names) Interfaces(exporter netip.Addr) map[uint32]Interface {
	if n == nil {
		return nil
	}
	exporter = exporter.Unmap()
	idx := map[uint32]bool{}
	n.mu.RLock()
	for i := range n.static.Interfaces[exporter] {
		idx[i] = true
	}
	n.mu.RUnlock()
	if n.deps.Options != nil {
		for i := range n.deps.Options.OptionsInterfaces(exporter) {
			idx[i] = true
		}
	}
	if n.deps.SNMP != nil {
		for i := range n.deps.SNMP.Interfaces(exporter) {
			idx[i] = true
		}
	}
	out := make(map[uint32]Interface, len(idx))
	for i := range idx {
		if it, ok := n.Interface(exporter, i); ok {
			out[i] = it
		}
	}
	return out
}

// Exporter is an exporter's name: from the config, SNMP sysName, or reverse
// DNS; "" when none is known (yet: a reverse lookup is then started, and a
// later call has its answer).
func (n *Names) Exporter(exporter netip.Addr) string {
	if n == nil {
		return ""
	}
	exporter = exporter.Unmap()
	n.mu.RLock()
	name := n.static.Exporters[exporter]
	n.mu.RUnlock()
	if name != "" {
		return name
	}
	if n.deps.SNMP != nil {
		if s, ok := n.deps.SNMP.SysName(exporter); ok && s != "" {
			return s
		}
	}
	if !n.cfg.ReverseDNS || !exporter.IsValid() {
		return ""
	}
	return n.reverse(exporter)
}

// reverse returns the cached reverse name, starting a lookup when there is
// none or it expired. The API never waits for DNS.
func (n *Names) reverse(a netip.Addr) string {
	now := n.deps.Clock()
	n.dnsMu.Lock()
	defer n.dnsMu.Unlock()
	e, ok := n.dns[a]
	if ok && (e.pending || now.Before(e.expires)) {
		return e.name
	}
	if n.inflight >= maxInflight || n.ctx.Err() != nil {
		return e.name
	}
	e.pending = true
	n.dns[a] = e
	n.inflight++
	n.wg.Add(1)
	go n.lookup(a)
	return e.name
}

func (n *Names) lookup(a netip.Addr) {
	defer n.wg.Done()
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.DNSTimeout)
	defer cancel()
	n.dnsLookups.Inc()
	names, err := n.deps.LookupAddr(ctx, a.String())
	name := ""
	if err != nil || len(names) == 0 {
		n.dnsFailures.Inc()
	} else {
		name = strings.TrimSuffix(names[0], ".")
	}
	n.dnsMu.Lock()
	n.dns[a] = dnsEntry{name: name, expires: n.deps.Clock().Add(n.cfg.DNSTTL)}
	n.inflight--
	n.dnsMu.Unlock()
}

// FindInterface finds an interface by name: "EXPORTER:IFNAME" where
// EXPORTER is the exporter's name or address, or a bare IFNAME when one
// exporter has it, among the exporters given (those that sent flows) and
// those the configuration names interfaces of.
func (n *Names) FindInterface(s string, exporters []netip.Addr) (netip.Addr, uint32, error) {
	type hit struct {
		exp netip.Addr
		idx uint32
	}
	var hits []hit
	seen := map[netip.Addr]bool{}
	n.mu.RLock()
	for e := range n.static.Interfaces {
		exporters = append(exporters, e)
	}
	n.mu.RUnlock()
	for _, e := range exporters {
		if e = e.Unmap(); seen[e] {
			continue
		}
		seen[e] = true
		ename := n.Exporter(e)
		for idx, it := range n.Interfaces(e) {
			for _, want := range []string{it.Name, e.String() + ":" + it.Name, ename + ":" + it.Name} {
				if want == s && (want != ":"+it.Name) {
					hits = append(hits, hit{e, idx})
					break
				}
			}
		}
	}
	switch len(hits) {
	case 0:
		return netip.Addr{}, 0, fmt.Errorf("no interface named %q: want EXPORTER:IFINDEX, EXPORTER:IFNAME or an interface name", s)
	case 1:
		return hits[0].exp, hits[0].idx, nil
	}
	sort.Slice(hits, func(i, j int) bool {
		if c := hits[i].exp.Compare(hits[j].exp); c != 0 {
			return c < 0
		}
		return hits[i].idx < hits[j].idx
	})
	var cands []string
	for _, h := range hits {
		cands = append(cands, fmt.Sprintf("%s:%d", h.exp, h.idx))
	}
	return netip.Addr{}, 0, fmt.Errorf("interface name %q is ambiguous: %s; name the exporter (EXPORTER:IFNAME)", s, strings.Join(cands, ", "))
}

// Label is the label of an interface: "seoul-bb1 xe-0/0/1 (to KT)"; "" when
// its name is unknown.
func (n *Names) Label(exporter netip.Addr, ifIndex uint32) string {
	it, ok := n.Interface(exporter, ifIndex)
	if !ok {
		return ""
	}
	e := n.Exporter(exporter)
	if e == "" {
		e = exporter.Unmap().String()
	}
	s := e + " " + it.Name
	if it.Description != "" {
		s += " (" + it.Description + ")"
	}
	return s
}
