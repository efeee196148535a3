// Command gentrace writes the deterministic synthetic packet trace used to
// drive real flow exporters (softflowd, pmacctd) for tmsd's golden tests.
//
//	go run ./testdata/pcaps/gentrace -o testdata/traces/trace.pcap [-stats]
//	go run ./testdata/pcaps/gentrace -profile public -o testdata/traces/public.pcap [-stats]
//
// The default profile, main, is the trace of all captures but one: its hosts
// have private and documentation addresses only. -profile public writes a
// second, smaller trace for GeoIP/ASN enrichment (softflowd-v9-public.pcap),
// in which private clients talk to well-known public servers of several
// countries and ASes (see publicTrace).
//
// The trace is raw packets, the exporters' input, not flow export: it lives in
// testdata/traces so that testdata/pcaps/*.pcap is only captures of exporters.
//
// The trace is Ethernet-framed, IPv4 and IPv6, TCP (full handshakes and FIN
// teardown), UDP (DNS, QUIC, NTP, WireGuard) and a little ICMP/ICMPv6, between
// ~200 small hosts and a dozen servers, plus a set of heavy transfers whose
// volumes are spaced far apart so top-N rankings are unambiguous.
//
// Frames are captured with a snap length of 128 bytes (like `tcpdump -s 128`
// or an sFlow agent's header sampling): the pcap record's original length and
// the IP length fields are the real ones, only the payload bytes are cut.
// Output is byte-for-byte deterministic (fixed seed, fixed start time).
//
// With -stats it prints the top-15 rankings (per srcip, dstip, ip, dstport,
// srcport, proto; by bytes, packets and flows; for all traffic and IPv4 only;
// bytes counted at L3 and at L2) and fails if any rank <= 12 ties with the
// next one by bytes.
package main

import (
	"flag"
	"fmt"
	"hash/fnv"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

const (
	snapLen  = 128
	duration = 240 * time.Second
)

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

type packet struct {
	ts      time.Duration // offset from t0
	seq     int           // generation order, tie breaker
	data    []byte        // captured bytes (<= snapLen)
	origLen int           // frame length on the wire
	l3Len   int           // IP total length
	key     flowKey
}

type flowKey struct {
	src, dst     netip.Addr
	sport, dport uint16
	proto        uint8
}

type gen struct {
	rnd     *rand.Rand
	pkts    []packet
	nextEph uint16
	ipID    map[netip.Addr]uint16
	used    map[uint16]bool
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(a netip.Addr) net.HardwareAddr {
	h := fnv.New32a()
	b := a.AsSlice()
	h.Write(b)
	s := h.Sum32()
	return net.HardwareAddr{0x02, 0x00, byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)}
}

// ephemeral returns a fresh client port >= 32768, unique in the whole trace.
func (g *gen) ephemeral() uint16 {
	for {
		g.nextEph += uint16(1 + g.rnd.IntN(7))
		if !g.used[g.nextEph] {
			g.used[g.nextEph] = true
			return g.nextEph
		}
	}
}

func (g *gen) ipLayer(src, dst netip.Addr, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.NetworkLayer, layers.EthernetType) {
	if src.Is4() {
		g.ipID[src]++
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: g.ipID[src], Flags: layers.IPv4DontFragment,
			Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return ip, ip, layers.EthernetTypeIPv4
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return ip, ip, layers.EthernetTypeIPv6
}

func (g *gen) emit(ts time.Duration, k flowKey, ls ...gopacket.SerializableLayer) {
	if ts < 0 || ts >= duration {
		log.Fatalf("packet time %v outside trace", ts)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		log.Fatal(err)
	}
	full := buf.Bytes()
	n := len(full)
	if n > snapLen {
		n = snapLen
	}
	// gopacket pads Ethernet frames to the 60-byte minimum, so the IP length
	// comes from the IP header, not from the frame length.
	l3 := int(full[16])<<8 | int(full[17])
	if k.src.Is6() {
		l3 = 40 + (int(full[18])<<8 | int(full[19]))
	}
	g.pkts = append(g.pkts, packet{ts: ts, seq: len(g.pkts), data: append([]byte(nil), full[:n]...), origLen: len(full), l3Len: l3, key: k})
}

func (g *gen) tcpPkt(ts time.Duration, src, dst netip.Addr, sport, dport uint16, syn, ack, psh, fin, rst bool, seq, ackn uint32, payload int, mss uint16) {
	ipl, nl, et := g.ipLayer(src, dst, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: seq, Ack: ackn,
		SYN: syn, ACK: ack, PSH: psh, FIN: fin, RST: rst, Window: 64240}
	if syn {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{byte(mss >> 8), byte(mss)}}}
	}
	tcp.SetNetworkLayerForChecksum(nl)
	eth := &layers.Ethernet{SrcMAC: mac(src), DstMAC: mac(dst), EthernetType: et}
	g.emit(ts, flowKey{src, dst, sport, dport, 6}, eth, ipl, tcp, gopacket.Payload(make([]byte, payload)))
}

