// Package tablecodec owns the binary encoding of a topn.Table and of interval
// totals: compact (uvarints, keys trimmed of trailing zeros), versioned by a format
// byte, sealed by a CRC-32C. The store keeps its values in it; checkpoints may too.
package tablecodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tmsd/tmsd/internal/topn"
)

// Value encodings. Both start with a format byte and end with a CRC-32C
// (Castagnoli, 4 bytes little-endian) of everything before it:
//
//	table:  0x01 | Total (3 uvarint) | Threshold (3 uvarint) | n (uvarint) | n × entry | crc32c
//	entry:  head (1) | key (head&0x1f bytes) | Value (3 uvarint) | Error (3 uvarint, only if head&0x80)
//	totals: 0x01 | Total (3 uvarint) | crc32c
//
// The key of an entry is trimmed of its trailing zero bytes (ports take 3 bytes,
// addresses 16, interfaces 20); head bits 5 and 6 are reserved and must be zero.
const (
	tableFormatV1  = 1
	totalsFormatV1 = 1

	headKeyLen   = 0x1f
	headHasError = 0x80
	headReserved = 0x60

	crcLen = 4
	// minEntryLen is the smallest encoded entry: head and three one-byte counters.
	minEntryLen = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt: a value does not decode (bad checksum, format or structure).
var ErrCorrupt = errors.New("corrupt store data")

// Encode returns the binary encoding of t.
func Encode(t *topn.Table) []byte {
	return Append(make([]byte, 0, 32+len(t.Entries)*24), t)
}

// Append appends the encoding of t to dst and returns the extended slice.
func Append(dst []byte, t *topn.Table) []byte {
	start := len(dst)
	dst = append(dst, tableFormatV1)
	dst = appendCounters(dst, t.Total)
	dst = appendCounters(dst, t.Threshold)
	dst = binary.AppendUvarint(dst, uint64(len(t.Entries)))
	for i := range t.Entries {
		e := &t.Entries[i]
		n := len(e.Key)
		for n > 0 && e.Key[n-1] == 0 {
			n--
		}
		head := byte(n)
		hasErr := !e.Error.IsZero()
		if hasErr {
			head |= headHasError
		}
		dst = append(dst, head)
		dst = append(dst, e.Key[:n]...)
		dst = appendCounters(dst, e.Value)
		if hasErr {
			dst = appendCounters(dst, e.Error)
		}
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// Decode decodes a table encoded by Encode. Any malformed input gives an
// error wrapping ErrCorrupt. The table's entries are one allocation.
func Decode(b []byte) (*topn.Table, error) {
	t := &topn.Table{}
	if err := DecodeInto(t, b); err != nil {
		return nil, err
	}
	return t, nil
}

// DecodeInto is Decode into an existing table, reusing the capacity of
// t.Entries (for callers that decode many tables and keep none of them). On error,
// t is left in an unspecified state.
func DecodeInto(t *topn.Table, b []byte) error {
	body, err := checkCRC(b)
	if err != nil {
		return err
	}
	if body[0] != tableFormatV1 {
		return fmt.Errorf("%w: unknown table format %d", ErrCorrupt, body[0])
	}
	b, i := body, 1
	t.Total, i = countersAt(b, i)
	t.Threshold, i = countersAt(b, i)
	n, i := uvarintAt(b, i)
	if i > len(b) {
		return fmt.Errorf("%w: truncated table header", ErrCorrupt)
	}
	if n > uint64(len(b)-i)/minEntryLen {
		return fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrCorrupt, n, len(b)-i)
	}
	if uint64(cap(t.Entries)) >= n {
		t.Entries = t.Entries[:n]
	} else {
		t.Entries = make([]topn.Entry, n)
	}
	for j := range t.Entries {
		e := &t.Entries[j]
		if i >= len(b) {
			return fmt.Errorf("%w: truncated entry %d", ErrCorrupt, j)
		}
		head := b[i]
		i++
		kl := int(head & headKeyLen)
		if head&headReserved != 0 || kl > len(e.Key) || kl > len(b)-i {
			return fmt.Errorf("%w: bad head 0x%02x of entry %d", ErrCorrupt, head, j)
		}
		// Fixed-size moves for the common lengths: no memmove call.
		var k topn.Key
		switch kb := b[i : i+kl]; kl {
		case 16: // addresses
			*(*[16]byte)(k[:]) = [16]byte(kb)
		case 20: // interfaces
			*(*[20]byte)(k[:]) = [20]byte(kb)
		case 3: // ports
			k[0], k[1], k[2] = kb[0], kb[1], kb[2]
		default:
			copy(k[:], kb)
		}
		e.Key = k
		i += kl
		e.Value, i = countersAt(b, i)
		if head&headHasError != 0 {
			e.Error, i = countersAt(b, i)
		} else {
			e.Error = topn.Counters{}
		}
	}
	if i != len(b) {
		if i > len(b) {
			return fmt.Errorf("%w: truncated entries", ErrCorrupt)
		}
		return fmt.Errorf("%w: %d trailing bytes after table", ErrCorrupt, len(b)-i)
	}
	return nil
}

// EncodeTotals encodes the totals of an interval.
func EncodeTotals(c topn.Counters) []byte {
	b := appendCounters(append(make([]byte, 0, 1+3*binary.MaxVarintLen64+crcLen), totalsFormatV1), c)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// DecodeTotals is the inverse of EncodeTotals.
func DecodeTotals(b []byte) (topn.Counters, error) {
	body, err := checkCRC(b)
	if err != nil {
		return topn.Counters{}, err
	}
	if body[0] != totalsFormatV1 {
		return topn.Counters{}, fmt.Errorf("%w: unknown totals format %d", ErrCorrupt, body[0])
	}
	c, i := countersAt(body, 1)
	if i != len(body) {
		return topn.Counters{}, fmt.Errorf("%w: malformed totals", ErrCorrupt)
	}
	return c, nil
}

// checkCRC verifies the trailing checksum and returns the non-empty body before it.
func checkCRC(b []byte) ([]byte, error) {
	if len(b) < 1+crcLen {
		return nil, fmt.Errorf("%w: value of %d bytes is too short", ErrCorrupt, len(b))
	}
	body := b[:len(b)-crcLen]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(body):]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return body, nil
}

func appendCounters(dst []byte, c topn.Counters) []byte {
	dst = binary.AppendUvarint(dst, c.Bytes)
	dst = binary.AppendUvarint(dst, c.Packets)
	return binary.AppendUvarint(dst, c.Flows)
}

// countersAt reads three uvarints at b[i:] and returns them with the index after
// them. On a malformed or truncated uvarint it returns len(b)+1, from which every
// later read fails too: callers check i > len(b) once, at the end.
func countersAt(b []byte, i int) (topn.Counters, int) {
	var v [3]uint64
	for k := range v {
		if i >= len(b) {
			return topn.Counters{}, len(b) + 1
		}
		x := b[i]
		i++
		if x < 0x80 { // flows, small packet counts
			v[k] = uint64(x)
			continue
		}
		r := uint64(x & 0x7f)
		for s := 7; ; s += 7 {
			if i >= len(b) || s > 63 {
				return topn.Counters{}, len(b) + 1
			}
			x = b[i]
			i++
			if x < 0x80 {
				if s == 63 && x > 1 {
					return topn.Counters{}, len(b) + 1 // overflows 64 bits
				}
				r |= uint64(x) << s
				break
			}
			r |= uint64(x&0x7f) << s
		}
		v[k] = r
	}
	return topn.Counters{Bytes: v[0], Packets: v[1], Flows: v[2]}, i
}

// uvarintAt reads one uvarint like countersAt.
func uvarintAt(b []byte, i int) (uint64, int) {
	if i >= len(b) {
		return 0, len(b) + 1
	}
	v, n := binary.Uvarint(b[i:])
	if n <= 0 {
		return 0, len(b) + 1
	}
	return v, i + n
}
