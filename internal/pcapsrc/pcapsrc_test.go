package pcapsrc

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/stretchr/testify/require"
)

var (
	srcMAC = net.HardwareAddr{0, 1, 2, 3, 4, 5}
	dstMAC = net.HardwareAddr{0, 1, 2, 3, 4, 6}
	t0     = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
)

type frame struct {
	ts   time.Time
	data []byte
}

type got struct {
	ts       time.Time
	src, dst netip.AddrPort
	payload  string
}

func readAll(t testing.TB, path string) ([]got, Stats) {
	t.Helper()
	var out []got
	stats, err := Read(path, func(d Datagram) error {
		out = append(out, got{d.Time, d.Src, d.Dst, string(d.Payload)})
		return nil
	})
	require.NoError(t, err)
	return out, stats
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...))
	return append([]byte(nil), buf.Bytes()...)
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: typ}
}

func ip4(src, dst netip.AddrPort, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
}

func udpLayer(src, dst netip.AddrPort) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
}

// ipv4UDP is an IPv4 packet carrying a UDP datagram (no link header).
func ipv4UDP(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	ip, u := ip4(src, dst, layers.IPProtocolUDP), udpLayer(src, dst)
	require.NoError(t, u.SetNetworkLayerForChecksum(ip))
	return serialize(t, ip, u, gopacket.Payload(payload))
}

// udpBytes is a UDP header and payload, checksummed for the IPv4 pair.
func udpBytes(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	ip, u := ip4(src, dst, layers.IPProtocolUDP), udpLayer(src, dst)
	require.NoError(t, u.SetNetworkLayerForChecksum(ip))
	return serialize(t, u, gopacket.Payload(payload))
}

// ipv4Fragments splits a UDP datagram into IPv4 fragments of at most size payload bytes.
func ipv4Fragments(t testing.TB, src, dst netip.AddrPort, id uint16, payload []byte, size int) [][]byte {
	whole := udpBytes(t, src, dst, payload)
	var out [][]byte
	for off := 0; off < len(whole); off += size {
		end := min(off+size, len(whole))
		ip := ip4(src, dst, layers.IPProtocolUDP)
		ip.Id = id
		ip.FragOffset = uint16(off / 8)
		if end < len(whole) {
			ip.Flags = layers.IPv4MoreFragments
		}
		out = append(out, serialize(t, ip, gopacket.Payload(whole[off:end])))
	}
	return out
}

func withEth(t testing.TB, typ layers.EthernetType, ip []byte) []byte {
	return serialize(t, eth(typ), gopacket.Payload(ip))
}

func writePcap(t testing.TB, link layers.LinkType, nanos bool, frames []frame) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "capture.pcap")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if nanos {
		w = pcapgo.NewWriterNanos(f)
	}
	require.NoError(t, w.WriteFileHeader(65536, link))
	for _, fr := range frames {
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: fr.ts, CaptureLength: len(fr.data), Length: len(fr.data)}, fr.data))
	}
	return path
}

