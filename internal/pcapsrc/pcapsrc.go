// Package pcapsrc owns reading captured flow export datagrams from pcap and pcapng files, for
// `tmsd import`. File formats (optionally gzipped) and link, IP and UDP headers are parsed by
// hand into reused buffers; IPv4 and IPv6 fragments are reassembled in a small bounded table;
// Selector (export.go) tells flow export from the other UDP a capture may hold.
package pcapsrc

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// Datagram is one UDP payload found in a capture.
type Datagram struct {
	Time     time.Time // capture time; for a reassembled datagram, its last fragment's
	Src, Dst netip.AddrPort
	Payload  []byte
}

// Stats counts what Read went through.
type Stats struct {
	Packets   uint64    // frames read
	Datagrams uint64    // UDP datagrams passed to fn
	Skipped   uint64    // frames not delivered: not UDP, unknown link type, malformed, cut by the snap length, or fragments not reassembled
	First     time.Time // capture time of the first frame
	Last      time.Time // capture time of the last frame
}

// Read calls fn for each UDP datagram in the pcap or pcapng file at path (gzipped or not),
// in file order. Payload is valid only during the call. Non-UDP packets are skipped; IPv4 and
// IPv6 fragments that cannot be reassembled are counted as skipped. An error from fn stops
// the reading and is returned, wrapped.
func Read(path string, fn func(Datagram) error) (Stats, error) {
	var stats Stats
	f, err := os.Open(path)
	if err != nil {
		return stats, err // already names the path
	}
	defer f.Close()
	src, err := open(f)
	if err != nil {
		return stats, fmt.Errorf("%s: %w", path, err)
	}
	d := newDecoder()
	for {
		p, err := src.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("truncated file: %w", err)
			}
			return stats, fmt.Errorf("%s: %w", path, err)
		}
		stats.Packets++
		if !p.ts.IsZero() {
			if stats.First.IsZero() {
				stats.First = p.ts
			}
			stats.Last = p.ts
		}
		dg, ok, fragment := d.decode(p)
		if !ok {
			if !fragment {
				stats.Skipped++
			}
			continue
		}
		stats.Datagrams++
		if err := fn(dg); err != nil {
			stats.Skipped += d.skipped
			return stats, fmt.Errorf("%s: %w", path, err)
		}
	}
	d.flush()
	stats.Skipped += d.skipped
	return stats, nil
}

// open detects the format by its magic number.
func open(r io.Reader) (packetSource, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("empty file")
		}
		return nil, err
	}
	if magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		br = bufio.NewReaderSize(gz, 1<<20)
		if magic, err = br.Peek(4); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	switch m := binary.LittleEndian.Uint32(magic); {
	case m == ngMagicSHB:
		return newNgReader(br), nil
	case m == pcapMagicMicro, m == pcapMagicNano,
		binary.BigEndian.Uint32(magic) == pcapMagicMicro, binary.BigEndian.Uint32(magic) == pcapMagicNano:
		return newPcapReader(br)
	}
	return nil, fmt.Errorf("not a pcap or pcapng file (magic %#x)", magic)
}
