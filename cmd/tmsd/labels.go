package main

import (
	"net/netip"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/enrich/geoip"
	"github.com/tmsd/tmsd/internal/enrich/names"
	"github.com/tmsd/tmsd/internal/enrich/snmp"
)

// labels are the API's names (api.Names): exporters and interfaces from the
// names component, countries and ASes from the GeoIP databases.
type labels struct {
	names   *names.Names
	geo     *geoip.GeoIP
	decoder *decode.Decoder // the exporters that sent flows, for FindInterface
}

func (l *labels) ExporterName(a netip.Addr) string { return l.names.Exporter(a) }

func (l *labels) InterfaceLabel(a netip.Addr, idx uint32) string { return l.names.Label(a, idx) }

func (l *labels) CountryName(cc [2]byte) string { return l.geo.CountryName(cc) }

func (l *labels) ASName(as uint32) string { return l.geo.ASName(as) }

func (l *labels) InterfaceNames(a netip.Addr) map[uint32]api.InterfaceName {
	ifs := l.names.Interfaces(a)
	if len(ifs) == 0 {
		return nil
	}
	out := make(map[uint32]api.InterfaceName, len(ifs))
	for idx, it := range ifs {
		out[idx] = api.InterfaceName{Name: it.Name, Description: it.Description, SpeedMbps: it.SpeedMbps, Source: it.Source}
	}
	return out
}

// FindInterface looks among the exporters that sent flows (and those the
// configuration names interfaces of).
func (l *labels) FindInterface(s string) (netip.Addr, uint32, error) {
	var exps []netip.Addr
	if l.decoder != nil {
		for _, e := range l.decoder.Exporters() {
			exps = append(exps, e.Address)
		}
	}
	return l.names.FindInterface(s, exps)
}

// snmpNames is the SNMP poller as the names component asks it.
type snmpNames struct{ p *snmp.Poller }

func (s snmpNames) Interface(e netip.Addr, idx uint32) (names.Interface, bool) {
	it, ok := s.p.Interface(e, idx)
	return names.Interface{Name: it.Name, Description: it.Description, SpeedMbps: it.SpeedMbps, Source: names.SourceSNMP}, ok
}

func (s snmpNames) Interfaces(e netip.Addr) map[uint32]names.Interface {
	ifs := s.p.Interfaces(e)
	if len(ifs) == 0 {
		return nil
	}
	out := make(map[uint32]names.Interface, len(ifs))
	for idx, it := range ifs {
		out[idx] = names.Interface{Name: it.Name, Description: it.Description, SpeedMbps: it.SpeedMbps, Source: names.SourceSNMP}
	}
	return out
}

func (s snmpNames) SysName(e netip.Addr) (string, bool) { return s.p.SysName(e) }
