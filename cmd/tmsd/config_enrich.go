package main

import (
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/enrich/geoip"
	"github.com/tmsd/tmsd/internal/enrich/names"
	"github.com/tmsd/tmsd/internal/enrich/snmp"
)

// GeoIPConfig is the `geoip:` section: the country and AS databases.
type GeoIPConfig struct {
	Country string `yaml:"country"` // a .mmdb file; "" = the embedded default
	ASN     string `yaml:"asn"`
	// Embedded fills what no file is given for from the database built into tmsd.
	Embedded bool `yaml:"embedded"`
	// ASSource is which AS wins when both are known: export (the exporter's
	// non-zero AS, v9/IPFIX fields 16/17, sFlow extended gateway) or database.
	ASSource       string   `yaml:"as_source"`
	ReloadInterval Duration `yaml:"reload_interval"`
}

func defaultGeoIPConfig() GeoIPConfig {
	g := geoip.DefaultConfiguration()
	return GeoIPConfig{Embedded: g.Embedded, ASSource: "export", ReloadInterval: Duration(g.ReloadInterval)}
}

func (g GeoIPConfig) configuration() geoip.Configuration {
	c := geoip.DefaultConfiguration()
	c.Country, c.ASN, c.Embedded = g.Country, g.ASN, g.Embedded
	c.ExportAS = g.ASSource != "database"
	c.ReloadInterval = time.Duration(g.ReloadInterval)
	return c
}

// NamingConfig is the `naming:` section: where interface and exporter names come from.
type NamingConfig struct {
	// InterfaceSources in order of preference: static, options, snmp.
	InterfaceSources []string `yaml:"interface_sources"`
	ReverseDNS       bool     `yaml:"reverse_dns"`
	DNSTimeout       Duration `yaml:"dns_timeout"`
}

func defaultNamingConfig() NamingConfig {
	n := names.DefaultConfiguration()
	return NamingConfig{InterfaceSources: n.Order, ReverseDNS: n.ReverseDNS, DNSTimeout: Duration(n.DNSTimeout)}
}

func (c *Config) namesConfiguration() names.Configuration {
	n := names.DefaultConfiguration()
	n.Order = c.Naming.InterfaceSources
	n.ReverseDNS = c.Naming.ReverseDNS
	n.DNSTimeout = time.Duration(c.Naming.DNSTimeout)
	n.Static = c.staticNames()
	return n
}

// staticNames are the names the file gives (exporters:, interfaces:).
func (c *Config) staticNames() names.Static {
	return names.Static{Exporters: c.Exporters, Interfaces: c.Interfaces}
}

// ExporterNames is the `exporters:` section: "ADDRESS: NAME".
type ExporterNames map[netip.Addr]string

// UnmarshalYAML reads the names, with the line of a bad one in the error.
func (e *ExporterNames) UnmarshalYAML(n *yaml.Node) error {
	if n.ShortTag() == "!!null" {
		*e = nil
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return lineError(n, "want a mapping of exporter addresses to names, got %s", shown(n))
	}
	out := ExporterNames{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		addr, err := netip.ParseAddr(k.Value)
		if err != nil {
			return lineError(k, "%q is not an exporter IP address", k.Value)
		}
		if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
			return lineError(v, "the name of %s must be a non-empty string", k.Value)
		}
		if _, dup := out[addr.Unmap()]; dup {
			return lineError(k, "exporter %s named twice", k.Value)
		}
		out[addr.Unmap()] = strings.TrimSpace(v.Value)
	}
	*e = out
	return nil
}

// InterfaceNames is the `interfaces:` section:
//
//	interfaces:
//	  192.0.2.1:
//	    517: {name: xe-0/0/1, description: "to KT", speed: 100G}
type InterfaceNames map[netip.Addr]map[uint32]names.Interface

// UnmarshalYAML reads the interfaces, with the line of a bad one in the error.
func (in *InterfaceNames) UnmarshalYAML(n *yaml.Node) error {
	if n.ShortTag() == "!!null" {
		*in = nil
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return lineError(n, "want a mapping of exporter addresses to their interfaces, got %s", shown(n))
	}
	out := InterfaceNames{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		addr, err := netip.ParseAddr(k.Value)
		if err != nil {
			return lineError(k, "%q is not an exporter IP address", k.Value)
		}
		if v.Kind != yaml.MappingNode {
			return lineError(v, "want a mapping of ifIndex to {name, description, speed} for %s, got %s", k.Value, shown(v))
		}
		ifs := map[uint32]names.Interface{}
		for j := 0; j+1 < len(v.Content); j += 2 {
			ik, iv := v.Content[j], v.Content[j+1]
			idx, err := strconv.ParseUint(ik.Value, 10, 32)
			if err != nil || idx == 0 {
				return lineError(ik, "%q is not an ifIndex (a whole number from 1)", ik.Value)
			}
			it, err := interfaceOf(iv)
			if err != nil {
				return err
			}
			ifs[uint32(idx)] = it
		}
		out[addr.Unmap()] = ifs
	}
	*in = out
	return nil
}

