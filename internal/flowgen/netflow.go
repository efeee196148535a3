package flowgen

import "encoding/binary"

// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) data datagrams: a header, a
// data set of IPv4 records (template 256), then one of IPv6 records (257).
// Both templates have the same fields but the addresses; times are v9
// sysUptime ms (4 bytes) or IPFIX flowStart/EndMilliseconds (8 bytes).

const (
	v9Header    = 20
	ipfixHeader = 16
	setHeader   = 4

	templateV4      = 256
	templateV6      = 257
	templateOptions = 258

	// Information elements.
	ieInBytes                = 1
	ieInPkts                 = 2
	ieProtocol               = 4
	ieTCPFlags               = 6
	ieL4SrcPort              = 7
	ieIPv4SrcAddr            = 8
	ieInputSNMP              = 10
	ieL4DstPort              = 11
	ieIPv4DstAddr            = 12
	ieOutputSNMP             = 14
	ieLastSwitched           = 21
	ieFirstSwitched          = 22
	ieIPv6SrcAddr            = 27
	ieIPv6DstAddr            = 28
	ieSamplingInterval       = 34
	ieSamplingAlgorithm      = 35
	ieObservationDomain      = 149
	ieFlowStartMillis        = 152
	ieFlowEndMillis          = 153
	ieSamplingPacketInterval = 305
	ieSamplingPacketSpace    = 306
	v9ScopeSystem            = 1
	v9SamplingDeterministic  = 1 // deterministic
)

type nfCodec struct{ version uint16 }

func (c nfCodec) header() int {
	if c.version == 9 {
		return v9Header
	}
	return ipfixHeader
}

// timeLen is the size of each of a record's two time fields.
func (c nfCodec) timeLen() int {
	if c.version == 9 {
		return 4
	}
	return 8
}

// recordLen is the size of a record of the family: two addresses, then
// ports (2+2), protocol, flags, bytes (8), packets (8), interfaces (4+4), times.
func (c nfCodec) recordLen(v6 bool) int { return 2*addrLen(v6) + 30 + 2*c.timeLen() }

func addrLen(v6 bool) int {
	if v6 {
		return 16
	}
	return 4
}

// setLen is the size of a data set of n records; v9 pads sets to 4 bytes
// (RFC 3954 5.3), IPFIX sends them unpadded.
func (c nfCodec) setLen(n int, v6 bool) int {
	if n == 0 {
		return 0
	}
	l := setHeader + n*c.recordLen(v6)
	if c.version == 9 {
		l = (l + 3) &^ 3
	}
	return l
}

func (c nfCodec) fits(nv4, nv6 int) bool {
	return c.header()+c.setLen(nv4, false)+c.setLen(nv6, true) <= maxDatagram
}

func (c nfCodec) encode(src *source, recs []flowRec) *datagram {
	nv4 := 0
	for nv4 < len(recs) && !recs[nv4].v6 {
		nv4++
	}
	nv6 := len(recs) - nv4
	b := make([]byte, c.header()+c.setLen(nv4, false)+c.setLen(nv6, true))
	c.putHeader(b, src, len(recs))
	off := c.header()
	off += c.putSet(b[off:], src, recs[:nv4], false)
	c.putSet(b[off:], src, recs[nv4:], true)
	return &datagram{buf: b, recs: recs, nv4: nv4, seqRecords: uint32(len(recs))}
}

// putHeader writes the constant header fields; count is v9's record count.
func (c nfCodec) putHeader(b []byte, src *source, count int) {
	binary.BigEndian.PutUint16(b[0:], c.version)
	if c.version == 9 {
		binary.BigEndian.PutUint16(b[2:], uint16(count))
		binary.BigEndian.PutUint32(b[16:], src.domain)
		return
	}
	binary.BigEndian.PutUint16(b[2:], uint16(len(b))) // the message length
	binary.BigEndian.PutUint32(b[12:], src.domain)
}

