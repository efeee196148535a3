package flowgen

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// maxDatagram is the payload size v9, IPFIX and sFlow datagrams are filled
// up to: under a 1500-byte MTU with IP and UDP headers, as exporters do.
const maxDatagram = 1400

// datagram is one pre-built export datagram of an exporter's pool. Only its
// header and time fields change between sends, patched in place.
type datagram struct {
	buf  []byte
	recs []flowRec // in encoding order: IPv4 records first, then IPv6
	nv4  int       // records in the IPv4 set (v9/IPFIX)
	// seqRecords is what the datagram adds to record sequence numbers: its
	// flows, or the options data record of an IPFIX template datagram.
	seqRecords uint32
	// base is the time the records' times were last patched to (sysUptime
	// or unix ms, as the codec counts); patches add the difference.
	base uint64
	// eph are the ephemeral ports the backbone profile rotates, one per
	// record with ports; step is the rotation they are written at.
	eph  []ephSlot
	step uint32
}

// ephSlot is one rotated port: where it is in buf and its value at step 0
// as an offset from EphemeralLo.
type ephSlot struct{ off, base uint16 }

// stamp is the time of a batch, read once and written into every datagram of it.
type stamp struct {
	uptime uint32 // ms since the exporter "booted"
	secs   uint32
	nsecs  uint32
	unixMs uint64
}

func newStamp(now, boot time.Time) stamp {
	return stamp{
		uptime: uint32(now.Sub(boot).Milliseconds()),
		secs:   uint32(now.Unix()),
		nsecs:  uint32(now.Nanosecond()),
		unixMs: uint64(now.UnixMilli()),
	}
}

// counters are an exporter's sequence counters, advanced as datagrams are
// sent (not built), so a collector's loss accounting sees a gapless stream.
type counters struct {
	datagrams uint32 // v9 and sFlow datagram sequence
	records   uint32 // v5 flow sequence, IPFIX data record sequence
	samples   uint32 // sFlow flow sample sequence
	pool      uint32 // sFlow sample pool: packets the samples stand for
}

// source is what the encoding needs to know about its exporter.
type source struct {
	addr     netip.Addr
	domain   uint32 // v9 source ID, IPFIX observation domain, sFlow sub-agent, v5 engine ID
	sampling uint32
	m        *model
}

// codec encodes and patches the datagrams of one export format.
type codec interface {
	// fits reports whether a data datagram with nv4 IPv4 and nv6 IPv6
	// records is within the format's size.
	fits(nv4, nv6 int) bool
	// encode builds a datagram of recs (IPv4 ones first) with times relative to 0.
	encode(src *source, recs []flowRec) *datagram
	// patch writes the header fields and times of a datagram about to be
	// sent and advances c as if it was.
	patch(d *datagram, c *counters, t *stamp)
	// templates builds the template datagram, nil for formats without.
	templates(src *source) *datagram
	// putSource overwrites the source address of record i of d with spread address a.
	putSource(d *datagram, i int, a uint32)
	// portsAt is the offset in d.buf of record i's source port, followed
	// by its destination port.
	portsAt(d *datagram, i int) int
}

func codecFor(format string) codec {
	switch format {
	case FormatV5:
		return v5Codec{}
	case FormatV9:
		return nfCodec{version: 9}
	case FormatIPFIX:
		return nfCodec{version: 10}
	}
	return sflowCodec{}
}

// addTime adds delta (mod 2^32) to the big-endian uint32 at b.
func addTime32(b []byte, delta uint32) {
	binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)+delta)
}

func addTime64(b []byte, delta uint64) {
	binary.BigEndian.PutUint64(b, binary.BigEndian.Uint64(b)+delta)
}

// NetFlow v5 (Cisco): 24-byte header, 30 records of 48 bytes at most.
const (
	v5Header   = 24
	v5Record   = 48
	v5MaxCount = 30
	// v5SamplingMode is the header's mode bits for deterministic 1-in-N sampling.
	v5SamplingMode = 1 << 14
)

type v5Codec struct{}

func (v5Codec) fits(nv4, nv6 int) bool { return nv6 == 0 && nv4 <= v5MaxCount }

func (v5Codec) encode(src *source, recs []flowRec) *datagram {
	b := make([]byte, v5Header+len(recs)*v5Record)
	binary.BigEndian.PutUint16(b[0:], 5)
	binary.BigEndian.PutUint16(b[2:], uint16(len(recs)))
	b[20], b[21] = 0, byte(src.domain) // engine type, engine ID
	if src.sampling > 1 {
		binary.BigEndian.PutUint16(b[22:], v5SamplingMode|uint16(src.sampling))
	}
	for i := range recs {
		f := &recs[i]
		r := b[v5Header+i*v5Record:]
		src.m.putAddr(r[0:], f.src, false)
		src.m.putAddr(r[4:], f.dst, false)
		binary.BigEndian.PutUint16(r[12:], f.inIf)
		binary.BigEndian.PutUint16(r[14:], f.outIf)
		binary.BigEndian.PutUint32(r[16:], f.packets)
		binary.BigEndian.PutUint32(r[20:], f.bytes)
		binary.BigEndian.PutUint32(r[24:], -f.durMs) // first switched, relative to last = 0
		binary.BigEndian.PutUint16(r[32:], f.srcPort)
		binary.BigEndian.PutUint16(r[34:], f.dstPort)
		r[37], r[38] = f.flags, f.proto
		r[44], r[45] = 16, 16 // masks: plausible, unused
	}
	return &datagram{buf: b, recs: recs, nv4: len(recs), seqRecords: uint32(len(recs))}
}

func (v5Codec) patch(d *datagram, c *counters, t *stamp) {
	b := d.buf
	binary.BigEndian.PutUint32(b[4:], t.uptime)
	binary.BigEndian.PutUint32(b[8:], t.secs)
	binary.BigEndian.PutUint32(b[12:], t.nsecs)
	binary.BigEndian.PutUint32(b[16:], c.records)
	c.records += d.seqRecords
	c.datagrams++
	if delta := t.uptime - uint32(d.base); delta != 0 {
		for i := range d.recs {
			r := b[v5Header+i*v5Record:]
			addTime32(r[24:], delta)
			addTime32(r[28:], delta)
		}
		d.base = uint64(t.uptime)
	}
}

func (v5Codec) templates(*source) *datagram { return nil }

func (v5Codec) putSource(d *datagram, i int, a uint32) {
	binary.BigEndian.PutUint32(d.buf[v5Header+i*v5Record:], a)
}

func (v5Codec) portsAt(_ *datagram, i int) int { return v5Header + i*v5Record + 32 }
