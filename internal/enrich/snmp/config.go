package snmp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gosnmp/gosnmp"
)

// Credentials say how to reach one exporter's SNMP agent.
type Credentials struct {
	// Version is "2c" or "3". In an Exporters entry, empty means: the default's
	// credentials, with this entry's Port and Agent when they are set.
	Version string
	// Community is the SNMPv2c community.
	Community string
	// User, AuthProtocol (MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512; empty:
	// no authentication), AuthPassphrase, PrivProtocol (DES, AES, AES-192,
	// AES-256, or AES-192-C and AES-256-C for Cisco's key extension; empty: no
	// privacy) and PrivPassphrase are the SNMPv3 USM ones. The security level
	// follows from which protocols are set.
	User           string
	AuthProtocol   string
	AuthPassphrase string
	PrivProtocol   string
	PrivPassphrase string
	// Port is the agent's UDP port; 0 is 161.
	Port uint16
	// Agent is the address polled; zero is the exporter's own address (a router
	// exporting from a loopback but answering SNMP on its management address
	// sets it).
	Agent netip.Addr
}

// Configuration of the poller.
type Configuration struct {
	// Enabled turns polling on. Off by default: polling needs credentials
	// only the user knows, and unasked SNMP traffic to routers raises alarms.
	Enabled bool
	// Default are the credentials of an exporter without an Exporters entry.
	Default Credentials
	// Exporters are per exporter credentials, by exporter address.
	Exporters map[netip.Addr]Credentials
	// OnlyListed polls the exporters of Exporters only.
	OnlyListed bool
	// Refresh is how often a known exporter is polled again.
	Refresh time.Duration
	// Timeout is the wait for one response, tried Retries more times.
	Timeout time.Duration
	Retries int
	// Workers bounds the polls in flight.
	Workers int
	// Expire is how long an exporter sends no flow before it is forgotten
	// (no longer polled, its names dropped).
	Expire time.Duration
}

// DefaultConfiguration returns the defaults: disabled, v2c "public" once an hour.
func DefaultConfiguration() Configuration {
	return Configuration{
		Default: Credentials{Version: "2c", Community: "public"},
		Refresh: time.Hour,
		Timeout: 2 * time.Second,
		Retries: 1,
		Workers: 4,
		Expire:  24 * time.Hour,
	}
}

// target is an exporter's resolved credentials: what one poll needs.
type target struct {
	exporter netip.Addr
	agent    netip.AddrPort
	version  gosnmp.SnmpVersion
	// community for v2c.
	community string
	// The v3 USM parameters; gosnmp's UsmSecurityParameters is built per poll
	// as it keeps the agent's engine state (and holds a mutex: not copyable).
	user               string
	authProto          gosnmp.SnmpV3AuthProtocol
	authPass, privPass string
	privProto          gosnmp.SnmpV3PrivProtocol
	flags              gosnmp.SnmpV3MsgFlags
}

// validate checks the configuration and resolves the listed exporters' targets.
func (cfg Configuration) validate() (map[netip.Addr]target, error) {
	switch {
	case cfg.Refresh <= 0:
		return nil, fmt.Errorf("%w: Refresh must be positive, got %s", ErrConfig, cfg.Refresh)
	case cfg.Timeout <= 0:
		return nil, fmt.Errorf("%w: Timeout must be positive, got %s", ErrConfig, cfg.Timeout)
	case cfg.Retries < 0:
		return nil, fmt.Errorf("%w: Retries must not be negative, got %d", ErrConfig, cfg.Retries)
	case cfg.Workers < 1:
		return nil, fmt.Errorf("%w: Workers must be at least 1, got %d", ErrConfig, cfg.Workers)
	case cfg.Expire <= 0:
		return nil, fmt.Errorf("%w: Expire must be positive, got %s", ErrConfig, cfg.Expire)
	case cfg.Default.Agent.IsValid():
		// One agent for every exporter would give them all the same names.
		return nil, fmt.Errorf("%w: Default.Agent must be unset: an exporter's agent is the exporter unless its Exporters entry says otherwise", ErrConfig)
	case cfg.OnlyListed && len(cfg.Exporters) == 0:
		return nil, fmt.Errorf("%w: OnlyListed without Exporters would poll nothing", ErrConfig)
	}
	if _, err := cfg.Default.resolve(netip.IPv4Unspecified()); err != nil {
		return nil, fmt.Errorf("%w: Default.%w", ErrConfig, err)
	}
	targets := make(map[netip.Addr]target, len(cfg.Exporters))
	for addr, c := range cfg.Exporters {
		if !addr.IsValid() {
			return nil, fmt.Errorf("%w: Exporters: invalid exporter address", ErrConfig)
		}
		addr = addr.Unmap().WithZone("") // as Seen looks them up
		if _, dup := targets[addr]; dup {
			return nil, fmt.Errorf("%w: Exporters[%s] is listed twice (IPv4 and IPv4-mapped IPv6)", ErrConfig, addr)
		}
		t, err := cfg.credentials(c).resolve(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: Exporters[%s].%w", ErrConfig, addr, err)
		}
		targets[addr] = t
	}
	return targets, nil
}