func (c nfCodec) putSet(b []byte, src *source, recs []flowRec, v6 bool) int {
	if len(recs) == 0 {
		return 0
	}
	l := c.setLen(len(recs), v6)
	id := uint16(templateV4)
	if v6 {
		id = templateV6
	}
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], uint16(l))
	a, size, tl := addrLen(v6), c.recordLen(v6), c.timeLen()
	for i := range recs {
		f := &recs[i]
		r := b[setHeader+i*size:]
		src.m.putAddr(r[0:], f.src, v6)
		src.m.putAddr(r[a:], f.dst, v6)
		r = r[2*a:]
		binary.BigEndian.PutUint16(r[0:], f.srcPort)
		binary.BigEndian.PutUint16(r[2:], f.dstPort)
		r[4], r[5] = f.proto, f.flags
		binary.BigEndian.PutUint64(r[6:], uint64(f.bytes))
		binary.BigEndian.PutUint64(r[14:], uint64(f.packets))
		binary.BigEndian.PutUint32(r[22:], uint32(f.inIf))
		binary.BigEndian.PutUint32(r[26:], uint32(f.outIf))
		// start, end: relative to an end of 0; patch moves both to now.
		if tl == 4 {
			binary.BigEndian.PutUint32(r[30:], -f.durMs)
		} else {
			binary.BigEndian.PutUint64(r[30:], -uint64(f.durMs))
		}
	}
	return l
}

func (c nfCodec) putSource(d *datagram, i int, a uint32) {
	// Spread records are IPv4 (see Config.Spread): in the first set.
	binary.BigEndian.PutUint32(d.buf[c.header()+setHeader+i*c.recordLen(false):], a)
}

func (c nfCodec) portsAt(d *datagram, i int) int {
	if i < d.nv4 {
		return c.header() + setHeader + i*c.recordLen(false) + 2*addrLen(false)
	}
	return c.header() + c.setLen(d.nv4, false) + setHeader + (i-d.nv4)*c.recordLen(true) + 2*addrLen(true)
}

func (c nfCodec) patch(d *datagram, ctr *counters, t *stamp) {
	b := d.buf
	if c.version == 9 {
		binary.BigEndian.PutUint32(b[4:], t.uptime)
		binary.BigEndian.PutUint32(b[8:], t.secs)
		binary.BigEndian.PutUint32(b[12:], ctr.datagrams)
	} else {
		binary.BigEndian.PutUint32(b[4:], t.secs)
		binary.BigEndian.PutUint32(b[8:], ctr.records) // data records sent before this message
	}
	ctr.datagrams++
	ctr.records += d.seqRecords

	now := t.unixMs
	if c.version == 9 {
		now = uint64(t.uptime)
	}
	if now == d.base || len(d.recs) == 0 {
		return
	}
	delta := now - d.base
	d.base = now
	off := c.header()
	for _, set := range [2]struct {
		n  int
		v6 bool
	}{{d.nv4, false}, {len(d.recs) - d.nv4, true}} {
		if set.n == 0 {
			continue
		}
		size := c.recordLen(set.v6)
		first := off + setHeader + 2*addrLen(set.v6) + 30
		for i := range set.n {
			r := b[first+i*size:]
			if c.version == 9 {
				addTime32(r, uint32(delta))
				addTime32(r[4:], uint32(delta))
			} else {
				addTime64(r, delta)
				addTime64(r[8:], delta)
			}
		}
		off += c.setLen(set.n, set.v6)
	}
}

