package pcapsrc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// Link types (https://www.tcpdump.org/linktypes.html). gopacket's layers.LinkType is a uint8
// and cannot hold LINUX_SLL2 (276): this package keeps link types as uint32.
const (
	linkNull    = 0
	linkEther   = 1
	linkRaw12   = 12 // DLT_RAW on some BSDs, found in files
	linkRaw14   = 14
	linkRaw     = 101
	linkLoop    = 108
	linkSLL     = 113
	linkIPv4    = 228
	linkIPv6    = 229
	linkSLL2    = 276
	maxRecordSz = 16 << 20 // larger records mean a corrupt file
)

// packet is one captured frame; data is valid until the next call to next.
type packet struct {
	data []byte
	ts   time.Time
	link uint32
}

type packetSource interface {
	// next returns the next packet, io.EOF at a clean end of file, io.ErrUnexpectedEOF when
	// the file ends inside a record.
	next() (packet, error)
}

// readFull reads len(b) bytes; an end of file after zero bytes is io.EOF only when atStart.
func readFull(r io.Reader, b []byte, atStart bool) error {
	_, err := io.ReadFull(r, b)
	if err == io.EOF && !atStart {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Classic pcap.

const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	ngMagicSHB     = 0x0a0d0d0a
	ngByteOrder    = 0x1a2b3c4d
)

type pcapReader struct {
	r     *bufio.Reader
	order binary.ByteOrder
	nano  bool
	link  uint32
	hdr   [16]byte
	buf   []byte
}

func newPcapReader(r *bufio.Reader) (*pcapReader, error) {
	var h [24]byte
	if err := readFull(r, h[:], false); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	p := &pcapReader{r: r}
	switch {
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicMicro:
		p.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[:]) == pcapMagicMicro:
		p.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[:]) == pcapMagicNano:
		p.order, p.nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[:]) == pcapMagicNano:
		p.order, p.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("unknown pcap magic %#x", h[:4])
	}
	if major := p.order.Uint16(h[4:]); major != 2 {
		return nil, fmt.Errorf("unsupported pcap version %d", major)
	}
	// The low 16 bits are the link type; the upper ones carry FCS information.
	p.link = p.order.Uint32(h[20:]) & 0xffff
	return p, nil
}

func (p *pcapReader) next() (packet, error) {
	if err := readFull(p.r, p.hdr[:], true); err != nil {
		return packet{}, err
	}
	sec, frac := p.order.Uint32(p.hdr[0:]), p.order.Uint32(p.hdr[4:])
	incl := p.order.Uint32(p.hdr[8:])
	if incl > maxRecordSz {
		return packet{}, fmt.Errorf("pcap record of %d bytes: corrupt file", incl)
	}
	if int(incl) > cap(p.buf) {
		p.buf = make([]byte, max(incl, 65536))
	}
	data := p.buf[:incl]
	if err := readFull(p.r, data, false); err != nil {
		return packet{}, err
	}
	nsec := int64(frac)
	if !p.nano {
		nsec *= 1000
	}
	return packet{data: data, ts: time.Unix(int64(sec), nsec).UTC(), link: p.link}, nil
}

// pcapng: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html

type ngInterface struct {
	link    uint32
	snaplen uint32
	units   uint64 // timestamp units per second
	offset  int64  // seconds added to timestamps
}

type ngReader struct {
	r      *bufio.Reader
	order  binary.ByteOrder
	ifaces []ngInterface
	hdr    [12]byte
	buf    []byte
}

func newNgReader(r *bufio.Reader) *ngReader { return &ngReader{r: r} }

