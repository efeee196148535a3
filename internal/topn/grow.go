package topn

import "slices"

// Grow makes room for n more keys. A caller that knows how many keys are
// coming (a query knows how many tables of what size it reads) spares the
// merger the copies of growing its rows a quarter at a time, which cost a
// 30-day query more than the merging itself.
func (m *Merger) Grow(n int) {
	if n > 0 {
		m.rows = slices.Grow(m.rows, n)
	}
}

// Reset empties the merger and keeps its memory, so queries can reuse one:
// a 30-day top fills a map and rows of some 150k keys, which are cheaper to
// clear than to allocate, zero and grow again.
func (m *Merger) Reset() {
	m.total, m.sumThreshold = Counters{}, Counters{}
	clear(m.index)
	m.rows = m.rows[:0]
}