func interfaceOf(n *yaml.Node) (names.Interface, error) {
	var it names.Interface
	if n.Kind != yaml.MappingNode {
		return it, lineError(n, "want {name: ..., description: ..., speed: ...}, got %s", shown(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			it.Name = strings.TrimSpace(v.Value)
		case "description":
			it.Description = v.Value
		case "speed":
			s, err := parseSpeed(v.Value)
			if err != nil {
				return it, lineError(v, "speed: %v", err)
			}
			it.SpeedMbps = s
		default:
			return it, lineError(k, "unknown key %q: an interface takes name, description, speed", k.Value)
		}
	}
	if it.Name == "" {
		return it, lineError(n, "an interface needs a name")
	}
	it.Source = names.SourceStatic
	return it, nil
}

// parseSpeed reads an interface speed in bits/s: "100G", "10Gbps", "400M",
// "1000000000"; it returns Mbit/s, as ifHighSpeed does.
func parseSpeed(s string) (uint64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "bps"), "b")
	mul := 1.0 / 1e6
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			mul, t = 1e-3, t[:len(t)-1]
		case 'M':
			mul, t = 1, t[:len(t)-1]
		case 'G':
			mul, t = 1e3, t[:len(t)-1]
		case 'T':
			mul, t = 1e6, t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*mul < 1 {
		return 0, fmt.Errorf("%q is not a speed such as 100G, 10G, 400M (bits/s, at least 1M)", s)
	}
	return uint64(v*mul + 0.5), nil
}

// check bounds the enrichment keys (Config.check calls it).
func (c *Config) checkEnrich(src configSource) error {
	switch c.GeoIP.ASSource {
	case "export", "database":
	default:
		return src.errorf("geoip.as_source", "want export or database, got %q", c.GeoIP.ASSource)
	}
	for _, f := range []struct{ key, path string }{{"geoip.country", c.GeoIP.Country}, {"geoip.asn", c.GeoIP.ASN}} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err != nil || !st.Mode().IsRegular() {
			return src.errorf(f.key, "cannot read %q: want an .mmdb file", f.path)
		}
	}
	if c.Naming.DNSTimeout <= 0 {
		return src.errorf("naming.dns_timeout", "want a duration > 0, got %v", c.Naming.DNSTimeout)
	}
	if c.GeoIP.ReloadInterval < 0 {
		return src.errorf("geoip.reload_interval", "want a duration >= 0 (0: never), got %v", c.GeoIP.ReloadInterval)
	}
	if _, err := names.New(c.namesConfiguration(), names.Dependencies{}); err != nil {
		return src.errorf("naming.interface_sources", "%v", strings.TrimPrefix(err.Error(), "names: "))
	}
	return c.SNMP.check(src)
}

// Secret is a string the effective configuration (GET /api/v1/config) and
// the errors never show: an SNMP community or passphrase.
type Secret string

func (*Secret) secret() {}

// MarshalYAML redacts a secret that is set.
func (s Secret) MarshalYAML() (any, error) {
	if s == "" {
		return "", nil
	}
	return "redacted", nil
}

// SNMPCredentials are how tmsd polls one exporter's agent (`snmp:` and its
// `exporters:` entries).
type SNMPCredentials struct {
	Version        string `yaml:"version"` // 2c or 3
	Community      Secret `yaml:"community"`
	User           string `yaml:"user"`
	AuthProtocol   string `yaml:"auth_protocol"`
	AuthPassphrase Secret `yaml:"auth_passphrase"`
	PrivProtocol   string `yaml:"priv_protocol"`
	PrivPassphrase Secret `yaml:"priv_passphrase"`
	Port           uint16 `yaml:"port"`
	Agent          string `yaml:"agent"` // the address polled; "" the exporter's
}

func (c SNMPCredentials) credentials() snmp.Credentials {
	out := snmp.Credentials{Version: c.Version, Community: string(c.Community), User: c.User,
		AuthProtocol: c.AuthProtocol, AuthPassphrase: string(c.AuthPassphrase),
		PrivProtocol: c.PrivProtocol, PrivPassphrase: string(c.PrivPassphrase), Port: c.Port}
	if a, err := netip.ParseAddr(c.Agent); err == nil {
		out.Agent = a.Unmap()
	}
	return out
}

// SNMPConfig is the `snmp:` section: interface and exporter names polled
// from the exporters' agents (ifName, ifAlias, ifHighSpeed, sysName).
type SNMPConfig struct {
	Enabled         bool `yaml:"enabled"`
	SNMPCredentials `yaml:",inline"`
	Exporters       SNMPExporters `yaml:"exporters"`
	OnlyListed      bool          `yaml:"only_listed"`
	Refresh         Duration      `yaml:"refresh"`
	Timeout         Duration      `yaml:"timeout"`
	Retries         int           `yaml:"retries"`
	Workers         int           `yaml:"workers"`
}