// writeRawPcap writes a classic pcap by hand: any link type (pcapgo's is a uint8), any byte order.
func writeRawPcap(t testing.TB, link uint32, order binary.AppendByteOrder, frames []frame) string {
	t.Helper()
	var b []byte
	b = order.AppendUint32(b, pcapMagicMicro)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint16(b, 4)
	b = append(b, make([]byte, 8)...)
	b = order.AppendUint32(b, 262144)
	b = order.AppendUint32(b, link)
	for _, fr := range frames {
		b = order.AppendUint32(b, uint32(fr.ts.Unix()))
		b = order.AppendUint32(b, uint32(fr.ts.Nanosecond()/1000))
		b = order.AppendUint32(b, uint32(len(fr.data)))
		b = order.AppendUint32(b, uint32(len(fr.data)))
		b = append(b, fr.data...)
	}
	path := filepath.Join(t.TempDir(), "capture.pcap")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

var (
	v4a = netip.MustParseAddrPort("192.0.2.1:40000")
	v4b = netip.MustParseAddrPort("192.0.2.2:2055")
	v6a = netip.MustParseAddrPort("[2001:db8::1]:40001")
	v6b = netip.MustParseAddrPort("[2001:db8::2]:6343")
)

// ethernetCapture has, in order: IPv4/UDP, IPv6/UDP, TCP, IPv4/UDP in a VLAN with Ethernet
// padding, IPv6 with a hop-by-hop header, ARP, and a 2-fragment IPv4/UDP datagram.
func ethernetCapture(t testing.TB) ([]frame, []got, []byte) {
	big := bytes.Repeat([]byte("0123456789"), 250) // with the UDP header: fragments of 1,480 and 1,028 bytes

	ip6, u6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: v6a.Addr().AsSlice(), DstIP: v6b.Addr().AsSlice()}, udpLayer(v6a, v6b)
	require.NoError(t, u6.SetNetworkLayerForChecksum(ip6))
	v6 := serialize(t, eth(layers.EthernetTypeIPv6), ip6, u6, gopacket.Payload("ipv6 datagram"))

	tcp := &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true}
	ip := ip4(v4a, v4b, layers.IPProtocolTCP)
	require.NoError(t, tcp.SetNetworkLayerForChecksum(ip))
	tcpFrame := serialize(t, eth(layers.EthernetTypeIPv4), ip, tcp)

	vlan := serialize(t, eth(layers.EthernetTypeDot1Q),
		&layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		gopacket.Payload(ipv4UDP(t, v4a, v4b, []byte("vl"))))
	vlan = append(vlan, make([]byte, 60-len(vlan))...) // Ethernet padding
	require.Len(t, vlan, 60)

	// IPv6 with a hop-by-hop options header (PadN) before UDP.
	hbh := []byte{byte(layers.IPProtocolUDP), 0, 1, 4, 0, 0, 0, 0}
	ip6h := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: v6b.Addr().AsSlice(), DstIP: v6a.Addr().AsSlice()}
	uh := udpLayer(v6b, v6a)
	require.NoError(t, uh.SetNetworkLayerForChecksum(ip6h))
	udp6 := serialize(t, uh, gopacket.Payload("after hop-by-hop"))
	hop := serialize(t, eth(layers.EthernetTypeIPv6), ip6h, gopacket.Payload(append(hbh, udp6...)))

	arp := serialize(t, eth(layers.EthernetTypeARP), &layers.ARP{
		AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: srcMAC, SourceProtAddress: []byte{192, 0, 2, 1},
		DstHwAddress: dstMAC, DstProtAddress: []byte{192, 0, 2, 2},
	})

	frags := ipv4Fragments(t, v4b, v4a, 4242, big, 1480)
	require.Len(t, frags, 2)

	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	frames := []frame{
		{at(0), withEth(t, layers.EthernetTypeIPv4, ipv4UDP(t, v4a, v4b, []byte("ipv4 datagram")))},
		{at(1), v6},
		{at(2), tcpFrame},
		{at(3), vlan},
		{at(4), hop},
		{at(5), arp},
		{at(6), withEth(t, layers.EthernetTypeIPv4, frags[0])},
		{at(7), withEth(t, layers.EthernetTypeIPv4, frags[1])},
	}
	want := []got{
		{at(0), v4a, v4b, "ipv4 datagram"},
		{at(1), v6a, v6b, "ipv6 datagram"},
		{at(3), v4a, v4b, "vl"},
		{at(4), v6b, v6a, "after hop-by-hop"},
		{at(7), v4b, v4a, string(big)},
	}
	return frames, want, big
}

func TestReadEthernet(t *testing.T) {
	frames, want, _ := ethernetCapture(t)
	path := writePcap(t, layers.LinkTypeEthernet, false, frames)
	out, stats := readAll(t, path)
	require.Equal(t, want, out)
	require.Equal(t, Stats{Packets: 8, Datagrams: 5, Skipped: 2, First: t0, Last: t0.Add(7 * time.Millisecond)}, stats)
}

func TestReadPcapng(t *testing.T) {
	frames, want, _ := ethernetCapture(t)
	path := filepath.Join(t.TempDir(), "capture.pcapng")
	f, err := os.Create(path)
	require.NoError(t, err)
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
	require.NoError(t, err)
	for _, fr := range frames {
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: fr.ts, CaptureLength: len(fr.data), Length: len(fr.data), InterfaceIndex: 0}, fr.data))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	out, stats := readAll(t, path)
	require.Equal(t, want, out)
	require.EqualValues(t, 8, stats.Packets)
	require.EqualValues(t, 2, stats.Skipped)
}

