package pcapsrc

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	protoUDP  = 17

	maxFragEntries = 1024             // datagrams being reassembled at once
	fragTimeout    = 30 * time.Second // in capture time
	maxReassembled = 65535
)

// decoder turns captured frames into UDP datagrams.
type decoder struct {
	frags   map[fragKey]*fragEntry
	free    []*fragEntry
	skipped uint64 // fragments given up on (evicted or expired)
}

func newDecoder() *decoder { return &decoder{frags: map[fragKey]*fragEntry{}} }

// decode returns the UDP datagram in a frame, if any (ok false: skip the packet).
// A fragment completing a datagram returns it; other fragments return ok false, done true.
func (d *decoder) decode(p packet) (dg Datagram, ok, fragment bool) {
	ip, ok := linkPayload(p.link, p.data)
	if !ok {
		return Datagram{}, false, false
	}
	switch ip[0] >> 4 {
	case 4:
		return d.ipv4(p.ts, ip)
	case 6:
		return d.ipv6(p.ts, ip)
	}
	return Datagram{}, false, false
}

// linkPayload strips the link-layer header and returns the IP packet.
func linkPayload(link uint32, b []byte) ([]byte, bool) {
	var ethertype uint16
	switch link {
	case linkEther:
		if len(b) < 14 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for ethertype == 0x8100 || ethertype == 0x88a8 || ethertype == 0x9100 { // VLAN tags
			if len(b) < 4 {
				return nil, false
			}
			ethertype, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case linkSLL:
		if len(b) < 16 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case linkSLL2:
		if len(b) < 20 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	case linkNull, linkLoop: // 4-byte address family, in either byte order: look at the IP version
		if len(b) < 4 {
			return nil, false
		}
		b = b[4:]
	case linkRaw, linkRaw12, linkRaw14, linkIPv4, linkIPv6:
	default:
		return nil, false
	}
	if len(b) == 0 {
		return nil, false
	}
	switch v := b[0] >> 4; {
	case ethertype == 0 && (v == 4 || v == 6),
		ethertype == etherIPv4 && v == 4,
		ethertype == etherIPv6 && v == 6:
		return b, true
	}
	return nil, false
}

func (d *decoder) ipv4(ts time.Time, b []byte) (Datagram, bool, bool) {
	if len(b) < 20 {
		return Datagram{}, false, false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	if total == 0 { // segmentation offload: the length is left to the NIC
		total = len(b)
	}
	if ihl < 20 || total < ihl || total > len(b) { // total > len: cut by the snap length
		return Datagram{}, false, false
	}
	proto := b[9]
	src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	payload := b[ihl:total]
	flags := binary.BigEndian.Uint16(b[6:])
	if more, offset := flags&0x2000 != 0, int(flags&0x1fff)*8; more || offset != 0 {
		if proto != protoUDP {
			return Datagram{}, false, false
		}
		key := fragKey{src: src, dst: dst, id: uint32(binary.BigEndian.Uint16(b[4:])), proto: proto}
		whole, done := d.reassemble(ts, key, offset, more, payload)
		if !done {
			return Datagram{}, false, true
		}
		payload = whole
	} else if proto != protoUDP {
		return Datagram{}, false, false
	}
	return udp(ts, src, dst, payload)
}

func (d *decoder) ipv6(ts time.Time, b []byte) (Datagram, bool, bool) {
	if len(b) < 40 {
		return Datagram{}, false, false
	}
	plen := int(binary.BigEndian.Uint16(b[4:]))
	if plen == 0 { // jumbogram or segmentation offload
		plen = len(b) - 40
	}
	if 40+plen > len(b) {
		return Datagram{}, false, false
	}
	src, dst := netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	next, rest := b[6], b[40:40+plen]
	for {
		switch next {
		case protoUDP:
			return udp(ts, src, dst, rest)
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 8 || len(rest) < (int(rest[1])+1)*8 {
				return Datagram{}, false, false
			}
			next, rest = rest[0], rest[(int(rest[1])+1)*8:]
		case 51: // authentication header
			if len(rest) < 8 || len(rest) < (int(rest[1])+2)*4 {
				return Datagram{}, false, false
			}
			next, rest = rest[0], rest[(int(rest[1])+2)*4:]
		case 44: // fragment
			if len(rest) < 8 {
				return Datagram{}, false, false
			}
			fnext := rest[0]
			fo := binary.BigEndian.Uint16(rest[2:])
			offset, more := int(fo&0xfff8), fo&1 != 0
			if !more && offset == 0 { // atomic fragment
				next, rest = fnext, rest[8:]
				continue
			}
			if fnext != protoUDP { // only UDP right after the fragment header is reassembled
				return Datagram{}, false, false
			}
			key := fragKey{src: src, dst: dst, id: binary.BigEndian.Uint32(rest[4:]), proto: fnext, v6: true}
			whole, done := d.reassemble(ts, key, offset, more, rest[8:])
			if !done {
				return Datagram{}, false, true
			}
			next, rest = fnext, whole
		default:
			return Datagram{}, false, false
		}
	}
}

func udp(ts time.Time, src, dst netip.Addr, b []byte) (Datagram, bool, bool) {
	if len(b) < 8 {
		return Datagram{}, false, false
	}
	l := int(binary.BigEndian.Uint16(b[4:]))
	if l == 0 { // jumbogram or segmentation offload
		l = len(b)
	}
	if l < 8 || l > len(b) {
		return Datagram{}, false, false
	}
	return Datagram{
		Time:    ts,
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(b[0:])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(b[2:])),
		Payload: b[8:l],
	}, true, false
}

// Fragment reassembly, keyed by (src, dst, id, proto), bounded in entries and size.

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
	v6       bool
}