// templates builds the datagram announcing both data templates and, when
// sampled, an options template and its data record carrying the rate: v9
// SAMPLING_INTERVAL (34) scoped to the system; IPFIX samplingPacketInterval
// (305) = 1 and samplingPacketSpace (306) = rate−1 (RFC 5477: select 1
// packet, skip rate−1), scoped to the observation domain.
func (c nfCodec) templates(src *source) *datagram {
	b := make([]byte, c.header(), maxDatagram)
	count := 2 // v9 header count: templates and options records

	// Template set.
	set := len(b)
	b = binary.BigEndian.AppendUint16(b, c.templateSetID(false))
	b = binary.BigEndian.AppendUint16(b, 0)
	for _, v6 := range []bool{false, true} {
		id, sa, da := uint16(templateV4), uint16(ieIPv4SrcAddr), uint16(ieIPv4DstAddr)
		if v6 {
			id, sa, da = templateV6, ieIPv6SrcAddr, ieIPv6DstAddr
		}
		start, end := uint16(ieFirstSwitched), uint16(ieLastSwitched)
		if c.version == 10 {
			start, end = ieFlowStartMillis, ieFlowEndMillis
		}
		a, tl := uint16(addrLen(v6)), uint16(c.timeLen())
		fields := [][2]uint16{
			{sa, a}, {da, a}, {ieL4SrcPort, 2}, {ieL4DstPort, 2}, {ieProtocol, 1}, {ieTCPFlags, 1},
			{ieInBytes, 8}, {ieInPkts, 8}, {ieInputSNMP, 4}, {ieOutputSNMP, 4}, {start, tl}, {end, tl},
		}
		b = binary.BigEndian.AppendUint16(b, id)
		b = binary.BigEndian.AppendUint16(b, uint16(len(fields)))
		for _, f := range fields {
			b = binary.BigEndian.AppendUint16(b, f[0])
			b = binary.BigEndian.AppendUint16(b, f[1])
		}
	}
	binary.BigEndian.PutUint16(b[set+2:], uint16(len(b)-set))

	var optionRecords int
	if src.sampling > 1 {
		// Options template set.
		set = len(b)
		b = binary.BigEndian.AppendUint16(b, c.templateSetID(true))
		b = binary.BigEndian.AppendUint16(b, 0)
		b = binary.BigEndian.AppendUint16(b, templateOptions)
		if c.version == 9 {
			b = append(b, 0, 4, 0, 8) // scope length, option length, in bytes
			b = append(b, 0, v9ScopeSystem, 0, 4, 0, ieSamplingInterval, 0, 4, 0, ieSamplingAlgorithm, 0, 1)
		} else {
			b = append(b, 0, 3, 0, 1) // field count, scope field count
			b = append(b, 0, ieObservationDomain, 0, 4)
			b = binary.BigEndian.AppendUint16(b, ieSamplingPacketInterval)
			b = append(b, 0, 4)
			b = binary.BigEndian.AppendUint16(b, ieSamplingPacketSpace)
			b = append(b, 0, 4)
		}
		b = c.pad(b, set)
		binary.BigEndian.PutUint16(b[set+2:], uint16(len(b)-set))

		// Options data set.
		set = len(b)
		b = binary.BigEndian.AppendUint16(b, templateOptions)
		b = binary.BigEndian.AppendUint16(b, 0)
		if c.version == 9 {
			b = binary.BigEndian.AppendUint32(b, 0) // system scope
			b = binary.BigEndian.AppendUint32(b, src.sampling)
			b = append(b, v9SamplingDeterministic)
		} else {
			b = binary.BigEndian.AppendUint32(b, src.domain)
			b = binary.BigEndian.AppendUint32(b, 1)
			b = binary.BigEndian.AppendUint32(b, src.sampling-1)
		}
		b = c.pad(b, set)
		binary.BigEndian.PutUint16(b[set+2:], uint16(len(b)-set))
		count += 2
		optionRecords = 1
	}
	c.putHeader(b, src, count)
	// The options record is no flow, but IPFIX counts it in its data record sequence.
	return &datagram{buf: b, seqRecords: uint32(optionRecords)}
}

func (c nfCodec) templateSetID(options bool) uint16 {
	switch {
	case c.version == 9 && !options:
		return 0
	case c.version == 9:
		return 1
	case !options:
		return 2
	}
	return 3
}

// pad pads a v9 set begun at start to 4 bytes.
func (c nfCodec) pad(b []byte, start int) []byte {
	if c.version != 9 {
		return b
	}
	for (len(b)-start)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