func TestReadGzip(t *testing.T) {
	frames, want, _ := ethernetCapture(t)
	raw, err := os.ReadFile(writePcap(t, layers.LinkTypeEthernet, true, frames))
	require.NoError(t, err)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err = zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	path := filepath.Join(t.TempDir(), "capture.pcap.gz")
	require.NoError(t, os.WriteFile(path, gz.Bytes(), 0o644))
	out, _ := readAll(t, path)
	require.Equal(t, want, out)
}

// tcpdump -i any: Linux cooked captures, v1 and v2.
func TestReadLinuxCooked(t *testing.T) {
	ip := ipv4UDP(t, v4a, v4b, []byte("cooked"))
	sll := make([]byte, 16)
	binary.BigEndian.PutUint16(sll[0:], 0)   // to us
	binary.BigEndian.PutUint16(sll[2:], 772) // ARPHRD_LOOPBACK
	binary.BigEndian.PutUint16(sll[4:], 6)
	binary.BigEndian.PutUint16(sll[14:], 0x0800)
	sll2 := make([]byte, 20)
	binary.BigEndian.PutUint16(sll2[0:], 0x0800)
	binary.BigEndian.PutUint32(sll2[4:], 1) // ifindex
	binary.BigEndian.PutUint16(sll2[8:], 772)
	want := []got{{t0, v4a, v4b, "cooked"}}

	t.Run("SLL", func(t *testing.T) {
		path := writePcap(t, layers.LinkTypeLinuxSLL, true, []frame{{t0, append(sll, ip...)}})
		out, stats := readAll(t, path)
		require.Equal(t, want, out)
		require.Zero(t, stats.Skipped)
	})
	t.Run("SLL2", func(t *testing.T) {
		sll2IPv6 := append([]byte(nil), sll2...)
		binary.BigEndian.PutUint16(sll2IPv6, 0x86dd) // claims IPv6, carries IPv4: skipped
		path := writeRawPcap(t, linkSLL2, binary.BigEndian, []frame{{t0, append(sll2, ip...)}, {t0, append(sll2IPv6, ip...)}})
		out, stats := readAll(t, path)
		require.Equal(t, want, out)
		require.EqualValues(t, 1, stats.Skipped)
	})
}

func TestReadOtherLinks(t *testing.T) {
	ip := ipv4UDP(t, v4a, v4b, []byte("x"))
	want := []got{{t0, v4a, v4b, "x"}}
	for name, tc := range map[string]struct {
		link   uint32
		header []byte
	}{
		"null":      {linkNull, []byte{2, 0, 0, 0}},
		"null (BE)": {linkNull, []byte{0, 0, 0, 2}},
		"loop":      {linkLoop, []byte{0, 0, 0, 2}},
		"raw":       {linkRaw, nil},
		"ipv4":      {linkIPv4, nil},
	} {
		t.Run(name, func(t *testing.T) {
			out, _ := readAll(t, writeRawPcap(t, tc.link, binary.LittleEndian, []frame{{t0, append(tc.header, ip...)}}))
			require.Equal(t, want, out)
		})
	}
	// An unknown link type is skipped.
	out, stats := readAll(t, writeRawPcap(t, 147, binary.LittleEndian, []frame{{t0, ip}}))
	require.Empty(t, out)
	require.Equal(t, Stats{Packets: 1, Skipped: 1, First: t0, Last: t0}, stats)
}

func TestReadErrors(t *testing.T) {
	frames, _, _ := ethernetCapture(t)
	path := writePcap(t, layers.LinkTypeEthernet, false, frames[:3])
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	recordEnd := 24 + 16 + len(frames[0].data) // after the first record

	for name, data := range map[string][]byte{
		"mid record":       raw[:len(raw)-5],
		"no record data":   raw[:recordEnd+16],
		"mid record hdr":   raw[:recordEnd+7],
		"mid file header":  raw[:10],
		"not a capture":    []byte("hello, world"),
		"empty":            nil,
		"pcapng truncated": ngTruncated(t, frames),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.pcap")
			require.NoError(t, os.WriteFile(p, data, 0o644))
			_, err := Read(p, func(Datagram) error { return nil })
			require.Error(t, err)
			require.Contains(t, err.Error(), p)
		})
	}
	// Truncated at a record boundary is a clean end.
	p := filepath.Join(t.TempDir(), "short.pcap")
	require.NoError(t, os.WriteFile(p, raw[:recordEnd], 0o644))
	_, stats := readAll(t, p)
	require.EqualValues(t, 1, stats.Datagrams)

	_, err = Read(filepath.Join(t.TempDir(), "missing.pcap"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)

	// An error from fn stops the reading.
	stop := errors.New("stop")
	n := 0
	_, err = Read(path, func(Datagram) error { n++; return stop })
	require.ErrorIs(t, err, stop)
	require.Contains(t, err.Error(), path)
	require.Equal(t, 1, n)
}