func (g *gen) udpPkt(ts time.Duration, src, dst netip.Addr, sport, dport uint16, payload int) {
	ipl, nl, et := g.ipLayer(src, dst, layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(nl)
	eth := &layers.Ethernet{SrcMAC: mac(src), DstMAC: mac(dst), EthernetType: et}
	g.emit(ts, flowKey{src, dst, sport, dport, 17}, eth, ipl, udp, gopacket.Payload(make([]byte, payload)))
}

func (g *gen) icmpEcho(ts time.Duration, src, dst netip.Addr, reply bool, id, seq uint16, payload int) {
	eth := &layers.Ethernet{SrcMAC: mac(src), DstMAC: mac(dst)}
	if src.Is4() {
		ipl, _, et := g.ipLayer(src, dst, layers.IPProtocolICMPv4)
		eth.EthernetType = et
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if reply {
			typ = layers.ICMPv4TypeEchoReply
		}
		icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: seq}
		g.emit(ts, flowKey{src, dst, 0, uint16(typ) << 8, 1}, eth, ipl, icmp, gopacket.Payload(make([]byte, payload)))
		return
	}
	ipl, nl, et := g.ipLayer(src, dst, layers.IPProtocolICMPv6)
	eth.EthernetType = et
	typ := uint8(layers.ICMPv6TypeEchoRequest)
	if reply {
		typ = layers.ICMPv6TypeEchoReply
	}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	icmp.SetNetworkLayerForChecksum(nl)
	echo := &layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}
	g.emit(ts, flowKey{src, dst, 0, uint16(typ) << 8, 58}, eth, ipl, icmp, echo, gopacket.Payload(make([]byte, payload)))
}

// tcpSession emits a complete TCP connection: handshake, request(s) from the
// client, response(s) from the server, and a FIN/FIN/ACK teardown.
// up/down are application bytes client->server and server->client; rounds
// splits them into request/response exchanges; gap is the pacing between
// segments of one burst.
func (g *gen) tcpSession(start time.Duration, cli, srv netip.Addr, sport uint16, up, down, rounds int, mss int, rtt, gap time.Duration) time.Duration {
	cport := g.ephemeral()
	cseq := g.rnd.Uint32()
	sseq := g.rnd.Uint32()
	t := start
	g.tcpPkt(t, cli, srv, cport, sport, true, false, false, false, false, cseq, 0, 0, uint16(mss))
	t += rtt / 2
	g.tcpPkt(t, srv, cli, sport, cport, true, true, false, false, false, sseq, cseq+1, 0, uint16(mss))
	t += rtt / 2
	cseq++
	sseq++
	g.tcpPkt(t, cli, srv, cport, sport, false, true, false, false, false, cseq, sseq, 0, 0)
	// send bulk data from a to b, receiver ACKs every second segment.
	send := func(a, b netip.Addr, ap, bp uint16, aseq, bseq *uint32, n int) {
		segs := 0
		for n > 0 {
			l := min(n, mss)
			n -= l
			t += gap
			g.tcpPkt(t, a, b, ap, bp, false, true, n == 0, false, false, *aseq, *bseq, l, 0)
			*aseq += uint32(l)
			segs++
			if segs%2 == 0 || n == 0 {
				g.tcpPkt(t+rtt/2, b, a, bp, ap, false, true, false, false, false, *bseq, *aseq, 0, 0)
			}
		}
		t += rtt / 2
	}
	if rounds < 1 {
		rounds = 1
	}
	for r := 0; r < rounds; r++ {
		u := up / rounds
		d := down / rounds
		if r == rounds-1 {
			u = up - u*(rounds-1)
			d = down - d*(rounds-1)
		}
		if u > 0 {
			send(cli, srv, cport, sport, &cseq, &sseq, u)
		}
		if d > 0 {
			t += time.Millisecond
			send(srv, cli, sport, cport, &sseq, &cseq, d)
		}
		t += rtt
	}
	g.tcpPkt(t, cli, srv, cport, sport, false, true, false, true, false, cseq, sseq, 0, 0)
	t += rtt / 2
	cseq++
	g.tcpPkt(t, srv, cli, sport, cport, false, true, false, true, false, sseq, cseq, 0, 0)
	t += rtt / 2
	sseq++
	g.tcpPkt(t, cli, srv, cport, sport, false, true, false, false, false, cseq, sseq, 0, 0)
	return t
}

