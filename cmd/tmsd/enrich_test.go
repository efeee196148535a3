package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/enrich/snmp/snmptest"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

const publicPcap = "../../testdata/pcaps/softflowd-v9-public.pcap"

// importServe imports captures into a new store with the default
// configuration (no geoip, no names given) and serves it.
func importServe(t *testing.T, pcaps ...string) (base string, from, to time.Time) {
	t.Helper()
	data := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, run(append([]string{"import", "--data", data, "--retention", "36500d"}, pcaps...), &out, io.Discard))
	for i, pcap := range pcaps {
		st, err := pcapsrc.Read(pcap, func(pcapsrc.Datagram) error { return nil })
		require.NoError(t, err)
		if i == 0 || st.First.Before(from) {
			from = st.First
		}
		if st.Last.After(to) {
			to = st.Last
		}
	}
	p := startServe(t, data)
	return "http://" + p.api.Addr().String(), from.Add(-2 * time.Hour), to.Add(2 * time.Hour)
}

func topRows(t *testing.T, base, by string, from, to time.Time, extra ...string) (apiTop, map[string]string) {
	t.Helper()
	q := url.Values{"by": {by}, "n": {"100"}, "from": {from.Format(time.RFC3339)}, "to": {to.Format(time.RFC3339)}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	top := queryTopQ(t, base, q)
	labels := map[string]string{}
	for _, r := range top.Rows {
		labels[r.Key] = r.Label
	}
	return top, labels
}

// With no configuration, the embedded databases name the countries and ASes
// of the public capture's addresses, the special ranges are named as what
// they are, and each end's table adds up to the exact total.
func TestEnrichmentWithoutConfiguration(t *testing.T) {
	base, from, to := importServe(t, publicPcap)
	g := loadGolden(t, publicPcap)

	for _, by := range []string{"dstcountry", "srccountry", "dstas", "srcas"} {
		top, _ := topRows(t, base, by, from, to)
		require.True(t, top.Exact, by)
		require.Equal(t, g.Total.Bytes, top.Total.Bytes, by)
		var sum uint64
		for _, r := range top.Rows {
			sum += r.Bytes
		}
		require.Equal(t, top.Total.Bytes, sum+top.Other.Bytes, "%s: the rows and other add up to the total", by)
		require.Zero(t, top.Other.Bytes, "%s: fewer than 100 keys, all listed", by)
	}

	_, cc := topRows(t, base, "dstcountry", from, to)
	t.Logf("dstcountry: %v", cc)
	require.Equal(t, "private", cc["private"])
	require.Equal(t, "cgnat", cc["cgnat"])
	require.Equal(t, "documentation", cc["documentation"])
	require.Contains(t, cc["KR"], "Korea", "KT and SK Broadband's resolvers")
	require.Contains(t, cc["JP"], "Japan", "m.root, WIDE")
	require.Contains(t, cc["BR"], "Brazil", "NIC.br")
	require.Equal(t, "United States", cc["US"])
	for k := range cc {
		require.NotEqual(t, "unknown", k, "every address of the capture is public and known, or special")
	}

	_, as := topRows(t, base, "dstas", from, to)
	t.Logf("dstas: %v", as)
	require.Equal(t, "private", as["private"])
	require.True(t, strings.HasPrefix(as["4766"], "AS4766 "), "KT: %q", as["4766"])
	require.Contains(t, strings.ToLower(as["15169"]), "google")
	require.Contains(t, strings.ToLower(as["13335"]), "cloudflare")
	require.Contains(t, as, "7500", "m.root, WIDE")

	// A country is a scope-free dimension like any other: its rows read as
	// keys, and either end (country) counts each flow twice.
	top, _ := topRows(t, base, "country", from, to)
	require.Equal(t, 2*top.Total.Bytes, func() (s uint64) {
		for _, r := range top.Rows {
			s += r.Bytes
		}
		return s + top.Other.Bytes
	}())
}

// softflowd sends its interface's name in options data (field 82, ifIndex 0:
// it names its capture source, the trace file's path cut to 16 bytes); tmsd
// labels the interface with it, with no SNMP and no configuration.
func TestOptionsDataNamesInterfaces(t *testing.T) {
	p := startServe(t, t.TempDir())
	pcap := "../../testdata/pcaps/softflowd-v9.pcap"
	start := time.Now()
	sent := replayPcap(t, p.listeners[0].Addrs()[0].String(), pcap)
	waitDecoded(t, p, sent)
	base := "http://" + p.api.Addr().String()
	top, labels := topRows(t, base, "in_if", start.Add(-time.Minute), time.Now().Add(2*time.Minute))
	require.Len(t, top.Rows, 1)
	require.Contains(t, labels, "127.0.0.1:0")
	require.True(t, strings.HasSuffix(labels["127.0.0.1:0"], " /work/main/testd"), "label %q", labels["127.0.0.1:0"])

	var ex struct {
		Exporters []struct {
			Address        string
			InterfaceNames map[string]struct{ Name, Source string } `json:"interface_names"`
		}
	}
	getJSON(t, base+"/api/v1/exporters", &ex)
	require.Len(t, ex.Exporters, 1)
	require.Equal(t, "/work/main/testd", ex.Exporters[0].InterfaceNames["0"].Name)
	require.Equal(t, "options", ex.Exporters[0].InterfaceNames["0"].Source)
}

// v5Datagram is one NetFlow v5 datagram of flows from 198.51.100.1 in on
// ifIndex in and out on out, with first/last times now.
func v5Datagram(now time.Time, in, out uint16, flows int) []byte {
	b := binary.BigEndian.AppendUint16(nil, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(flows))
	b = binary.BigEndian.AppendUint32(b, 100_000) // sysUptime ms
	b = binary.BigEndian.AppendUint32(b, uint32(now.Unix()))
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = append(b, 0, 0, 0, 0)
	for i := range flows {
		b = append(b, 198, 51, 100, 1, 203, 0, 113, byte(i+1), 0, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, in)
		b = binary.BigEndian.AppendUint16(b, out)
		b = binary.BigEndian.AppendUint32(b, 10)   // packets
		b = binary.BigEndian.AppendUint32(b, 1000) // bytes
		b = binary.BigEndian.AppendUint32(b, 99_000)
		b = binary.BigEndian.AppendUint32(b, 100_000)
		b = binary.BigEndian.AppendUint16(b, 40000+uint16(i))
		b = binary.BigEndian.AppendUint16(b, 443)
		b = append(b, 0, 0x18, 6, 0, 0, 0, 0, 0, 24, 24, 0, 0)
	}
	return b
}

// SNMP names the interfaces of an exporter that sends flows: a real snmpd
// on 127.0.0.1 (the exporter's address) gives ifName and ifAlias as the
// labels of top?by=in_if and sysName as the exporter's; a rename shows after
// the refresh; an agent that stops answering leaves the names known and
// counts the failures; and an interface scope is chosen by its name.
func TestSNMPNamesInterfaces(t *testing.T) {
	agent := snmptest.NewAgent(t, snmptest.TableConf("xe-0/0/1"))
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = []string{"127.0.0.1:0"}, nil, "127.0.0.1:0", t.TempDir()
	cfg.Listener.Sockets = 1
	cfg.SNMP.Enabled = true
	cfg.SNMP.Port = agent.Addr.Port()
	cfg.SNMP.Refresh = Duration(300 * time.Millisecond)
	cfg.SNMP.Timeout = Duration(200 * time.Millisecond)
	cfg.SNMP.Retries = 0
	cfg.Naming.ReverseDNS = false // the exporter's name comes from sysName, nothing else
	p, base := serveConfig(t, cfg, nil)
	start := time.Now()
	sendFlows(t, p, v5Datagram(start, 517, 518, 3), 3)
	from, to := start.Add(-time.Minute), time.Now().Add(2*time.Minute)

	label := func(by, key string) string {
		_, labels := topRows(t, base, by, from, to)
		return labels[key]
	}
	require.Eventually(t, func() bool { return label("in_if", "127.0.0.1:517") == "seoul-bb1 xe-0/0/1 (to KT)" },
		10*time.Second, 20*time.Millisecond, "in_if label: %q", label("in_if", "127.0.0.1:517"))
	require.Equal(t, "seoul-bb1 xe-0/0/2 (to SKB)", label("out_if", "127.0.0.1:518"))
	require.Equal(t, "seoul-bb1", label("exporter", "127.0.0.1"))

	// The interface scope by name: the exporter's name or address and the ifName, or the ifName alone.
	for _, name := range []string{"seoul-bb1:xe-0/0/1", "127.0.0.1:xe-0/0/1", "xe-0/0/1"} {
		top, _ := topRows(t, base, "dstport", from, to, "if", name, "dir", "in")
		require.Equal(t, uint64(3), top.Total.Flows, name)
	}
	q := url.Values{"by": {"dstport"}, "if": {"xe-9/9/9"}, "dir": {"in"}}
	resp, err := http.Get(base + "/api/v1/top?" + q.Encode())
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(body), `no interface named \"xe-9/9/9\"`)

	agent.Restart(snmptest.TableConf("xe-0/0/1-renamed"))
	require.Eventually(t, func() bool { return label("in_if", "127.0.0.1:517") == "seoul-bb1 xe-0/0/1-renamed (to KT)" },
		10*time.Second, 20*time.Millisecond, "after the rename: %q", label("in_if", "127.0.0.1:517"))

	agent.Stop()
	failures := func() uint64 {
		for _, e := range p.snmp.Exporters() {
			return e.Failures
		}
		return 0
	}
	require.Eventually(t, func() bool { return failures() >= 2 }, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "seoul-bb1 xe-0/0/1-renamed (to KT)", label("in_if", "127.0.0.1:517"), "an unreachable agent leaves the names known")
	require.Contains(t, metricsText(t, base), "tmsd_snmp_poll_failures_total")
}

// metricsText is GET /metrics.
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