func ngTruncated(t testing.TB, frames []frame) []byte {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeEthernet)
	require.NoError(t, err)
	for _, fr := range frames {
		require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: fr.ts, CaptureLength: len(fr.data), Length: len(fr.data)}, fr.data))
	}
	require.NoError(t, w.Flush())
	return b.Bytes()[:b.Len()-3]
}

func TestNgTimestamps(t *testing.T) {
	for _, tc := range []struct {
		ifc  ngInterface
		ts   uint64
		want time.Time
	}{
		{ngInterface{units: 1e6}, 1_500_000, time.Unix(1, 5e8)},
		{ngInterface{units: 1e9}, 1_700_000_000_123_456_789, time.Unix(1_700_000_000, 123_456_789)},
		{ngInterface{units: 1 << 10, offset: 100}, 3<<10 | 512, time.Unix(103, 5e8)},
	} {
		require.Equal(t, tc.want.UTC(), tc.ifc.time(tc.ts))
	}
}

// Decoder-level fragment tests.

func decodeAll(d *decoder, link uint32, frames [][]byte) []got {
	var out []got
	for i, f := range frames {
		dg, ok, _ := d.decode(packet{data: f, ts: t0.Add(time.Duration(i) * time.Second), link: link})
		if ok {
			out = append(out, got{dg.Time, dg.Src, dg.Dst, string(dg.Payload)})
		}
	}
	return out
}

func TestFragmentsOutOfOrderAndInterleaved(t *testing.T) {
	p1 := bytes.Repeat([]byte{'a'}, 3000)
	p2 := bytes.Repeat([]byte{'b'}, 2000)
	f1 := ipv4Fragments(t, v4a, v4b, 1, p1, 1200) // 3 fragments
	f2 := ipv4Fragments(t, v4a, v4b, 2, p2, 1200) // 2 fragments
	require.Len(t, f1, 3)
	require.Len(t, f2, 2)
	d := newDecoder()
	out := decodeAll(d, linkRaw, [][]byte{f1[2], f2[1], f1[0], f2[0], f1[1]})
	require.Equal(t, []got{
		{t0.Add(3 * time.Second), v4a, v4b, string(p2)},
		{t0.Add(4 * time.Second), v4a, v4b, string(p1)},
	}, out)
	require.Empty(t, d.frags)
	require.Zero(t, d.skipped)
}

func TestFragmentsIPv6(t *testing.T) {
	payload := bytes.Repeat([]byte("v6frag.."), 300) // 2,400 bytes
	ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: v6a.Addr().AsSlice(), DstIP: v6b.Addr().AsSlice()}
	u := udpLayer(v6a, v6b)
	require.NoError(t, u.SetNetworkLayerForChecksum(ip6))
	whole := serialize(t, u, gopacket.Payload(payload))
	var frames [][]byte
	for off := 0; off < len(whole); off += 1232 {
		end := min(off+1232, len(whole))
		fh := make([]byte, 8)
		fh[0] = protoUDP
		fo := uint16(off)
		if end < len(whole) {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], 0xdeadbeef)
		hdr := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: v6a.Addr().AsSlice(), DstIP: v6b.Addr().AsSlice()}
		frames = append(frames, serialize(t, hdr, gopacket.Payload(append(fh, whole[off:end]...))))
	}
	require.Len(t, frames, 2)
	out := decodeAll(newDecoder(), linkRaw, frames)
	require.Equal(t, []got{{t0.Add(time.Second), v6a, v6b, string(payload)}}, out)
}