// refused: SYN answered by RST.
func (g *gen) refused(start time.Duration, cli, srv netip.Addr, sport uint16, rtt time.Duration) {
	cport := g.ephemeral()
	cseq := g.rnd.Uint32()
	g.tcpPkt(start, cli, srv, cport, sport, true, false, false, false, false, cseq, 0, 0, 1460)
	g.tcpPkt(start+rtt, srv, cli, sport, cport, false, true, false, false, true, 0, cseq+1, 0, 0)
}

// udpExchange: n request/response pairs on one client port.
func (g *gen) udpExchange(start time.Duration, cli, srv netip.Addr, sport uint16, n int, req, resp func() int, rtt, gap time.Duration) {
	cport := g.ephemeral()
	t := start
	for i := 0; i < n; i++ {
		g.udpPkt(t, cli, srv, cport, sport, req())
		g.udpPkt(t+rtt, srv, cli, sport, cport, resp())
		t += gap
	}
}

func (g *gen) ping(start time.Duration, cli, srv netip.Addr, n int, rtt time.Duration) {
	id := uint16(g.rnd.IntN(65536))
	for i := 0; i < n; i++ {
		t := start + time.Duration(i)*time.Second
		g.icmpEcho(t, cli, srv, false, id, uint16(i+1), 56)
		g.icmpEcho(t+rtt, srv, cli, true, id, uint16(i+1), 56)
	}
}

// smallSession emits one short background session of service s for client c.
func (g *gen) smallSession(s service, c netip.Addr) {
	ms := time.Millisecond
	start := time.Duration(g.rnd.IntN(225_000)) * ms
	rtt := time.Duration(2+g.rnd.IntN(60)) * ms
	gap := time.Duration(1+g.rnd.IntN(5)) * ms
	switch s.proto {
	case "icmp":
		g.ping(start, c, s.srv, 2+g.rnd.IntN(4), rtt)
	case "udp":
		switch s.port {
		case 53:
			g.udpExchange(start, c, s.srv, 53, 1+g.rnd.IntN(2), func() int { return 28 + g.rnd.IntN(30) }, func() int { return 60 + g.rnd.IntN(240) }, rtt, 300*ms)
		case 123:
			g.udpExchange(start, c, s.srv, 123, 1, func() int { return 48 }, func() int { return 48 }, rtt, time.Second)
		case 51820:
			g.udpExchange(start, c, s.srv, 51820, 3+g.rnd.IntN(4), func() int { return 100 + g.rnd.IntN(900) }, func() int { return 100 + g.rnd.IntN(1200) }, rtt, 700*ms)
		case 443:
			g.udpExchange(start, c, s.srv, 443, 2+g.rnd.IntN(3), func() int { return 1200 }, func() int { return 300 + g.rnd.IntN(950) }, rtt, 40*ms)
		}
	case "tcp":
		if g.rnd.IntN(40) == 0 {
			g.refused(start, c, s.srv, s.port, rtt)
			return
		}
		up := 100 + g.rnd.IntN(900)
		down := 200 + g.rnd.IntN(7000)
		rounds := 1
		switch s.port {
		case 22:
			up, down, rounds = 500+g.rnd.IntN(2500), 800+g.rnd.IntN(4000), 2+g.rnd.IntN(4)
		case 5432, 3306, 27017, 6379:
			rounds = 1 + g.rnd.IntN(3)
		case 53:
			up, down = 30+g.rnd.IntN(30), 200+g.rnd.IntN(1200)
		case 25:
			up, down, rounds = 1000+g.rnd.IntN(6000), 100+g.rnd.IntN(200), 2
		case 9092:
			up, down = 1000+g.rnd.IntN(6000), 100+g.rnd.IntN(300)
		}
		g.tcpSession(start, c, s.srv, s.port, up, down, rounds, 1460, rtt, gap)
	}
}