// credentials applies an Exporters entry over the default: an entry with a
// Version is whole (no half-inherited v3 secrets); one without only moves the
// agent.
func (cfg Configuration) credentials(c Credentials) Credentials {
	if c.Version != "" {
		return c
	}
	d := cfg.Default
	if c.Port != 0 {
		d.Port = c.Port
	}
	d.Agent = c.Agent
	return d
}

// resolve checks the credentials and builds exporter's target. Its errors
// start with the field's name, for the caller to prefix with the entry's.
func (c Credentials) resolve(exporter netip.Addr) (target, error) {
	agent := c.Agent
	if !agent.IsValid() {
		agent = exporter
	}
	port := c.Port
	if port == 0 {
		port = 161
	}
	t := target{exporter: exporter, agent: netip.AddrPortFrom(agent.Unmap(), port)}
	switch c.Version {
	case "2c":
		if c.Community == "" {
			return target{}, fmt.Errorf("Community: must be set for SNMP v2c")
		}
		t.version, t.community = gosnmp.Version2c, c.Community
	case "3":
		if c.User == "" {
			return target{}, fmt.Errorf("User: must be set for SNMP v3")
		}
		t.version = gosnmp.Version3
		t.user = c.User
		t.flags = gosnmp.NoAuthNoPriv
		if c.AuthProtocol != "" {
			p, ok := authProtocols[normalize(c.AuthProtocol)]
			if !ok {
				return target{}, fmt.Errorf("AuthProtocol: unknown %q (MD5, SHA, SHA-224, SHA-256, SHA-384, SHA-512)", c.AuthProtocol)
			}
			if err := passphrase("AuthPassphrase", c.AuthPassphrase); err != nil {
				return target{}, err
			}
			t.authProto, t.authPass = p, c.AuthPassphrase
			t.flags = gosnmp.AuthNoPriv
		} else if c.AuthPassphrase != "" {
			return target{}, fmt.Errorf("AuthPassphrase: set without AuthProtocol")
		}
		if c.PrivProtocol != "" {
			if c.AuthProtocol == "" {
				// USM has no privacy without authentication (RFC 3414 §3.1.1).
				return target{}, fmt.Errorf("PrivProtocol: needs AuthProtocol")
			}
			p, ok := privProtocols[normalize(c.PrivProtocol)]
			if !ok {
				return target{}, fmt.Errorf("PrivProtocol: unknown %q (DES, AES, AES-192, AES-256, AES-192-C, AES-256-C)", c.PrivProtocol)
			}
			if err := passphrase("PrivPassphrase", c.PrivPassphrase); err != nil {
				return target{}, err
			}
			t.privProto, t.privPass = p, c.PrivPassphrase
			t.flags = gosnmp.AuthPriv
		} else if c.PrivPassphrase != "" {
			return target{}, fmt.Errorf("PrivPassphrase: set without PrivProtocol")
		}
	default:
		return target{}, fmt.Errorf("Version: unknown %q (2c or 3)", c.Version)
	}
	return t, nil
}

// passphrase refuses what agents refuse: net-snmp and most routers reject USM
// passphrases under 8 characters (RFC 3414 §11.2), which would fail every poll.
func passphrase(field, s string) error {
	if len(s) < 8 {
		return fmt.Errorf("%s: must be at least 8 characters", field)
	}
	return nil
}

// normalize lets "SHA-256", "sha256" and "SHA_256" name the same protocol.
func normalize(s string) string {
	return strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToUpper(s))
}

var authProtocols = map[string]gosnmp.SnmpV3AuthProtocol{
	"MD5":    gosnmp.MD5,
	"SHA":    gosnmp.SHA,
	"SHA1":   gosnmp.SHA,
	"SHA224": gosnmp.SHA224,
	"SHA256": gosnmp.SHA256,
	"SHA384": gosnmp.SHA384,
	"SHA512": gosnmp.SHA512,
}

var privProtocols = map[string]gosnmp.SnmpV3PrivProtocol{
	"DES":     gosnmp.DES,
	"AES":     gosnmp.AES,
	"AES128":  gosnmp.AES,
	"AES192":  gosnmp.AES192,
	"AES256":  gosnmp.AES256,
	"AES192C": gosnmp.AES192C,
	"AES256C": gosnmp.AES256C,
}
