package flowgen

import (
	"encoding/binary"
	"net/netip"
)

// sFlow v5 (sflow.org/sflow_version_5.txt) datagrams: compact flow samples,
// each with one raw packet header record holding the first 128 bytes of an
// Ethernet frame (IPv4 or IPv6, then TCP, UDP or ICMP). Every sample has the
// same size, so a datagram holds a fixed number of them.

const (
	sflowSampledHeader = 128
	// sflowSample is a flow sample's size: format and length (8), 8 words of
	// sample fields (32), the record's format and length (8), 4 words of
	// raw header fields (16) and the header.
	sflowSample    = 8 + 32 + 8 + 16 + sflowSampledHeader
	sflowFCS       = 4 // bytes stripped from the sampled header: the frame check sequence
	sflowSourceIdx = 1 // the one data source (ifIndex) samples are taken on
)

type sflowCodec struct{}

// headerLen is the datagram header's size for an agent address.
func sflowHeaderLen(agent netip.Addr) int {
	if agent.Is4() {
		return 28
	}
	return 40
}

func (sflowCodec) fits(nv4, nv6 int) bool {
	// The agent is IPv4 unless Sources says otherwise: size for the larger header.
	return 40+(nv4+nv6)*sflowSample <= maxDatagram
}

func (sflowCodec) encode(src *source, recs []flowRec) *datagram {
	hl := sflowHeaderLen(src.addr)
	b := make([]byte, hl+len(recs)*sflowSample)
	binary.BigEndian.PutUint32(b[0:], 5)
	if src.addr.Is4() {
		binary.BigEndian.PutUint32(b[4:], 1)
		a := src.addr.As4()
		copy(b[8:], a[:])
	} else {
		binary.BigEndian.PutUint32(b[4:], 2)
		a := src.addr.As16()
		copy(b[8:], a[:])
	}
	binary.BigEndian.PutUint32(b[hl-16:], src.domain) // sub-agent ID
	binary.BigEndian.PutUint32(b[hl-4:], uint32(len(recs)))
	for i := range recs {
		f := &recs[i]
		s := b[hl+i*sflowSample:]
		binary.BigEndian.PutUint32(s[0:], 1) // compact flow sample
		binary.BigEndian.PutUint32(s[4:], sflowSample-8)
		binary.BigEndian.PutUint32(s[12:], sflowSourceIdx)
		binary.BigEndian.PutUint32(s[16:], src.sampling)
		binary.BigEndian.PutUint32(s[28:], uint32(f.inIf))
		binary.BigEndian.PutUint32(s[32:], uint32(f.outIf))
		binary.BigEndian.PutUint32(s[36:], 1) // records
		binary.BigEndian.PutUint32(s[40:], 1) // raw packet header
		binary.BigEndian.PutUint32(s[44:], 16+sflowSampledHeader)
		binary.BigEndian.PutUint32(s[48:], 1) // Ethernet
		binary.BigEndian.PutUint32(s[52:], f.bytes)
		binary.BigEndian.PutUint32(s[56:], sflowFCS)
		binary.BigEndian.PutUint32(s[60:], sflowSampledHeader)
		putFrame(s[64:64+sflowSampledHeader], src, f)
	}
	return &datagram{buf: b, recs: recs, nv4: len(recs), seqRecords: uint32(len(recs))}
}

func (sflowCodec) putSource(d *datagram, i int, a uint32) {
	s := d.buf[len(d.buf)-(len(d.recs)-i)*sflowSample:]
	ip := s[64+14:] // spread records are IPv4 (see Config.Spread)
	binary.BigEndian.PutUint32(ip[12:], a)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip[:20]))
}

func (sflowCodec) portsAt(d *datagram, i int) int {
	off := len(d.buf) - (len(d.recs)-i)*sflowSample + 64 + 14 // the IP header
	if d.recs[i].v6 {
		return off + 40
	}
	return off + 20
}

// putFrame writes the first bytes of the Ethernet frame of a sampled packet.
func putFrame(h []byte, src *source, f *flowRec) {
	// Locally administered MACs, derived from the interfaces.
	copy(h[0:], []byte{0x02, 0, 0, 0, byte(f.outIf >> 8), byte(f.outIf)})
	copy(h[6:], []byte{0x02, 0, 0, byte(src.domain), byte(f.inIf >> 8), byte(f.inIf)})
	ipLen := f.bytes - 14 - sflowFCS
	var l4 []byte
	if !f.v6 {
		binary.BigEndian.PutUint16(h[12:], 0x0800)
		ip := h[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
		binary.BigEndian.PutUint16(ip[4:], uint16(f.src^f.dst))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8], ip[9] = 64, f.proto
		src.m.putAddr(ip[12:], f.src, false)
		src.m.putAddr(ip[16:], f.dst, false)
		binary.BigEndian.PutUint16(ip[10:], ipv4Checksum(ip))
		l4 = h[34:]
		ipLen -= 20
	} else {
		binary.BigEndian.PutUint16(h[12:], 0x86dd)
		ip := h[14:54]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(ipLen-40))
		ip[6], ip[7] = f.proto, 64
		src.m.putAddr(ip[8:], f.src, true)
		src.m.putAddr(ip[24:], f.dst, true)
		l4 = h[54:]
		ipLen -= 40
	}
	switch f.proto {
	case protoTCP:
		binary.BigEndian.PutUint16(l4[0:], f.srcPort)
		binary.BigEndian.PutUint16(l4[2:], f.dstPort)
		binary.BigEndian.PutUint32(l4[4:], f.src*2654435761)
		binary.BigEndian.PutUint32(l4[8:], f.dst*2654435761)
		l4[12], l4[13] = 0x50, f.flags
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case protoUDP:
		binary.BigEndian.PutUint16(l4[0:], f.srcPort)
		binary.BigEndian.PutUint16(l4[2:], f.dstPort)
		binary.BigEndian.PutUint16(l4[4:], uint16(ipLen))
	case protoICMP:
		l4[0] = 8 // echo request
	}
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func (sflowCodec) patch(d *datagram, c *counters, t *stamp) {
	b := d.buf
	hl := len(b) - len(d.recs)*sflowSample
	binary.BigEndian.PutUint32(b[hl-12:], c.datagrams+1)
	binary.BigEndian.PutUint32(b[hl-8:], t.uptime)
	c.datagrams++
	c.records += d.seqRecords
	for i := range d.recs {
		s := b[hl+i*sflowSample:]
		c.samples++
		c.pool += binary.BigEndian.Uint32(s[16:]) // the sample stands for rate packets
		binary.BigEndian.PutUint32(s[8:], c.samples)
		binary.BigEndian.PutUint32(s[20:], c.pool)
	}
}

func (sflowCodec) templates(*source) *datagram { return nil }
