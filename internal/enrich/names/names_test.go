package names

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type fakeOptions map[netip.Addr]map[uint32][2]string

func (f fakeOptions) OptionsInterface(e netip.Addr, i uint32) (string, string, bool) {
	v, ok := f[e][i]
	return v[0], v[1], ok
}
func (f fakeOptions) OptionsInterfaces(e netip.Addr) map[uint32][2]string { return f[e] }

type fakeSNMP struct {
	ifs map[netip.Addr]map[uint32]Interface
	sys map[netip.Addr]string
}

func (f fakeSNMP) Interface(e netip.Addr, i uint32) (Interface, bool) {
	v, ok := f.ifs[e][i]
	return v, ok
}
func (f fakeSNMP) Interfaces(e netip.Addr) map[uint32]Interface { return f.ifs[e] }
func (f fakeSNMP) SysName(e netip.Addr) (string, bool)          { s, ok := f.sys[e]; return s, ok }

var (
	r1 = netip.MustParseAddr("192.0.2.1")
	r2 = netip.MustParseAddr("192.0.2.2")
)

func newNames(t *testing.T, cfg Configuration, deps Dependencies) *Names {
	t.Helper()
	n, err := New(cfg, deps)
	require.NoError(t, err)
	require.NoError(t, n.Start())
	t.Cleanup(func() { require.NoError(t, n.Stop()) })
	return n
}

func TestInterfaceOrder(t *testing.T) {
	opts := fakeOptions{r1: {517: {"opt-517", ""}, 518: {"opt-518", "opt desc"}}}
	snmp := fakeSNMP{ifs: map[netip.Addr]map[uint32]Interface{r1: {
		517: {Name: "snmp-517", Description: "to KT", SpeedMbps: 100000},
		519: {Name: "snmp-519", SpeedMbps: 10000}}}}
	static := Static{Interfaces: map[netip.Addr]map[uint32]Interface{r1: {517: {Name: "xe-0/0/1"}}}}

	f := func(order []string, idx uint32, want Interface, wantOK bool) {
		t.Helper()
		cfg := DefaultConfiguration()
		cfg.Order, cfg.Static, cfg.ReverseDNS = order, static, false
		n := newNames(t, cfg, Dependencies{Options: opts, SNMP: snmp})
		got, ok := n.Interface(r1, idx)
		require.Equal(t, wantOK, ok)
		require.Equal(t, want, got)
	}
	all := []string{SourceStatic, SourceOptions, SourceSNMP}
	// The first source with a field gives it: static's name, SNMP's alias and speed.
	f(all, 517, Interface{Name: "xe-0/0/1", Description: "to KT", SpeedMbps: 100000, Source: SourceStatic}, true)
	f([]string{SourceSNMP, SourceOptions, SourceStatic}, 517, Interface{Name: "snmp-517", Description: "to KT", SpeedMbps: 100000, Source: SourceSNMP}, true)
	f([]string{SourceOptions, SourceSNMP}, 517, Interface{Name: "opt-517", Description: "to KT", SpeedMbps: 100000, Source: SourceOptions}, true)
	f(all, 518, Interface{Name: "opt-518", Description: "opt desc", Source: SourceOptions}, true)
	f(all, 519, Interface{Name: "snmp-519", SpeedMbps: 10000, Source: SourceSNMP}, true)
	f([]string{SourceStatic}, 519, Interface{}, false) // SNMP not in the order
	f(all, 999, Interface{}, false)
}

func TestNewRefusesBadOrder(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Order = []string{"static", "ldap"}
	_, err := New(cfg, Dependencies{})
	require.ErrorContains(t, err, `unknown interface source "ldap"`)
	cfg.Order = []string{"snmp", "snmp"}
	_, err = New(cfg, Dependencies{})
	require.ErrorContains(t, err, "listed twice")
}

func TestExporterNames(t *testing.T) {
	var calls atomic.Int32
	lookup := func(ctx context.Context, addr string) ([]string, error) {
		calls.Add(1)
		switch addr {
		case "192.0.2.2":
			return []string{"busan-bb2.example.net."}, nil
		case "192.0.2.3":
			<-ctx.Done() // a server that never answers: the timeout ends it
			return nil, ctx.Err()
		}
		return nil, errors.New("NXDOMAIN")
	}
	cfg := DefaultConfiguration()
	cfg.DNSTimeout = 50 * time.Millisecond
	cfg.Static = Static{Exporters: map[netip.Addr]string{r1: "seoul-bb1"}}
	snmp := fakeSNMP{sys: map[netip.Addr]string{netip.MustParseAddr("192.0.2.4"): "daegu-bb4"}}
	n := newNames(t, cfg, Dependencies{LookupAddr: lookup, SNMP: snmp})

	require.Equal(t, "seoul-bb1", n.Exporter(r1), "config first")
	require.Equal(t, "seoul-bb1", n.Exporter(netip.AddrFrom16(r1.As16())), "IPv4-mapped is the same exporter")
	require.Equal(t, "daegu-bb4", n.Exporter(netip.MustParseAddr("192.0.2.4")), "then SNMP sysName")
	require.Equal(t, "", n.Exporter(r2), "the first call starts the lookup, never waits")
	require.Eventually(t, func() bool { return n.Exporter(r2) == "busan-bb2.example.net" }, 5*time.Second, 5*time.Millisecond)
	before := calls.Load()
	require.Equal(t, "busan-bb2.example.net", n.Exporter(r2))
	require.Equal(t, before, calls.Load(), "cached")

	slow := netip.MustParseAddr("192.0.2.3")
	require.Equal(t, "", n.Exporter(slow))
	require.Eventually(t, func() bool { n.dnsMu.Lock(); defer n.dnsMu.Unlock(); return !n.dns[slow].pending }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, "", n.Exporter(slow), "a timeout leaves the address")

	n.SetStatic(Static{Exporters: map[netip.Addr]string{r2: "renamed"}})
	require.Equal(t, "renamed", n.Exporter(r2), "a reload's names win at once")
}

func TestFindInterface(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.ReverseDNS = false
	cfg.Static = Static{
		Exporters: map[netip.Addr]string{r1: "seoul-bb1", r2: "busan-bb2"},
		Interfaces: map[netip.Addr]map[uint32]Interface{
			r1: {517: {Name: "xe-0/0/1", Description: "to KT"}, 600: {Name: "ae0"}},
			r2: {3: {Name: "ae0"}},
		}}
	n := newNames(t, cfg, Dependencies{})
	exps := []netip.Addr{r1, r2}
	f := func(s string, wantExp netip.Addr, wantIdx uint32, wantErr string) {
		t.Helper()
		e, i, err := n.FindInterface(s, exps)
		if wantErr != "" {
			require.ErrorContains(t, err, wantErr)
			return
		}
		require.NoError(t, err)
		require.Equal(t, wantExp, e)
		require.Equal(t, wantIdx, i)
	}
	f("xe-0/0/1", r1, 517, "")
	f("seoul-bb1:xe-0/0/1", r1, 517, "")
	f("192.0.2.1:xe-0/0/1", r1, 517, "")
	f("busan-bb2:ae0", r2, 3, "")
	f("ae0", netip.Addr{}, 0, `"ae0" is ambiguous: 192.0.2.1:600, 192.0.2.2:3`)
	f("xe-9/9/9", netip.Addr{}, 0, `no interface named "xe-9/9/9"`)
	require.Equal(t, "seoul-bb1 xe-0/0/1 (to KT)", n.Label(r1, 517))
	require.Equal(t, "", n.Label(r1, 1))
}
