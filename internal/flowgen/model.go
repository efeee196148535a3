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

// DefaultPorts are the services of the backbone profile, most popular
// first: web and QUIC, DNS, mail, VPNs, voice and video, databases and
// queues, management, file sharing, games. None is in the ephemeral range
// (EphemeralLo..EphemeralHi), so a service port and a client's port never coincide.
var DefaultPorts = []string{
	"443/tcp", "80/tcp", "443/udp", "53/udp", "22/tcp", "8080/tcp", "123/udp", "993/tcp",
	"53/tcp", "8443/tcp", "25/tcp", "3478/udp", "587/tcp", "4500/udp", "1194/udp", "3389/tcp",
	"5060/udp", "995/tcp", "143/tcp", "465/tcp", "500/udp", "1935/tcp", "8801/udp", "5222/tcp",
	"3306/tcp", "5432/tcp", "6379/tcp", "27017/tcp", "9092/tcp", "1433/tcp", "11211/tcp", "9200/tcp",
	"5672/tcp", "1883/tcp", "8883/tcp", "161/udp", "514/udp", "179/tcp", "389/tcp", "636/tcp",
	"88/udp", "445/tcp", "2049/tcp", "873/tcp", "21/tcp", "69/udp", "853/tcp", "5353/udp",
	"1812/udp", "6443/tcp", "2379/tcp", "9090/tcp", "8000/tcp", "3074/udp", "27015/udp", "6881/tcp",
	"110/tcp", "5061/tcp", "10250/tcp", "1723/tcp",
}

// PoolPorts are the services of the pool profile, flowgen's workload
// before the backbone profile: kept as they were so its figures reproduce.
var PoolPorts = []string{
	"443/tcp", "80/tcp", "53/udp", "443/udp", "22/tcp", "8080/tcp", "123/udp", "993/tcp",
	"25/tcp", "3306/tcp", "5432/tcp", "8443/tcp", "1194/udp", "3389/tcp", "5060/udp",
	"6379/tcp", "9092/tcp", "27017/tcp", "161/udp", "514/udp",
}

// Ephemeral (client) ports are drawn from [EphemeralLo, EphemeralHi), Linux's default
// ip_local_port_range; the backbone profile rotates them within it.
const (
	EphemeralLo = 32768
	EphemeralHi = 61000
	ephRange    = EphemeralHi - EphemeralLo
)

// Interfaces is the number of interfaces a side flows enter and leave by
// (ifIndex 1..Interfaces), drawn uniformly.
const Interfaces = 48

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
	// eph says which port is the client's ephemeral one (the other is the
	// service's): ephNone, ephSrc or ephDst. With rotation (the backbone
	// profile) that port is srcPort/dstPort + the send's step, mod ephRange.
	eph uint8
}

// flowRec.eph values.
const (
	ephNone = iota
	ephSrc
	ephDst
)

// model is the traffic model shared by every exporter: who talks to whom,
// for which service, how much.
type model struct {
	hosts zipf // sources (the pool profile: both ends)
	// dsts are the destinations, ranks hosts..hosts+DstHosts-1, so that one
	// rank → address map serves both pools and their addresses never meet;
	// nil in the pool profile.
	dsts     *zipf
	nHosts   uint32
	services []service
	svc      zipf
	perm     uint32 // seed-dependent offset of the rank → address permutation
	v6Share  float64
	sflow    bool
	public   bool // backbone: hosts in public address space (publicV4)
}

func newModel(cfg *Config, services []service) *model {
	v6 := 0.1 // IPv6 share of flows where the format carries IPv6
	if cfg.Format == FormatV5 {
		v6 = 0
	}
	m := &model{
		hosts:    newZipf(cfg.Hosts, cfg.Zipf),
		nHosts:   uint32(cfg.Hosts),
		services: services,
		svc:      newZipf(len(services), cfg.Zipf),
		perm:     uint32(cfg.Seed*0x9e3779b97f4a7c15>>40) & 0xffffff,
		v6Share:  v6,
		sflow:    cfg.Format == FormatSFlow,
		public:   cfg.Profile == ProfileBackbone,
	}
	if cfg.DstHosts > 0 {
		z := newZipf(cfg.DstHosts, cfg.Zipf)
		m.dsts = &z
	}
	return m
}

// hostBits maps a rank to 24 address bits. Multiplying by an odd constant
// is a bijection mod 2^24, so distinct ranks get distinct addresses while
// the popular hosts do not all sit in 10.0.0.x.
func (m *model) hostBits(rank uint32) uint32 {
	return (rank*0x9e3779b1 + m.perm) & 0xffffff
}

