package flowgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// IP protocol numbers the model knows by name.
const (
	protoICMP = 1
	protoTCP  = 6
	protoUDP  = 17
)

// DefaultPorts are the services flows are drawn from, most popular first.
var DefaultPorts = []string{
	"443/tcp", "80/tcp", "53/udp", "443/udp", "22/tcp", "8080/tcp", "123/udp", "993/tcp",
	"25/tcp", "3306/tcp", "5432/tcp", "8443/tcp", "1194/udp", "3389/tcp", "5060/udp",
	"6379/tcp", "9092/tcp", "27017/tcp", "161/udp", "514/udp",
}

// service is a server port and IP protocol flows are for.
type service struct {
	port  uint16
	proto uint8
}

// parseService parses "PORT/PROTO" with PROTO tcp, udp, icmp or a number.
func parseService(s string) (service, error) {
	p, proto, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return service{}, fmt.Errorf("port %q: want PORT/PROTO, e.g. 443/tcp", s)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return service{}, fmt.Errorf("port %q: %w", s, err)
	}
	var n uint64
	switch strings.ToLower(proto) {
	case "tcp":
		n = protoTCP
	case "udp":
		n = protoUDP
	case "icmp":
		n = protoICMP
	default:
		if n, err = strconv.ParseUint(proto, 10, 8); err != nil {
			return service{}, fmt.Errorf("port %q: protocol: %w", s, err)
		}
	}
	if !hasPorts(uint8(n)) {
		port = 0 // only TCP and UDP carry ports in the flows we make
	}
	return service{port: uint16(port), proto: uint8(n)}, nil
}

func hasPorts(proto uint8) bool { return proto == protoTCP || proto == protoUDP }

// protoName is the name of a protocol in truth keys: tcp, udp, else the number.
func protoName(proto uint8) string {
	switch proto {
	case protoTCP:
		return "tcp"
	case protoUDP:
		return "udp"
	}
	return strconv.Itoa(int(proto))
}

// PortKey formats a port as the truth's port keys are: "443/tcp", "0/1".
func PortKey(port uint16, proto uint8) string {
	return strconv.Itoa(int(port)) + "/" + protoName(proto)
}

// zipf draws ranks 0..n-1 with P(k) ∝ 1/(k+1)^s by binary search in a
// cumulative table: unlike math/rand's Zipf it accepts any s ≥ 0, and pool
// building draws only a few hundred thousand times, so log n per draw is fine.
type zipf struct{ cdf []float64 }

func newZipf(n int, s float64) zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range cdf {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	return zipf{cdf: cdf}
}

func (z zipf) draw(r *rand.Rand) int {
	u := r.Float64() * z.cdf[len(z.cdf)-1]
	return min(sort.SearchFloat64s(z.cdf, u), len(z.cdf)-1)
}

// flowRec is one flow (or, for sFlow, one sampled packet) of the pool.
// Hosts are ranks, turned into addresses only for encoding and for the
// truth's keys, so the truth aggregates on small integer keys.
type flowRec struct {
	src, dst         uint32 // host ranks
	bytes, packets   uint32 // unsampled; sFlow: frame length and 1
	durMs            uint32
	inIf, outIf      uint16
	srcPort, dstPort uint16
	proto, flags     uint8
	v6               bool
	spread           bool // the source is rewritten on each send (Config.Spread)
}

// model is the traffic model shared by every exporter: who talks to whom,
// for which service, how much.
type model struct {
	hosts    zipf
	services []service
	svc      zipf
	perm     uint32 // seed-dependent offset of the rank → address permutation
	v6Share  float64
	sflow    bool
}

func newModel(cfg *Config, services []service) *model {
	v6 := 0.1 // IPv6 share of flows where the format carries IPv6
	if cfg.Format == FormatV5 {
		v6 = 0
	}
	return &model{
		hosts:    newZipf(cfg.Hosts, cfg.Zipf),
		services: services,
		svc:      newZipf(len(services), cfg.Zipf),
		perm:     uint32(cfg.Seed*0x9e3779b97f4a7c15>>40) & 0xffffff,
		v6Share:  v6,
		sflow:    cfg.Format == FormatSFlow,
	}
}