type fragEntry struct {
	first  time.Time
	data   []byte
	spans  [][2]int // received [start, end) ranges
	total  int      // length of the reassembled payload, -1 until the last fragment is seen
	frags  uint64
	broken bool // oversized: dropped when complete or evicted
}

// reassemble adds a fragment; it returns the whole payload (valid until the next call) and
// true when the datagram is complete.
func (d *decoder) reassemble(ts time.Time, key fragKey, offset int, more bool, b []byte) ([]byte, bool) {
	e := d.frags[key]
	if e != nil && ts.Sub(e.first) > fragTimeout { // stale: the identifier has been reused
		d.drop(key, e)
		e = nil
	}
	if e == nil {
		if len(d.frags) >= maxFragEntries {
			d.expire(ts, true)
		}
		e = d.newEntry(ts)
		d.frags[key] = e
	}
	e.frags++
	end := offset + len(b)
	if end > maxReassembled || (more && len(b)%8 != 0) || (e.total >= 0 && end > e.total) {
		e.broken = true
	}
	if !more {
		if e.total >= 0 && e.total != end {
			e.broken = true
		}
		e.total = end
	}
	if !e.broken {
		if end > len(e.data) {
			e.data = slices.Grow(e.data, end-len(e.data))[:end]
		}
		copy(e.data[offset:], b)
		e.spans = append(e.spans, [2]int{offset, end})
	}
	if e.total < 0 || !e.complete() {
		return nil, false
	}
	delete(d.frags, key)
	d.free = append(d.free, e) // reused on the next new entry, after the caller is done
	if e.broken {
		d.skipped += e.frags
		return nil, false
	}
	return e.data[:e.total], true
}

func (d *decoder) newEntry(ts time.Time) *fragEntry {
	var e *fragEntry
	if n := len(d.free); n > 0 {
		e, d.free = d.free[n-1], d.free[:n-1]
		*e = fragEntry{data: e.data[:0], spans: e.spans[:0]}
	} else {
		e = &fragEntry{}
	}
	e.first, e.total = ts, -1
	return e
}

// complete reports whether the spans cover [0, total).
func (e *fragEntry) complete() bool {
	if e.broken {
		return true // give up now that the last fragment is known
	}
	slices.SortFunc(e.spans, func(a, b [2]int) int { return a[0] - b[0] })
	covered := 0
	for _, s := range e.spans {
		if s[0] > covered {
			return false
		}
		covered = max(covered, s[1])
	}
	return covered >= e.total
}

// expire drops the entries older than fragTimeout; when full is set and none is, the oldest.
func (d *decoder) expire(now time.Time, full bool) {
	var oldestKey fragKey
	var oldest *fragEntry
	for k, e := range d.frags {
		if now.Sub(e.first) > fragTimeout {
			d.drop(k, e)
			continue
		}
		if oldest == nil || e.first.Before(oldest.first) {
			oldestKey, oldest = k, e
		}
	}
	if full && len(d.frags) >= maxFragEntries && oldest != nil {
		d.drop(oldestKey, oldest)
	}
}

func (d *decoder) drop(k fragKey, e *fragEntry) {
	d.skipped += e.frags
	delete(d.frags, k)
	d.free = append(d.free, e)
}

// flush gives up on the datagrams still incomplete at the end of the file.
func (d *decoder) flush() {
	for k, e := range d.frags {
		d.drop(k, e)
	}
	d.free = nil
}