// publicV4 are the first octets of public IPv4 space: a backbone's hosts
// are spread over the registries' blocks (every country and AS a GeoIP
// database knows), not in one private /8 a collector's enrichment would
// answer without a lookup. The /8s holding special ranges are left out
// (0, 10, 100, 127, 169, 172, 192, 198, 203) and 224 up.
var publicV4 = func() []byte {
	var out []byte
	for o := 1; o < 224; o++ {
		switch o {
		case 10, 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		out = append(out, byte(o))
	}
	return out
}()

// publicV6 are the first bytes of the RIRs' IPv6 blocks (2001::/16 is
// documentation at 2001:db8 and more; 2400: APNIC, 2600: ARIN, 2800:
// LACNIC, 2a00: RIPE, 2c00: AFRINIC).
var publicV6 = []byte{0x24, 0x26, 0x28, 0x2a, 0x2c}

// addr is the address of a host rank: in public space (backbone), else
// 10.0.0.0/8, or 2001:db8::/104 for IPv6. The rank's 24 host bits are
// distinct per rank, so every rank has its own address either way.
func (m *model) addr(rank uint32, v6 bool) netip.Addr {
	var b [16]byte
	m.putAddr(b[:], rank, v6)
	if !v6 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

// putAddr writes the address of a rank (4 or 16 bytes) at b.
func (m *model) putAddr(b []byte, rank uint32, v6 bool) {
	h := m.hostBits(rank)
	// The block of a rank: another hash of it, so that neighbouring host
	// bits are not all in one /8.
	blk := (rank * 0x2545f491) >> 8
	if !v6 {
		b[0] = 10
		if m.public {
			b[0] = publicV4[blk%uint32(len(publicV4))]
		}
		b[1], b[2], b[3] = byte(h>>16), byte(h>>8), byte(h)
		return
	}
	copy(b, []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if m.public {
		b[0], b[1], b[2], b[3] = publicV6[blk%uint32(len(publicV6))], byte(blk>>8), 0, byte(blk)
	}
	b[13], b[14], b[15] = byte(h>>16), byte(h>>8), byte(h)
}

// flow draws one flow. The backbone profile draws the source from the
// source pool and the destination from the destination pool; the pool
// profile draws both from one pool (never the same host, so "either side"
// aggregates count a flow twice), with the random draws it always made.
// Half the flows are the server's answer, so service ports show up as
// source ports too.
func (m *model) flow(r *rand.Rand) flowRec {
	if m.dsts == nil {
		return m.poolFlow(r)
	}
	src := uint32(m.hosts.draw(r))
	dst := m.nHosts + uint32(m.dsts.draw(r))
	svc := m.services[m.svc.draw(r)]
	f := flowRec{
		proto: svc.proto,
		inIf:  uint16(1 + r.IntN(Interfaces)),
		outIf: uint16(1 + r.IntN(Interfaces)),
		v6:    r.Float64() < m.v6Share,
	}
	f.src, f.dst = src, dst
	if hasPorts(svc.proto) {
		eph := uint16(EphemeralLo + r.IntN(ephRange))
		if r.IntN(2) == 0 {
			f.srcPort, f.dstPort, f.eph = eph, svc.port, ephSrc
		} else {
			f.srcPort, f.dstPort, f.eph = svc.port, eph, ephDst
		}
	}
	m.amounts(r, &f)
	return f
}

// poolFlow is the pool profile's flow, drawn exactly as before the backbone
// profile existed so that a seed gives the same traffic.
func (m *model) poolFlow(r *rand.Rand) flowRec {
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
	eph := uint16(EphemeralLo + r.IntN(ephRange))
	f := flowRec{
		proto: svc.proto,
		inIf:  uint16(1 + r.IntN(Interfaces)),
		outIf: uint16(1 + r.IntN(Interfaces)),
		v6:    r.Float64() < m.v6Share,
	}
	if r.IntN(2) == 0 {
		f.src, f.dst, f.srcPort, f.dstPort, f.eph = uint32(a), uint32(b), eph, svc.port, ephSrc
	} else {
		f.src, f.dst, f.srcPort, f.dstPort, f.eph = uint32(b), uint32(a), svc.port, eph, ephDst
	}
	if !hasPorts(svc.proto) {
		f.srcPort, f.dstPort, f.eph = 0, 0, ephNone
	}
	m.amounts(r, &f)
	return f
}

// amounts draws a flow's packets, bytes, duration and TCP flags.
func (m *model) amounts(r *rand.Rand, f *flowRec) {
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