type service struct {
	srv    netip.Addr
	port   uint16
	proto  string // tcp, udp, icmp
	weight int    // number of background sessions
}

// heavy is one bulk transfer: a TCP connection, or (udp) a QUIC-like
// download in which the client sends small packets and the server full ones.
type heavy struct {
	cli, srv   netip.Addr
	port       uint16
	udp        bool
	up, down   int
	mss        int
	start, rtt time.Duration
	segGap     time.Duration
}

func (g *gen) heavyTransfer(h heavy) {
	if !h.udp {
		g.tcpSession(h.start, h.cli, h.srv, h.port, h.up, h.down, 1, h.mss, h.rtt, h.segGap)
		return
	}
	ms := time.Millisecond
	cport := g.ephemeral()
	t := h.start
	up, down := h.up, h.down
	for down > 0 || up > 0 {
		if up > 0 {
			l := min(up, 80)
			up -= l
			g.udpPkt(t, h.cli, h.srv, cport, h.port, l)
		}
		for i := 0; i < 3 && down > 0; i++ {
			l := min(down, h.mss)
			down -= l
			g.udpPkt(t+h.rtt/2+time.Duration(i)*ms, h.srv, h.cli, h.port, cport, l)
		}
		t += h.segGap * 3
	}
}

// deal gives every service its fixed number of short sessions, shuffled and
// dealt round-robin to the clients.
func (g *gen) deal(ss []service, clients []netip.Addr) {
	var sessions []service
	for _, s := range ss {
		for i := 0; i < s.weight; i++ {
			sessions = append(sessions, s)
		}
	}
	g.rnd.Shuffle(len(sessions), func(i, j int) { sessions[i], sessions[j] = sessions[j], sessions[i] })
	for i, s := range sessions {
		g.smallSession(s, clients[i%len(clients)])
	}
}

func newGen(seed1, seed2 uint64) *gen {
	return &gen{rnd: rand.New(rand.NewPCG(seed1, seed2)), nextEph: 32768 + 1000, ipID: map[netip.Addr]uint16{}, used: map[uint16]bool{}}
}