func TestFragmentsGivenUp(t *testing.T) {
	frags := ipv4Fragments(t, v4a, v4b, 7, make([]byte, 2000), 1000)
	require.Len(t, frags, 3)

	// Missing middle fragment: both others are skipped at the end of the file.
	path := writeRawPcap(t, linkRaw, binary.LittleEndian, []frame{{t0, frags[0]}, {t0, frags[2]}})
	out, stats := readAll(t, path)
	require.Empty(t, out)
	require.Equal(t, Stats{Packets: 2, Skipped: 2, First: t0, Last: t0}, stats)

	// The table is bounded: the oldest entries are evicted.
	d := newDecoder()
	for i := 0; i < maxFragEntries+10; i++ {
		f := ipv4Fragments(t, v4a, v4b, uint16(i), make([]byte, 2000), 1000)[0]
		_, ok, fragment := d.decode(packet{data: f, ts: t0.Add(time.Duration(i) * time.Millisecond), link: linkRaw})
		require.False(t, ok)
		require.True(t, fragment)
	}
	require.Len(t, d.frags, maxFragEntries)
	require.EqualValues(t, 10, d.skipped)

	// A stale entry whose identifier comes back is dropped rather than mixed.
	d = newDecoder()
	_, _, _ = d.decode(packet{data: frags[0], ts: t0, link: linkRaw})
	_, _, _ = d.decode(packet{data: frags[1], ts: t0, link: linkRaw})
	late := t0.Add(2 * fragTimeout)
	_, ok, _ := d.decode(packet{data: frags[2], ts: late, link: linkRaw})
	require.False(t, ok)
	require.EqualValues(t, 2, d.skipped)

	// Inconsistent fragments (a piece past the end) are given up when the end is known.
	d = newDecoder()
	bad := append([]byte(nil), frags[1]...)
	binary.BigEndian.PutUint16(bad[6:], 0x2000|uint16(65000/8)) // offset 65,000 + 1,000 > 65,535
	out2 := decodeAll(d, linkRaw, [][]byte{frags[0], bad, frags[1], frags[2]})
	require.Empty(t, out2)
	require.EqualValues(t, 4, d.skipped)
}

// Frames cut by a small snap length are skipped, not misread.
func TestSnapLengthCut(t *testing.T) {
	f := withEth(t, layers.EthernetTypeIPv4, ipv4UDP(t, v4a, v4b, make([]byte, 500)))
	out, stats := readAll(t, writeRawPcap(t, linkEther, binary.LittleEndian, []frame{{t0, f[:100]}}))
	require.Empty(t, out)
	require.EqualValues(t, 1, stats.Skipped)
}

// Captures of real exporters (testdata/pcaps, made with tcpdump -i lo) and the
// packet trace they read (testdata/traces), when present.
func TestReadTestdata(t *testing.T) {
	var paths []string
	for _, dir := range []string{"pcaps", "traces"} {
		for _, pattern := range []string{"*.pcap", "*.pcapng", "*.pcap.gz"} {
			m, err := filepath.Glob(filepath.Join("..", "..", "testdata", dir, pattern))
			require.NoError(t, err)
			paths = append(paths, m...)
		}
	}
	if len(paths) == 0 {
		t.Skip("no capture in testdata/pcaps")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var last time.Time
			stats, err := Read(p, func(d Datagram) error {
				if d.Time.Before(last) {
					return fmt.Errorf("time goes back: %v < %v", d.Time, last)
				}
				last = d.Time
				if !d.Src.IsValid() || !d.Dst.IsValid() {
					return fmt.Errorf("bad addresses %v > %v", d.Src, d.Dst)
				}
				return nil
			})
			require.NoError(t, err)
			require.Positive(t, stats.Datagrams)
			t.Logf("%+v", stats)
		})
	}
}

func BenchmarkRead(b *testing.B) {
	var frames []frame
	for i := 0; i < 10000; i++ {
		frames = append(frames, frame{t0.Add(time.Duration(i)), withEth(b, layers.EthernetTypeIPv4, ipv4UDP(b, v4a, v4b, make([]byte, 1400)))})
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.pcap")
	f, _ := os.Create(path)
	w := pcapgo.NewWriter(f)
	_ = w.WriteFileHeader(65536, layers.LinkTypeEthernet)
	for _, fr := range frames {
		_ = w.WritePacket(gopacket.CaptureInfo{Timestamp: fr.ts, CaptureLength: len(fr.data), Length: len(fr.data)}, fr.data)
	}
	f.Close()
	b.ReportAllocs()
	b.ResetTimer()
	var n uint64
	for i := 0; i < b.N; i++ {
		stats, err := Read(path, func(Datagram) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		n += stats.Datagrams
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "datagrams/s")
}
