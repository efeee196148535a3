package decode

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Options data naming interfaces: v9 with an interface scope, IPFIX with
// ingressInterface as scope, names padded with NULs, a rename, and
// softflowd's own, which names its capture source as ifIndex 0 (the
// interface of every one of its flows).
func TestOptionsInterfaceNames(t *testing.T) {
	exp := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1_700_000_000, 0)
	pad := func(s string, n int) []byte { b := make([]byte, n); copy(b, s); return b }

	d := newTestDecoder(t, noHold())
	tmpl := v9OptionsTemplateSet(300, []field{{id: v9ScopeInterface, length: 4}},
		[]field{{id: fieldInterfaceName, length: 16}, {id: fieldInterfaceDesc, length: 32}})
	rec := func(idx uint32, name, desc string) []byte {
		return set(300, u32(idx), pad(name, 16), pad(desc, 32))
	}
	_, err := d.Decode(exp, v9Datagram(1000, uint32(now.Unix()), 1, tmpl, rec(517, "xe-0/0/1", "to KT"), rec(518, "xe-0/0/2", "")), now, nil)
	require.NoError(t, err)
	f := func(d *Decoder, idx uint32, wantName, wantDesc string, wantOK bool) {
		t.Helper()
		name, desc, ok := d.OptionsInterface(exp, idx)
		require.Equal(t, wantOK, ok)
		require.Equal(t, wantName, name)
		require.Equal(t, wantDesc, desc)
	}
	f(d, 517, "xe-0/0/1", "to KT", true)
	f(d, 518, "xe-0/0/2", "", true)
	f(d, 519, "", "", false)
	_, err = d.Decode(exp, v9Datagram(2000, uint32(now.Unix()), 1, tmpl, rec(517, "xe-0/0/1", "to KT (100G)")), now, nil)
	require.NoError(t, err)
	f(d, 517, "xe-0/0/1", "to KT (100G)", true)
	require.Len(t, d.OptionsInterfaces(exp), 2)
	require.Nil(t, d.OptionsInterfaces(netip.MustParseAddr("192.0.2.9")))

	d = newTestDecoder(t, noHold())
	ipfix := ipfixOptionsTemplateSet(400, []field{{id: fieldInputSNMP, length: 4}},
		[]field{{id: fieldInterfaceName, length: variableLength}, {id: fieldInterfaceDesc, length: variableLength}})
	name, desc := "ae0", "core uplink"
	data := set(400, u32(7), u8(uint8(len(name))), []byte(name), u8(uint8(len(desc))), []byte(desc))
	_, err = d.Decode(exp, ipfixDatagram(uint32(now.Unix()), 1, ipfix, data), now, nil)
	require.NoError(t, err)
	f(d, 7, "ae0", "core uplink", true)

	for _, c := range []struct {
		capture string
		want    bool
	}{{"softflowd-v9.pcap", true}, {"softflowd-ipfix.pcap", false}} {
		d := newTestDecoder(t, noHold())
		var src netip.Addr
		for _, dg := range readCapture(t, c.capture) {
			src = dg.src
			_, err := d.Decode(dg.src, dg.payload, dg.at, nil)
			require.NoError(t, err)
		}
		// softflowd -r names the interface by the trace file's path, cut to
		// its 16-byte field; its IPFIX options have no interface (scope
		// meteringProcessId), so they name none.
		name, _, ok := d.OptionsInterface(src, 0)
		require.Equal(t, c.want, ok, c.capture)
		if c.want {
			require.Equal(t, "/work/main/testd", name)
		}
	}
}

// The exporter's AS numbers: v9/IPFIX fields 16/17, and sFlow's extended
// gateway (the destination is the AS path's last).
func TestExportedAS(t *testing.T) {
	exp := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1_700_000_000, 0)
	d := newTestDecoder(t, noHold())
	tmpl := v9TemplateSet(templateRecord(256, field{id: fieldIPv4SrcAddr, length: 4}, field{id: fieldIPv4DstAddr, length: 4},
		field{id: fieldInBytes, length: 4}, field{id: fieldSrcAS, length: 4}, field{id: fieldDstAS, length: 2}))
	recs, err := d.Decode(exp, v9Datagram(1000, uint32(now.Unix()), 1, tmpl,
		set(256, ip("198.51.100.1"), ip("203.0.113.1"), u32(100), u32(4766), u16(15169))), now, nil)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, uint32(4766), recs[0].SrcAS)
	require.Equal(t, uint32(15169), recs[0].DstAS)

	gw := func(own, src uint32, path ...uint32) []byte {
		b := cat(u32(1), ip("192.0.2.254"), u32(own), u32(src), u32(0))
		if len(path) == 0 {
			return xdrOpaque(1003, b, u32(0), u32(0), u32(0))
		}
		b = cat(b, u32(1), u32(2), u32(uint32(len(path))))
		for _, a := range path {
			b = cat(b, u32(a))
		}
		return xdrOpaque(1003, b, u32(0), u32(0))
	}
	f := func(rec []byte, wantSrc, wantDst uint32) {
		t.Helper()
		d := newTestDecoder(t, noHold())
		recs, err := d.Decode(exp, sflowDatagram("192.0.2.1", 0, sfFlowSample(1, 1, 2,
			sflowSampledIPv4Record(100, 6, "198.51.100.1", "203.0.113.1", 1234, 443, 0), rec)), now, nil)
		require.NoError(t, err)
		require.Len(t, recs, 1)
		require.Equal(t, wantSrc, recs[0].SrcAS)
		require.Equal(t, wantDst, recs[0].DstAS)
	}
	f(gw(64500, 4766, 3356, 15169), 4766, 15169)
	f(gw(64500, 0), 0, 64500)
}