// mainTrace is testdata/traces/trace.pcap, the input of every capture but
// softflowd-v9-public: private (10.1.0.0/24, 192.168.0.0/16) and
// documentation (2001:db8::/32) addresses only.
func mainTrace() *gen {
	g := newGen(20261101, 1000)
	ms := time.Millisecond

	var (
		gwV4    = mustAddr("10.1.0.1")
		webV4   = mustAddr("10.1.0.10")
		httpV4  = mustAddr("10.1.0.20")
		sshV4   = mustAddr("10.1.0.22")
		smtpV4  = mustAddr("10.1.0.25")
		pgV4    = mustAddr("10.1.0.30")
		myV4    = mustAddr("10.1.0.40")
		appV4   = mustAddr("10.1.0.50")
		dnsV4   = mustAddr("10.1.0.53")
		kafkaV4 = mustAddr("10.1.0.60")
		redisV4 = mustAddr("10.1.0.63")
		wgV4    = mustAddr("10.1.0.70")
		ntpV4   = mustAddr("10.1.0.123")
		webV6   = mustAddr("2001:db8:100::10")
		sshV6   = mustAddr("2001:db8:100::22")
		mongoV6 = mustAddr("2001:db8:100::27")
		dnsV6   = mustAddr("2001:db8:100::53")
		httpV6  = mustAddr("2001:db8:100::80")
	)

	// Heavy transfers: distinct clients, volumes spaced ~20% apart, each with
	// its own MSS so sampled frame sizes differ between heavy hosts.
	heavies := []heavy{
		{mustAddr("192.168.1.11"), webV4, 443, false, 5_000, 1_430_000, 1448, 5 * time.Second, 30 * ms, 7 * ms},
		{mustAddr("2001:db8:200::a"), webV6, 443, false, 4_000, 1_130_000, 1428, 20 * time.Second, 40 * ms, 10 * ms},
		{mustAddr("192.168.1.12"), pgV4, 5432, false, 2_200, 905_000, 1460, 40 * time.Second, 25 * ms, 4 * ms},
		{mustAddr("192.168.1.13"), sshV4, 22, false, 731_000, 16_500, 1400, 60 * time.Second, 35 * ms, 18 * ms},
		{mustAddr("192.168.1.14"), httpV4, 80, false, 1_650, 622_000, 1380, 15 * time.Second, 30 * ms, 36 * ms},
		{mustAddr("2001:db8:200::b"), httpV6, 80, false, 1_400, 497_000, 1340, 90 * time.Second, 50 * ms, 6 * ms},
		{mustAddr("192.168.1.15"), myV4, 3306, false, 3_300, 379_000, 1320, 100 * time.Second, 8 * ms, 9 * ms},
		{mustAddr("2001:db8:200::d"), webV6, 443, true, 14_000, 308_000, 1232, 120 * time.Second, 45 * ms, 7 * ms},
		{mustAddr("192.168.1.16"), appV4, 8081, false, 2_750, 250_000, 1300, 130 * time.Second, 20 * ms, 16 * ms},
		{mustAddr("192.168.1.17"), kafkaV4, 9092, false, 216_000, 2_200, 1260, 150 * time.Second, 12 * ms, 12 * ms},
		{mustAddr("2001:db8:200::c"), sshV6, 22, false, 3_300, 159_000, 1220, 160 * time.Second, 60 * ms, 20 * ms},
		{mustAddr("192.168.1.18"), webV4, 443, false, 1_900, 127_500, 1200, 170 * time.Second, 35 * ms, 27 * ms},
		{mustAddr("192.168.1.19"), httpV4, 80, false, 1_100, 102_000, 1180, 180 * time.Second, 30 * ms, 23 * ms},
		{mustAddr("2001:db8:200::e"), mongoV6, 27017, false, 2_200, 82_500, 1160, 190 * time.Second, 15 * ms, 21 * ms},
	}
	for _, h := range heavies {
		g.heavyTransfer(h)
	}

	// Small hosts: 160 IPv4 + 40 IPv6 clients. Every service gets a fixed,
	// distinct number of short sessions (so per-server and per-port flow
	// counts differ), shuffled and dealt round-robin to the clients (3-4
	// sessions per client).
	services4 := []service{
		{webV4, 443, "tcp", 110}, {dnsV4, 53, "udp", 84}, {httpV4, 80, "tcp", 52}, {appV4, 8081, "tcp", 36},
		{pgV4, 5432, "tcp", 31}, {appV4, 8080, "tcp", 27}, {myV4, 3306, "tcp", 24}, {webV4, 443, "udp", 21},
		{redisV4, 6379, "tcp", 19}, {ntpV4, 123, "udp", 18}, {sshV4, 22, "tcp", 14}, {smtpV4, 25, "tcp", 13},
		{kafkaV4, 9092, "tcp", 11}, {dnsV4, 53, "tcp", 9}, {wgV4, 51820, "udp", 7}, {gwV4, 0, "icmp", 5},
	}
	services6 := []service{
		{webV6, 443, "tcp", 44}, {dnsV6, 53, "udp", 33}, {webV6, 443, "udp", 23}, {mongoV6, 27017, "tcp", 20},
		{httpV6, 80, "tcp", 16}, {sshV6, 22, "tcp", 10}, {dnsV6, 0, "icmp", 6},
	}
	var clients4, clients6 []netip.Addr
	for i := 1; i <= 160; i++ {
		clients4 = append(clients4, netip.AddrFrom4([4]byte{192, 168, byte(2 + i/100), byte(i % 100 * 2)}))
	}
	for i := 1; i <= 40; i++ {
		clients6 = append(clients6, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, byte(i)}))
	}
	g.deal(services4, clients4)
	g.deal(services6, clients6)
	return g
}

// t0Public is the start of testdata/traces/public.pcap: one hour after the
// main trace, so that both can be imported into one tmsd without mixing
// their minutes.
var t0Public = t0.Add(time.Hour)