func defaultSNMPConfig() SNMPConfig {
	d := snmp.DefaultConfiguration()
	return SNMPConfig{
		SNMPCredentials: SNMPCredentials{Version: d.Default.Version, Community: Secret(d.Default.Community)},
		Refresh:         Duration(d.Refresh), Timeout: Duration(d.Timeout), Retries: d.Retries, Workers: d.Workers,
	}
}

func (c SNMPConfig) configuration() snmp.Configuration {
	out := snmp.DefaultConfiguration()
	out.Enabled, out.OnlyListed = c.Enabled, c.OnlyListed
	out.Default = c.credentials()
	out.Refresh, out.Timeout = time.Duration(c.Refresh), time.Duration(c.Timeout)
	out.Retries, out.Workers = c.Retries, c.Workers
	if len(c.Exporters) > 0 {
		out.Exporters = map[netip.Addr]snmp.Credentials{}
		for a, cr := range c.Exporters {
			out.Exporters[a] = cr.credentials()
		}
	}
	return out
}

func (c SNMPConfig) check(src configSource) error {
	for a, cr := range c.Exporters {
		if cr.Agent != "" {
			if _, err := netip.ParseAddr(cr.Agent); err != nil {
				return src.errorf("snmp.exporters."+a.String()+".agent", "%q is not an IP address", cr.Agent)
			}
		}
	}
	if c.Agent != "" {
		return src.errorf("snmp.agent", "the agent address is per exporter (snmp.exporters.ADDRESS.agent)")
	}
	if _, err := snmp.New(c.configuration(), snmp.Dependencies{}); err != nil {
		key, msg := snmpErrorKey(err)
		return src.errorf(key, "%s", msg)
	}
	return nil
}

// snmpFields are the snmp package's configuration fields by their key.
var snmpFields = map[string]string{
	"Version": "version", "Community": "community", "User": "user", "AuthProtocol": "auth_protocol",
	"AuthPassphrase": "auth_passphrase", "PrivProtocol": "priv_protocol", "PrivPassphrase": "priv_passphrase",
	"Refresh": "refresh", "Timeout": "timeout", "Retries": "retries", "Workers": "workers", "OnlyListed": "only_listed",
}

var snmpErr = regexp.MustCompile(`^(?:Default\.|(Exporters)\[[^\]]*\]\.?)?([A-Za-z]+):? (.*)$`)

// snmpErrorKey names the key of an error of snmp.New ("bad configuration:
// Default.Version: unknown ..."): the poller validates, the file names.
func snmpErrorKey(err error) (key, msg string) {
	s := strings.TrimPrefix(err.Error(), snmp.ErrConfig.Error()+": ")
	m := snmpErr.FindStringSubmatch(s)
	if m == nil {
		return "snmp", s
	}
	if m[1] != "" {
		return "snmp.exporters", s
	}
	if k, ok := snmpFields[m[2]]; ok {
		return "snmp." + k, strings.TrimPrefix(m[3], ": ")
	}
	return "snmp", s
}

// SNMPExporters are per exporter credentials: "ADDRESS: {community: ...}".
type SNMPExporters map[netip.Addr]SNMPCredentials

// UnmarshalYAML reads the entries, with the line and key of a bad one in the error.
func (e *SNMPExporters) UnmarshalYAML(n *yaml.Node) error {
	if n.ShortTag() == "!!null" {
		*e = nil
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return lineError(n, "want a mapping of exporter addresses to credentials, got %s", shown(n))
	}
	out := SNMPExporters{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		addr, err := netip.ParseAddr(k.Value)
		if err != nil {
			return lineError(k, "%q is not an exporter IP address", k.Value)
		}
		var cr SNMPCredentials
		if err := decodeValue(v, reflect.ValueOf(&cr).Elem(), k.Value); err != nil {
			return err
		}
		out[addr.Unmap()] = cr
	}
	*e = out
	return nil
}

// MarshalYAML writes no entries as nothing (GET /api/v1/config reads back to the same).
func (e ExporterNames) MarshalYAML() (any, error) { return emptyNil(map[netip.Addr]string(e)) }

// MarshalYAML writes no entries as nothing.
func (in InterfaceNames) MarshalYAML() (any, error) {
	return emptyNil(map[netip.Addr]map[uint32]names.Interface(in))
}

// MarshalYAML writes no entries as nothing.
func (e SNMPExporters) MarshalYAML() (any, error) { return emptyNil(map[netip.Addr]SNMPCredentials(e)) }

func emptyNil[M ~map[K]V, K comparable, V any](m M) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
