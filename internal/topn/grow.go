package topn

import (
	"encoding/binary"
	"slices"
)

// Grow makes room for n more keys. A caller that knows how many keys are
// coming (a query knows how many tables of what size it reads) spares the
// merger the copies of growing its rows a quarter at a time, which cost a
// 30-day query more than the merging itself.
func (m *Merger) Grow(n int) {
	if n > 0 {
		m.rows = slices.Grow(m.rows, n)
		m.index.grow(len(m.rows) + n)
	}
}

// Reset empties the merger and keeps its memory, so queries can reuse one:
// a 30-day top fills a map and rows of some 150k keys, which are cheaper to
// clear than to allocate, zero and grow again.
func (m *Merger) Reset() {
	m.total, m.sumThreshold = Counters{}, Counters{}
	clear(m.index.slots)
	m.rows = m.rows[:0]
}

// mergeIndex finds a key's row: open addressing with linear probing, each
// slot the high 32 bits of the key's hash over the row's index plus one (0:
// empty), so that a probe reads a row only when the hashes agree. It replaced a Go
// map[Key]int32, whose lookups were a quarter of a 24-hour top's CPU
// (BenchmarkTop24h/tiers: mapaccess2 15%, matchH2 8%, mapassign 5%).
type mergeIndex struct {
	slots []uint64 // length a power of two, at most half full
}

func keyHash(k *Key) uint64 {
	h := binary.LittleEndian.Uint64(k[0:])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(k[8:])
	h = (h^h>>29)*0xbf58476d1ce4e5b9 ^ binary.LittleEndian.Uint64(k[16:])
	h = (h ^ h>>32) * 0x94d049bb133111eb
	return h ^ h>>29
}

// grow makes room for n keys in all.
func (x *mergeIndex) grow(n int) {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if size <= len(x.slots) {
		return
	}
	old := x.slots
	x.slots = make([]uint64, size)
	mask := uint64(size - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		// A slot's high half is its hash's: where its probe starts.
		for i := (s >> 32) & mask; ; i = (i + 1) & mask {
			if x.slots[i] == 0 {
				x.slots[i] = s
				break
			}
		}
	}
}

// row is k's row, added (zero) if k is new.
func (m *Merger) row(k *Key) *mergeRow {
	x := &m.index
	if 2*(len(m.rows)+1) > len(x.slots) {
		x.grow(2 * (len(m.rows) + 1))
	}
	h := keyHash(k)
	tag := h >> 32 << 32 // the hash's high half, kept in the slot's high bits
	mask := uint64(len(x.slots) - 1)
	for i := (h >> 32) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			m.rows = append(m.rows, mergeRow{key: *k})
			x.slots[i] = tag | uint64(len(m.rows))
			return &m.rows[len(m.rows)-1]
		}
		if s&^0xffffffff == tag {
			if r := &m.rows[s&0xffffffff-1]; r.key == *k {
				return r
			}
		}
	}
}