// publicTrace is testdata/traces/public.pcap, the input of
// softflowd-v9-public.pcap, for GeoIP/ASN enrichment: clients in private
// space (192.168.50.0/24, fd00:50::/64) and a few CGNAT subscribers
// (100.64.0.0/10) talk to well-known, long-stable public servers of several
// countries and ASes (anycast public resolvers, root servers, national
// resolvers and registries), plus a little traffic between private hosts and
// to documentation addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32), so that special ranges are present too. Same session
// shapes as the main trace, a sixth of its packets.
func publicTrace() *gen {
	g := newGen(20261101, 2000)
	ms := time.Millisecond

	var (
		// Public servers (see README.md: operators, origin ASes, and where
		// a GeoIP database puts them; most are anycast, so country
		// databases disagree about some of them, e.g. 1.1.1.1 and 9.9.9.9).
		google4     = mustAddr("8.8.8.8")              // Google Public DNS, AS15169, US
		google6     = mustAddr("2001:4860:4860::8888") // Google Public DNS, AS15169
		cloudflare4 = mustAddr("1.1.1.1")              // Cloudflare, AS13335 (APNIC's prefix)
		cloudflare6 = mustAddr("2606:4700:4700::1111") // Cloudflare, AS13335
		quad94      = mustAddr("9.9.9.9")              // Quad9, AS19281
		quad96      = mustAddr("2620:fe::fe")          // Quad9, AS19281
		kt          = mustAddr("168.126.63.1")         // KT kns.kornet.net, AS4766, KR
		skb         = mustAddr("210.220.163.82")       // SK Broadband resolver, AS9318, KR
		kroot4      = mustAddr("193.0.14.129")         // k.root-servers.net, RIPE NCC, AS25152, NL
		kroot6      = mustAddr("2001:7fd::1")          // k.root-servers.net, RIPE NCC, AS25152
		mroot4      = mustAddr("202.12.27.33")         // m.root-servers.net, WIDE, AS7500, JP
		mroot6      = mustAddr("2001:dc3::35")         // m.root-servers.net, WIDE, AS7500, JP
		froot       = mustAddr("192.5.5.241")          // f.root-servers.net, ISC, AS3557, US
		nicbr       = mustAddr("200.160.0.10")         // a.dns.br, NIC.br, AS22548, BR
		yandex4     = mustAddr("77.88.8.8")            // Yandex DNS, AS13238, RU
		yandex6     = mustAddr("2a02:6b8::feed:0ff")   // Yandex DNS, AS13238, RU
		alidns      = mustAddr("223.5.5.5")            // AliDNS, Alibaba, AS37963, CN

		// Special-purpose addresses.
		gw4  = mustAddr("192.168.50.1")  // the LAN's router: resolver, NTP, ping (RFC 1918)
		nas  = mustAddr("10.50.0.20")    // file server, SMB (RFC 1918)
		gw6  = mustAddr("fd00:50::1")    // the LAN's router (ULA, RFC 4193)
		doc1 = mustAddr("192.0.2.10")    // TEST-NET-1 (RFC 5737)
		doc2 = mustAddr("198.51.100.25") // TEST-NET-2
		doc3 = mustAddr("203.0.113.80")  // TEST-NET-3
		doc6 = mustAddr("2001:db8:50::443")
		cgn0 = mustAddr("100.64.7.20") // CGNAT subscribers (RFC 6598)
		cgn1 = mustAddr("100.64.7.21")
		cgn2 = mustAddr("100.64.7.22")
		cgn3 = mustAddr("100.71.200.9")
		cgn4 = mustAddr("100.127.1.254")
		cli4 = func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 50, byte(i)}) }
		cli6 = func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0: 0xfd, 3: 0x50, 14: byte(i >> 8), 15: byte(i)})
		}
	)

	// Heavy transfers, each between its own client and server: HTTPS (DoH)
	// and QUIC downloads, DNS over TLS (853/tcp) and zone transfers (AXFR
	// over 53/tcp); an upload to the private file server, a download by a
	// CGNAT subscriber, a download from and a mail upload to documentation
	// addresses. The volumes were tuned (within ±20 % of a ~20 % spacing) so
	// that no two adjacent ranks <= 13 of any -stats ranking by bytes, frame
	// bytes or frame bytes - 14 per packet (softflowd's count) are within 3 %.
	sec := time.Second
	heavies := []heavy{
		{cli4(11), cloudflare4, 443, false, 3_296, 161_456, 1448, 5 * sec, 30 * ms, 7 * ms},
		{cli6(0xa), google6, 443, false, 2_649, 119_793, 1428, 20 * sec, 40 * ms, 9 * ms},
		{cli4(12), nas, 445, false, 118_578, 1_998, 1460, 35 * sec, 2 * ms, 3 * ms},
		{cli4(13), google4, 443, true, 4_959, 90_162, 1252, 50 * sec, 25 * ms, 8 * ms},
		{cli4(14), kroot4, 53, false, 40, 72_551, 1400, 65 * sec, 35 * ms, 11 * ms},
		{cgn0, mroot4, 53, false, 38, 64_364, 1380, 80 * sec, 280 * ms, 13 * ms},
		{cli6(0xb), cloudflare6, 443, false, 1_533, 48_927, 1340, 95 * sec, 30 * ms, 6 * ms},
		{cli4(15), doc1, 443, false, 1_559, 40_113, 1320, 110 * sec, 45 * ms, 9 * ms},
		{cli4(16), froot, 53, false, 39, 30_645, 1300, 125 * sec, 150 * ms, 16 * ms},
		{cli4(17), nicbr, 53, false, 35, 26_221, 1260, 140 * sec, 210 * ms, 12 * ms},
		{cli6(0xc), kroot6, 53, false, 43, 20_015, 1220, 150 * sec, 35 * ms, 20 * ms},
		{cli4(18), kt, 853, false, 931, 16_047, 1200, 160 * sec, 260 * ms, 27 * ms},
		{cli4(19), skb, 853, false, 818, 13_484, 1180, 170 * sec, 250 * ms, 23 * ms},
		{cli4(20), quad94, 853, false, 862, 10_131, 1160, 180 * sec, 20 * ms, 21 * ms},
		{cli6(0xd), mroot6, 53, false, 37, 8_189, 1140, 190 * sec, 270 * ms, 15 * ms},
		{cli4(21), yandex4, 443, false, 707, 6_842, 1120, 200 * sec, 170 * ms, 17 * ms},
		{cli4(22), doc2, 25, false, 7_569, 245, 1100, 210 * sec, 15 * ms, 5 * ms},
	}
	for _, h := range heavies {
		g.heavyTransfer(h)
	}

	// Short sessions: a fixed number per service, shuffled and dealt to 40
	// IPv4 LAN clients (192.168.50.101-140) and 4 CGNAT subscribers, and to
	// 12 IPv6 LAN clients (fd00:50::101-10c).
	services4 := []service{
		{google4, 53, "udp", 30}, {cloudflare4, 53, "udp", 27}, {gw4, 53, "udp", 24}, {quad94, 53, "udp", 19},
		{kt, 53, "udp", 16}, {skb, 53, "udp", 14}, {google4, 443, "tcp", 13}, {cloudflare4, 443, "tcp", 12},
		{nas, 445, "tcp", 11}, {kroot4, 53, "udp", 10}, {mroot4, 53, "udp", 9}, {froot, 53, "udp", 8},
		{nicbr, 53, "udp", 7}, {yandex4, 53, "udp", 6}, {alidns, 53, "udp", 5}, {doc1, 443, "tcp", 4},
		{gw4, 123, "udp", 3}, {gw4, 0, "icmp", 2}, {doc3, 80, "tcp", 2}, {google4, 0, "icmp", 1},
	}
	services6 := []service{
		{google6, 53, "udp", 15}, {cloudflare6, 53, "udp", 12}, {quad96, 53, "udp", 9}, {gw6, 53, "udp", 7},
		{kroot6, 53, "udp", 5}, {mroot6, 53, "udp", 4}, {yandex6, 53, "udp", 3}, {doc6, 443, "tcp", 2},
		{google6, 0, "icmp", 1},
	}
	var clients4, clients6 []netip.Addr
	for i := 101; i <= 140; i++ {
		clients4 = append(clients4, cli4(i))
	}
	clients4 = append(clients4, cgn1, cgn2, cgn3, cgn4)
	for i := 1; i <= 12; i++ {
		clients6 = append(clients6, cli6(0x100+i))
	}
	g.deal(services4, clients4)
	g.deal(services6, clients6)
	return g
}