func (n *ngReader) next() (packet, error) {
	for {
		typ, body, err := n.block()
		if err != nil {
			return packet{}, err
		}
		switch typ {
		case 1: // interface description
			if err := n.iface(body); err != nil {
				return packet{}, err
			}
		case 6, 2: // enhanced packet, obsolete packet
			if len(body) < 20 {
				return packet{}, errors.New("pcapng: short packet block")
			}
			id := n.order.Uint32(body)
			if typ == 2 {
				id = uint32(n.order.Uint16(body))
			}
			if int(id) >= len(n.ifaces) {
				return packet{}, fmt.Errorf("pcapng: packet for undeclared interface %d", id)
			}
			caplen := n.order.Uint32(body[12:])
			if int(caplen) > len(body)-20 {
				return packet{}, errors.New("pcapng: packet longer than its block")
			}
			ifc := &n.ifaces[id]
			ts := uint64(n.order.Uint32(body[4:]))<<32 | uint64(n.order.Uint32(body[8:]))
			return packet{data: body[20 : 20+caplen], ts: ifc.time(ts), link: ifc.link}, nil
		case 3: // simple packet: no timestamp
			if len(body) < 4 || len(n.ifaces) == 0 {
				return packet{}, errors.New("pcapng: bad simple packet block")
			}
			caplen := min(n.order.Uint32(body), uint32(len(body)-4))
			if s := n.ifaces[0].snaplen; s != 0 && caplen > s {
				caplen = s
			}
			return packet{data: body[4 : 4+caplen], link: n.ifaces[0].link}, nil
		}
		// Section headers are handled by block; other blocks are skipped.
	}
}

// block reads one block and returns its type and body (without the trailing length).
func (n *ngReader) block() (uint32, []byte, error) {
	if err := readFull(n.r, n.hdr[:8], true); err != nil {
		return 0, nil, err
	}
	typ := binary.LittleEndian.Uint32(n.hdr[:]) // the section header type is a palindrome
	if typ == ngMagicSHB {
		if err := readFull(n.r, n.hdr[8:12], false); err != nil {
			return 0, nil, err
		}
		switch {
		case binary.LittleEndian.Uint32(n.hdr[8:]) == ngByteOrder:
			n.order = binary.LittleEndian
		case binary.BigEndian.Uint32(n.hdr[8:]) == ngByteOrder:
			n.order = binary.BigEndian
		default:
			return 0, nil, errors.New("pcapng: bad byte-order magic")
		}
		n.ifaces = n.ifaces[:0] // interfaces are per section
	} else if n.order == nil {
		return 0, nil, errors.New("pcapng: no section header")
	}
	typ = n.order.Uint32(n.hdr[:])
	length := n.order.Uint32(n.hdr[4:])
	consumed := uint32(8)
	if typ == ngMagicSHB {
		consumed = 12
	}
	if length < consumed+4 || length%4 != 0 || length > maxRecordSz {
		return 0, nil, fmt.Errorf("pcapng: bad block length %d", length)
	}
	rest := int(length - consumed)
	if rest > cap(n.buf) {
		n.buf = make([]byte, max(rest, 65536))
	}
	body := n.buf[:rest]
	if err := readFull(n.r, body, false); err != nil {
		return 0, nil, err
	}
	if n.order.Uint32(body[rest-4:]) != length {
		return 0, nil, errors.New("pcapng: block lengths differ")
	}
	return typ, body[:rest-4], nil
}

func (n *ngReader) iface(body []byte) error {
	if len(body) < 8 {
		return errors.New("pcapng: short interface block")
	}
	ifc := ngInterface{link: uint32(n.order.Uint16(body)), snaplen: n.order.Uint32(body[4:]), units: 1e6}
	for opts := body[8:]; len(opts) >= 4; {
		code, l := n.order.Uint16(opts), int(n.order.Uint16(opts[2:]))
		if code == 0 || 4+l > len(opts) {
			break
		}
		v := opts[4 : 4+l]
		switch {
		case code == 9 && l >= 1: // if_tsresol
			if r := v[0]; r&0x80 != 0 {
				if r&0x7f > 63 {
					return fmt.Errorf("pcapng: bad timestamp resolution %#x", r)
				}
				ifc.units = 1 << (r & 0x7f)
			} else {
				if r > 19 {
					return fmt.Errorf("pcapng: bad timestamp resolution %d", r)
				}
				ifc.units = 1
				for range r {
					ifc.units *= 10
				}
			}
		case code == 14 && l >= 8: // if_tsoffset
			ifc.offset = int64(n.order.Uint64(v))
		}
		opts = opts[4+(l+3)&^3:]
	}
	n.ifaces = append(n.ifaces, ifc)
	return nil
}

func (i *ngInterface) time(ts uint64) time.Time {
	sec, frac := ts/i.units, ts%i.units
	hi, lo := bits.Mul64(frac, 1e9)
	nsec, _ := bits.Div64(hi, lo, i.units) // frac < units, so no overflow
	return time.Unix(int64(sec)+i.offset, int64(nsec)).UTC()
}
