package snmp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestConfigValidation(t *testing.T) {
	exporter := netip.MustParseAddr("192.0.2.1")
	v3 := Credentials{Version: "3", User: "u", AuthProtocol: "SHA-256", AuthPassphrase: "12345678",
		PrivProtocol: "AES-256", PrivPassphrase: "abcdefgh"}
	for name, tc := range map[string]struct {
		edit  func(*Configuration)
		field string // the error names it
	}{
		"workers":            {func(c *Configuration) { c.Workers = 0 }, "Workers"},
		"refresh":            {func(c *Configuration) { c.Refresh = 0 }, "Refresh"},
		"timeout":            {func(c *Configuration) { c.Timeout = -time.Second }, "Timeout"},
		"retries":            {func(c *Configuration) { c.Retries = -1 }, "Retries"},
		"expire":             {func(c *Configuration) { c.Expire = 0 }, "Expire"},
		"version":            {func(c *Configuration) { c.Default.Version = "1" }, "Default.Version"},
		"community":          {func(c *Configuration) { c.Default.Community = "" }, "Default.Community"},
		"default agent":      {func(c *Configuration) { c.Default.Agent = exporter }, "Default.Agent"},
		"only listed, empty": {func(c *Configuration) { c.OnlyListed = true }, "OnlyListed"},
		"v3 without user": {func(c *Configuration) {
			c.Default = v3
			c.Default.User = ""
		}, "Default.User"},
		"auth protocol": {func(c *Configuration) {
			c.Default = v3
			c.Default.AuthProtocol = "SHA3"
		}, "Default.AuthProtocol"},
		"short auth passphrase": {func(c *Configuration) {
			c.Default = v3
			c.Default.AuthPassphrase = "short"
		}, "Default.AuthPassphrase"},
		"priv protocol": {func(c *Configuration) {
			c.Default = v3
			c.Default.PrivProtocol = "3DES"
		}, "Default.PrivProtocol"},
		"priv without auth": {func(c *Configuration) {
			c.Default = v3
			c.Default.AuthProtocol, c.Default.AuthPassphrase = "", ""
		}, "Default.PrivProtocol"},
		"auth passphrase without protocol": {func(c *Configuration) {
			c.Default = Credentials{Version: "3", User: "u", AuthPassphrase: "12345678"}
		}, "Default.AuthPassphrase"},
		"exporter entry": {func(c *Configuration) {
			c.Exporters = map[netip.Addr]Credentials{exporter: {Version: "2c"}}
		}, "Exporters[192.0.2.1].Community"},
		"exporter listed twice": {func(c *Configuration) {
			c.Exporters = map[netip.Addr]Credentials{exporter: {}, netip.AddrFrom16(exporter.As16()): {}}
		}, "twice"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfiguration()
			tc.edit(&cfg)
			_, err := New(cfg, Dependencies{})
			require.ErrorIs(t, err, ErrConfig)
			require.ErrorContains(t, err, tc.field)
		})
	}

	// Every documented protocol is accepted, and the level follows from them.
	for _, a := range []string{"MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512", "sha256"} {
		for _, pr := range []string{"DES", "AES", "AES-192", "AES-256", "AES-192-C", "AES-256-C", ""} {
			c := Credentials{Version: "3", User: "u", AuthProtocol: a, AuthPassphrase: "12345678", PrivProtocol: pr}
			want := gosnmp.AuthNoPriv
			if pr != "" {
				c.PrivPassphrase, want = "abcdefgh", gosnmp.AuthPriv
			}
			tgt, err := c.resolve(exporter)
			require.NoError(t, err, "%s/%s", a, pr)
			require.Equal(t, want, tgt.flags)
		}
	}
	tgt, err := Credentials{Version: "3", User: "u"}.resolve(exporter)
	require.NoError(t, err)
	require.Equal(t, gosnmp.NoAuthNoPriv, tgt.flags)
}

func TestConfigCredentials(t *testing.T) {
	x, y, z := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")
	mgmt := netip.MustParseAddr("198.51.100.1")
	cfg := DefaultConfiguration()
	cfg.Default.Community = "s3cret"
	cfg.Exporters = map[netip.Addr]Credentials{
		// No Version: the default's credentials, another port and agent.
		netip.AddrFrom16(x.As16()): {Port: 1161, Agent: mgmt},
		// A Version: whole, nothing inherited.
		y: {Version: "3", User: "u"},
	}
	p, err := New(cfg, Dependencies{Registry: prometheus.NewRegistry()})
	require.NoError(t, err)

	tx := p.targetOf(x) // listed as IPv4-mapped, found as IPv4
	require.Equal(t, netip.AddrPortFrom(mgmt, 1161), tx.agent)
	require.Equal(t, gosnmp.Version2c, tx.version)
	require.Equal(t, "s3cret", tx.community)

	ty := p.targetOf(y)
	require.Equal(t, netip.AddrPortFrom(y, 161), ty.agent)
	require.Equal(t, gosnmp.Version3, ty.version)
	require.Empty(t, ty.community)

	tz := p.targetOf(z) // unlisted: the default, at the exporter
	require.Equal(t, netip.AddrPortFrom(z, 161), tz.agent)
	require.Equal(t, "s3cret", tz.community)

	// Metrics are registered once: a second poller on the same registry is refused.
	reg := prometheus.NewRegistry()
	_, err = New(cfg, Dependencies{Registry: reg})
	require.NoError(t, err)
	_, err = New(cfg, Dependencies{Registry: reg})
	require.Error(t, err)
}