func main() {
	profile := flag.String("profile", "main", "trace to write: main (testdata/traces/trace.pcap, private and documentation addresses) or public (testdata/traces/public.pcap, well-known public servers)")
	out := flag.String("o", "", "output pcap (default testdata/traces/trace.pcap, or testdata/traces/public.pcap with -profile public)")
	stats := flag.Bool("stats", false, "print top-N rankings of the trace and check for ties")
	flag.Parse()

	var g *gen
	start := t0
	switch *profile {
	case "main":
		g = mainTrace()
		if *out == "" {
			*out = "testdata/traces/trace.pcap"
		}
	case "public":
		g = publicTrace()
		start = t0Public
		if *out == "" {
			*out = "testdata/traces/public.pcap"
		}
	default:
		log.Fatalf("unknown -profile %q: main or public", *profile)
	}

	sort.SliceStable(g.pkts, func(i, j int) bool {
		if g.pkts[i].ts != g.pkts[j].ts {
			return g.pkts[i].ts < g.pkts[j].ts
		}
		return g.pkts[i].seq < g.pkts[j].seq
	})

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		log.Fatal(err)
	}
	for _, p := range g.pkts {
		ci := gopacket.CaptureInfo{Timestamp: start.Add(p.ts), CaptureLength: len(p.data), Length: p.origLen}
		if err := w.WritePacket(ci, p.data); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	var l3 int
	for _, p := range g.pkts {
		l3 += p.l3Len
	}
	fmt.Fprintf(os.Stderr, "gentrace: wrote %s: %d packets, %d IP bytes, %s .. %s\n", *out, len(g.pkts), l3,
		start.Add(g.pkts[0].ts).Format(time.RFC3339Nano), start.Add(g.pkts[len(g.pkts)-1].ts).Format(time.RFC3339Nano))
	if *stats {
		if !printStats(g.pkts) {
			os.Exit(1)
		}
	}
}