// hostBits maps a rank to 24 address bits. Multiplying by an odd constant
// is a bijection mod 2^24, so distinct ranks get distinct addresses while
// the popular hosts do not all sit in 10.0.0.x.
func (m *model) hostBits(rank uint32) uint32 {
	return (rank*0x9e3779b1 + m.perm) & 0xffffff
}

// addr is the address of a host rank: 10.0.0.0/8, or 2001:db8::/104 for IPv6.
func (m *model) addr(rank uint32, v6 bool) netip.Addr {
	h := m.hostBits(rank)
	if !v6 {
		return netip.AddrFrom4([4]byte{10, byte(h >> 16), byte(h >> 8), byte(h)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: 0, 13: byte(h >> 16), 14: byte(h >> 8), 15: byte(h)})
}

// putAddr writes the address of a rank (4 or 16 bytes) at b.
func (m *model) putAddr(b []byte, rank uint32, v6 bool) {
	h := m.hostBits(rank)
	if !v6 {
		b[0], b[1], b[2], b[3] = 10, byte(h>>16), byte(h>>8), byte(h)
		return
	}
	copy(b, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	b[13], b[14], b[15] = byte(h>>16), byte(h>>8), byte(h)
}

// flow draws one flow. Both ends come from the same Zipf host distribution
// (never the same host, so "either side" aggregates count a flow twice);
// half the flows are the server's answer, so service ports show up as
// source ports too.
func (m *model) flow(r *rand.Rand) flowRec {
	n := len(m.hosts.cdf)
	a := m.hosts.draw(r)
	b := m.hosts.draw(r)
	for try := 0; b == a; try++ {
		if try == 8 { // a hot host drawn over and over: take a neighbour
			b = (a + 1) % n
			break
		}
		b = m.hosts.draw(r)
	}
	svc := m.services[m.svc.draw(r)]
	eph := uint16(32768 + r.IntN(61000-32768))
	f := flowRec{
		proto: svc.proto,
		inIf:  uint16(1 + r.IntN(48)),
		outIf: uint16(1 + r.IntN(48)),
		v6:    r.Float64() < m.v6Share,
	}
	if r.IntN(2) == 0 {
		f.src, f.dst, f.srcPort, f.dstPort = uint32(a), uint32(b), eph, svc.port
	} else {
		f.src, f.dst, f.srcPort, f.dstPort = uint32(b), uint32(a), svc.port, eph
	}
	if !hasPorts(svc.proto) {
		f.srcPort, f.dstPort = 0, 0
	}

	if m.sflow {
		f.packets, f.bytes = 1, frameLength(r)
	} else {
		// Log-normal packet counts: mostly a handful, a long tail of elephants.
		f.packets = uint32(min(1+math.Exp(r.NormFloat64()*1.6+1.2), 200_000))
		f.bytes = f.packets * uint32(40+r.IntN(1461))
		if f.packets > 1 {
			f.durMs = uint32(r.IntN(int(min(f.packets*40, 60_000))))
		}
	}
	if f.proto == protoTCP {
		switch {
		case f.packets == 1:
			f.flags = 0x02 // SYN
		case r.IntN(4) == 0:
			f.flags = 0x18 // PSH ACK: a flow cut by the active timeout
		default:
			f.flags = 0x1b // FIN SYN PSH ACK
		}
	}
	return f
}

// frameLength draws an Ethernet frame length (FCS included) for a sampled
// packet: bimodal like real traffic, small ACK-sized frames and full-size
// ones, never below 132 bytes so the 128-byte sampled header is all packet.
func frameLength(r *rand.Rand) uint32 {
	switch x := r.IntN(100); {
	case x < 45:
		return uint32(132 + r.IntN(40))
	case x < 60:
		return uint32(172 + r.IntN(1228))
	default:
		return uint32(1400 + r.IntN(119))
	}
}
