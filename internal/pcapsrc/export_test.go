package pcapsrc

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
)

func testdataPath(dir, name string) string { return filepath.Join("..", "..", "testdata", dir, name) }

// captureProtocol is what a testdata capture holds, by its name.
func captureProtocol(name string) flow.Protocol {
	switch {
	case strings.Contains(name, "sflow"):
		return flow.ProtoSFlowV5
	case strings.Contains(name, "ipfix"):
		return flow.ProtoIPFIX
	case strings.Contains(name, "v9"):
		return flow.ProtoNetFlowV9
	case strings.Contains(name, "v5"):
		return flow.ProtoNetFlowV5
	}
	return flow.ProtoUnknown
}

// Every datagram of every exporter capture is recognised as its protocol,
// though none goes to a well-known port; none of the raw traces' is.
func TestSelectorTestdata(t *testing.T) {
	captures, err := filepath.Glob(testdataPath("pcaps", "*.pcap"))
	require.NoError(t, err)
	require.NotEmpty(t, captures)
	sel := NewSelector()
	for _, path := range append(captures, testdataPath("traces", "trace.pcap"), testdataPath("traces", "public.pcap")) {
		want := captureProtocol(filepath.Base(path))
		n := 0
		_, err := Read(path, func(d Datagram) error {
			n++
			require.False(t, sel.FlowPort(d.Dst.Port()), "%s goes to %s", path, d.Dst)
			require.Equal(t, want, sel.Export(d), "%s datagram %d", path, n)
			return nil
		})
		require.NoError(t, err)
		require.Positive(t, n, path)
		t.Logf("%s: %d datagrams, all %s", filepath.Base(path), n, want)
	}
}

// firstPayload is a copy of the first datagram of a testdata capture.
func firstPayload(t *testing.T, name string) []byte {
	t.Helper()
	var first []byte
	_, err := Read(testdataPath("pcaps", name), func(d Datagram) error {
		if first == nil {
			first = bytes.Clone(d.Payload)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, first, name)
	return first
}

func TestSniff(t *testing.T) {
	v5, v9 := firstPayload(t, "softflowd-v5.pcap"), firstPayload(t, "softflowd-v9.pcap")
	ipfix, sflow := firstPayload(t, "pmacct-ipfix.pcap"), firstPayload(t, "pmacct-sflow.pcap")
	edit := func(b []byte, fn func(b []byte) []byte) []byte { return fn(bytes.Clone(b)) }
	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint16(b[off:], v); return b }
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint32(b[off:], v); return b }
	}
	add := func(tail ...byte) func([]byte) []byte { return func(b []byte) []byte { return append(b, tail...) } }
	cut := func(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:len(b)-n] } }
	v5count := binary.BigEndian.Uint16(v5[2:])
	sflowSamples := binary.BigEndian.Uint32(sflow[24:]) // IPv4 agent: the count ends the 28-byte header

	f := func(name string, payload []byte, want flow.Protocol) {
		t.Helper()
		require.Equal(t, want, Sniff(payload), name)
	}
	f("v5", v5, flow.ProtoNetFlowV5)
	f("v5 zero padding", edit(v5, add(0, 0, 0, 0)), flow.ProtoNetFlowV5)
	f("v5 trailing bytes", edit(v5, add(1)), flow.ProtoUnknown)
	f("v5 a record short", edit(v5, cut(48)), flow.ProtoUnknown)
	f("v5 count too high", edit(v5, put16(2, v5count+1)), flow.ProtoUnknown)
	f("v5 count zero", edit(v5, put16(2, 0)), flow.ProtoUnknown)
	f("v5 nanoseconds", edit(v5, put32(12, 1e9)), flow.ProtoUnknown)
	f("v9", v9, flow.ProtoNetFlowV9)
	f("v9 padding", edit(v9, add(0, 0, 0)), flow.ProtoNetFlowV9)
	f("v9 flowset id 2", edit(v9, put16(20, 2)), flow.ProtoUnknown)
	f("v9 flowset longer than the datagram", edit(v9, cut(1)), flow.ProtoUnknown)
	f("v9 flowset length 2", edit(v9, put16(22, 2)), flow.ProtoUnknown)
	f("v9 no flowset", v9[:20], flow.ProtoUnknown)
	f("ipfix", ipfix, flow.ProtoIPFIX)
	f("ipfix length", edit(ipfix, put16(2, uint16(len(ipfix)+1))), flow.ProtoUnknown)
	f("ipfix set id 4", edit(ipfix, put16(16, 4)), flow.ProtoUnknown)
	f("ipfix trailing bytes", edit(ipfix, add(0, 0, 0, 0)), flow.ProtoUnknown)
	f("sflow", sflow, flow.ProtoSFlowV5)
	f("sflow a sample more", edit(sflow, put32(24, sflowSamples+1)), flow.ProtoUnknown)
	f("sflow a sample less", edit(sflow, put32(24, sflowSamples-1)), flow.ProtoUnknown)
	f("sflow agent address type", edit(sflow, put32(4, 3)), flow.ProtoUnknown)
	f("sflow cut", edit(sflow, cut(4)), flow.ProtoUnknown)
	f("empty", nil, flow.ProtoUnknown)
	f("zeros", make([]byte, 512), flow.ProtoUnknown)
	// A DNS query whose ID happens to be 9: the version field alone would say v9.
	f("dns id 9", []byte{0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1}, flow.ProtoUnknown)
}

// On a flow port the version field is enough: a malformed datagram of a real
// exporter reaches the decoder and is counted against it. Elsewhere the framing
// must hold, unless the port is given (a collector's configured listen port).
func TestSelectorPorts(t *testing.T) {
	broken := firstPayload(t, "softflowd-v9.pcap")[:30] // a v9 header and a cut flowset
	src := netip.MustParseAddrPort("192.0.2.1:40000")
	dg := func(port uint16, payload []byte) Datagram {
		return Datagram{Src: src, Dst: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), port), Payload: payload}
	}
	f := func(sel *Selector, port uint16, payload []byte, want flow.Protocol) {
		t.Helper()
		require.Equal(t, want, sel.Export(dg(port, payload)), "port %d", port)
	}
	plain, own := NewSelector(), NewSelector(40109, 0)
	for _, port := range WellKnownPorts {
		f(plain, port, broken, flow.ProtoNetFlowV9)
		f(plain, port, make([]byte, 64), flow.ProtoUnknown)
	}
	f(plain, 40109, broken, flow.ProtoUnknown)
	f(own, 40109, broken, flow.ProtoNetFlowV9)
	f(own, 40110, broken, flow.ProtoUnknown)
	f(own, 0, broken, flow.ProtoUnknown)
	f(plain, 53, firstPayload(t, "softflowd-v9.pcap"), flow.ProtoNetFlowV9)
}
