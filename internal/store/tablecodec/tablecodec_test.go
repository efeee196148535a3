package tablecodec

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// randCounter spreads values over every varint length, with the extremes.
func randCounter(r *rand.Rand) uint64 {
	switch r.IntN(8) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64
	default:
		return r.Uint64() >> r.IntN(64)
	}
}

func randCounters(r *rand.Rand) topn.Counters {
	return topn.Counters{Bytes: randCounter(r), Packets: randCounter(r), Flows: randCounter(r)}
}

func randKey(r *rand.Rand) topn.Key {
	switch r.IntN(6) {
	case 0:
		return topn.PortKey(uint16(r.Uint32()), uint8(r.Uint32()))
	case 1:
		var a flow.Addr
		a[10], a[11] = 0xff, 0xff
		binary.BigEndian.PutUint32(a[12:], r.Uint32())
		return topn.AddrKey(a)
	case 2:
		var a flow.Addr
		binary.BigEndian.PutUint64(a[:8], r.Uint64())
		return topn.IfKey(a, r.Uint32())
	case 3:
		return topn.AppKey([]string{"http", "dns", "a-rather-long-application", ""}[r.IntN(4)])
	case 4:
		return topn.Key{}
	}
	var k topn.Key
	for i := range k {
		k[i] = byte(r.Uint32())
	}
	return k
}

func randTable(r *rand.Rand, n int) *topn.Table {
	t := &topn.Table{Total: randCounters(r)}
	if r.IntN(2) == 0 {
		t.Threshold = randCounters(r)
	}
	if n > 0 {
		t.Entries = make([]topn.Entry, n)
	}
	for i := range t.Entries {
		t.Entries[i] = topn.Entry{Key: randKey(r), Value: randCounters(r)}
		if r.IntN(3) == 0 {
			t.Entries[i].Error = randCounters(r)
		}
	}
	return t
}

func TestTableRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var reused topn.Table
	for i := range 2000 {
		want := randTable(r, r.IntN(40))
		if i%100 == 0 {
			want = randTable(r, 1000)
		}
		b := Encode(want)
		got, err := Decode(b)
		require.NoError(t, err)
		require.Equal(t, want, got)
		require.NoError(t, DecodeInto(&reused, b))
		require.Equal(t, want.Total, reused.Total)
		require.Equal(t, want.Threshold, reused.Threshold)
		require.Equal(t, len(want.Entries), len(reused.Entries))
		if len(want.Entries) > 0 {
			require.Equal(t, want.Entries, reused.Entries)
		}
		require.Equal(t, b, Append(nil, got), "encoding is canonical")
	}
}

func TestTableEncodingIsCompact(t *testing.T) {
	tab := &topn.Table{Total: topn.Counters{Bytes: 1e9, Packets: 1e6, Flows: 1e4}}
	for i := range 1000 {
		tab.Entries = append(tab.Entries, topn.Entry{
			Key:   topn.PortKey(uint16(i), 6),
			Value: topn.Counters{Bytes: 1e6, Packets: 1000, Flows: 10},
		})
	}
	// Per entry: head 1, key 3 (port, proto), counters 3+2+1.
	require.Less(t, len(Encode(tab)), 1000*10+64)
}

func TestDecodeTableCorrupt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	good := Encode(randTable(r, 20))
	for n := range len(good) {
		_, err := Decode(good[:n])
		require.ErrorIs(t, err, ErrCorrupt, "truncated to %d bytes", n)
	}
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x10
		_, err := Decode(bad)
		require.ErrorIs(t, err, ErrCorrupt, "bit flip at %d", i)
	}
	// Well-formed checksums over malformed bodies.
	seal := func(body ...byte) []byte {
		return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
	}
	for name, b := range map[string][]byte{
		"format":        seal(2, 0, 0, 0, 0, 0, 0, 0),
		"huge count":    seal(1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f),
		"long key":      seal(1, 0, 0, 0, 0, 0, 0, 1, 25, 0, 0, 0),
		"reserved bits": seal(1, 0, 0, 0, 0, 0, 0, 1, 0x20, 0, 0, 0),
		"overflow":      seal(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0),
		"trailing":      seal(1, 0, 0, 0, 0, 0, 0, 0, 0),
		"missing error": seal(1, 0, 0, 0, 0, 0, 0, 1, 0x80, 1, 1, 1),
	} {
		_, err := Decode(b)
		require.ErrorIs(t, err, ErrCorrupt, name)
	}
	_, err := DecodeTotals(seal(1, 1, 1))
	require.ErrorIs(t, err, ErrCorrupt)
	c, err := DecodeTotals(EncodeTotals(topn.Counters{Bytes: math.MaxUint64, Packets: 2, Flows: 3}))
	require.NoError(t, err)
	require.Equal(t, topn.Counters{Bytes: math.MaxUint64, Packets: 2, Flows: 3}, c)
}

// FuzzDecodeTable: no input panics. Each input is also decoded with a valid
// checksum appended, so the fuzzer reaches the parser behind the CRC; whatever
// decodes re-encodes to an equal table.
func FuzzDecodeTable(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 5, 30} {
		b := Encode(randTable(r, n))
		f.Add(b)
		f.Add(b[:len(b)-crcLen])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sealed := binary.LittleEndian.AppendUint32(append([]byte(nil), b...), crc32.Checksum(b, castagnoli))
		for _, in := range [][]byte{b, sealed} {
			tab, err := Decode(in)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error does not wrap ErrCorrupt: %v", err)
				}
				continue
			}
			again, err := Decode(Encode(tab))
			if err != nil || !reflect.DeepEqual(tab, again) {
				t.Fatalf("re-encoding changed the table: %v\n%+v\n%+v", err, tab, again)
			}
		}
	})
}