type agg struct{ bytes, l2, pkts, flows int }

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return fmt.Sprint(p)
}

func printStats(pkts []packet) bool {
	ok := true
	for _, v4only := range []bool{false, true} {
		dims := map[string]map[string]*agg{}
		flows := map[flowKey]bool{}
		add := func(dim, key string, p packet, newFlow bool) {
			m := dims[dim]
			if m == nil {
				m = map[string]*agg{}
				dims[dim] = m
			}
			a := m[key]
			if a == nil {
				a = &agg{}
				m[key] = a
			}
			a.bytes += p.l3Len
			a.l2 += p.origLen
			a.pkts++
			if newFlow {
				a.flows++
			}
		}
		for _, p := range pkts {
			k := p.key
			if v4only && !k.src.Is4() {
				continue
			}
			nf := !flows[k]
			flows[k] = true
			add("srcip", k.src.String(), p, nf)
			add("dstip", k.dst.String(), p, nf)
			add("ip", k.src.String(), p, nf)
			add("ip", k.dst.String(), p, nf)
			pn := protoName(k.proto)
			if k.proto == 6 || k.proto == 17 {
				add("srcport", fmt.Sprintf("%d/%s", k.sport, pn), p, nf)
				add("dstport", fmt.Sprintf("%d/%s", k.dport, pn), p, nf)
				add("srcport-noproto", fmt.Sprint(k.sport), p, nf)
				add("dstport-noproto", fmt.Sprint(k.dport), p, nf)
			}
			add("proto", fmt.Sprint(k.proto), p, nf)
		}
		for _, dim := range []string{"srcip", "dstip", "ip", "srcport", "dstport", "srcport-noproto", "dstport-noproto", "proto"} {
			m := dims[dim]
			type row struct {
				k string
				a *agg
			}
			var rows []row
			for k, a := range m {
				rows = append(rows, row{k, a})
			}
			for _, by := range []string{"bytes", "l2", "pkts", "flows"} {
				val := func(a *agg) int {
					switch by {
					case "bytes":
						return a.bytes
					case "l2":
						return a.l2
					case "pkts":
						return a.pkts
					}
					return a.flows
				}
				sort.Slice(rows, func(i, j int) bool {
					if val(rows[i].a) != val(rows[j].a) {
						return val(rows[i].a) > val(rows[j].a)
					}
					return rows[i].k < rows[j].k
				})
				n := min(15, len(rows))
				fmt.Printf("== v4only=%v %s by %s (%d keys)\n", v4only, dim, by, len(rows))
				for i := 0; i < n; i++ {
					tie := ""
					if i+1 < len(rows) {
						a, b := val(rows[i].a), val(rows[i+1].a)
						switch {
						case a == b:
							tie = "  TIE"
							if i < 12 && (by == "bytes" || by == "l2") {
								ok = false
							}
						case i < 12 && (by == "bytes" || by == "l2") && float64(a-b) < 0.03*float64(a):
							tie = "  NEAR"
						}
					}
					fmt.Printf("%3d %-22s %10d %10d %6d %5d%s\n", i+1, rows[i].k, rows[i].a.bytes, rows[i].a.l2, rows[i].a.pkts, rows[i].a.flows, tie)
				}
			}
		}
	}
	return ok
}
