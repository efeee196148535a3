package topn

import (
	"fmt"
	"slices"
)

// Metric is what a TopN ranks by.
type Metric uint8

// Metrics.
const (
	Bytes Metric = iota
	Packets
	Flows
)

func (m Metric) String() string { return [...]string{"bytes", "packets", "flows"}[m] }

// ParseMetric returns the metric named s.
func ParseMetric(s string) (Metric, error) {
	switch s {
	case "bytes", "":
		return Bytes, nil
	case "packets":
		return Packets, nil
	case "flows":
		return Flows, nil
	}
	return 0, fmt.Errorf("unknown metric %q (bytes, packets or flows)", s)
}

// Counters are the three metrics of a key or a total.
type Counters struct {
	Bytes, Packets, Flows uint64
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Bytes += o.Bytes
	c.Packets += o.Packets
	c.Flows += o.Flows
}

// Sub subtracts o from c, stopping at zero.
func (c *Counters) Sub(o Counters) {
	c.Bytes = subFloor(c.Bytes, o.Bytes)
	c.Packets = subFloor(c.Packets, o.Packets)
	c.Flows = subFloor(c.Flows, o.Flows)
}

func subFloor(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// Times returns c multiplied by k.
func (c Counters) Times(k int) Counters {
	n := uint64(k)
	return Counters{Bytes: c.Bytes * n, Packets: c.Packets * n, Flows: c.Flows * n}
}

// Max raises each metric of c to o's where o's is larger.
func (c *Counters) Max(o Counters) {
	c.Bytes = max(c.Bytes, o.Bytes)
	c.Packets = max(c.Packets, o.Packets)
	c.Flows = max(c.Flows, o.Flows)
}

// Get returns one metric.
func (c Counters) Get(m Metric) uint64 {
	switch m {
	case Packets:
		return c.Packets
	case Flows:
		return c.Flows
	}
	return c.Bytes
}

// IsZero reports whether all metrics are zero.
func (c Counters) IsZero() bool { return c == Counters{} }

// Entry is one key's counters. The counters are a lower bound: the key's true
// amount is at most Counters+Error, per metric.
type Entry struct {
	Key   Key
	Value Counters
	Error Counters
}

// Table is one dimension's top keys over one interval and scope.
//   - Total is exact: all traffic of the interval and scope, kept or not, each
//     flow counted once.
//   - Entries are the kept keys; each is under-counted by at most its Error.
//   - Threshold bounds, per metric, the true amount of any key not in Entries.
//
// Every key of the dimension together holds exactly Dim.CountsPerFlow() ×
// Total (twice the total for ip and port), so the remainder ("other") is that
// minus the entries, and the figures always add up.
type Table struct {
	Total     Counters
	Threshold Counters
	Entries   []Entry
}

// Exact reports whether every figure in the table is exact: no key was dropped
// and no entry has an error bound.
func (t *Table) Exact() bool {
	if !t.Threshold.IsZero() {
		return false
	}
	for i := range t.Entries {
		if !t.Entries[i].Error.IsZero() {
			return false
		}
	}
	return true
}

// Merger sums tables of consecutive intervals (or of shards of one interval).
// A key missing from a table may still have had up to that table's Threshold there,
// so its Error grows by the Threshold of every table it is missing from.
type Merger struct {
	total        Counters
	sumThreshold Counters
	index        mergeIndex
	rows         []mergeRow
}

type mergeRow struct {
	key                               Key
	value, err, thresholdWherePresent Counters
}

// NewMerger returns an empty merger sized for about n keys.
func NewMerger(n int) *Merger {
	m := &Merger{rows: make([]mergeRow, 0, n)}
	m.index.grow(n)
	return m
}

// Add merges one table.
func (m *Merger) Add(t *Table) {
	m.total.Add(t.Total)
	m.sumThreshold.Add(t.Threshold)
	for i := range t.Entries {
		e := &t.Entries[i]
		r := m.row(&e.Key)
		r.value.Add(e.Value)
		r.err.Add(e.Error)
		r.thresholdWherePresent.Add(t.Threshold)
	}
}

// AddEach merges a table given by its total, its threshold and a walk over its
// keys, each with error errEach: the shape of an aggregator's counting table.
// It saves materializing the table's entries only to merge them; at minute
// close under a flood of distinct addresses those copies were hundreds of MB
// (72 B an entry).
func (m *Merger) AddEach(total, threshold, errEach Counters, each func(fn func(k Key, v Counters))) {
	m.total.Add(total)
	m.sumThreshold.Add(threshold)
	each(func(k Key, v Counters) {
		r := m.row(&k)
		r.value.Add(v)
		r.err.Add(errEach)
		r.thresholdWherePresent.Add(threshold)
	})
}

// Table returns the merged table with every key seen (no truncation).
func (m *Merger) Table() *Table {
	out := &Table{Total: m.total, Threshold: m.sumThreshold, Entries: make([]Entry, len(m.rows))}
	for i := range m.rows {
		out.Entries[i] = m.entry(&m.rows[i])
	}
	return out
}

// entry is a merged row with its error: its own errors plus the threshold of
// every table it was missing from.
func (m *Merger) entry(r *mergeRow) Entry {
	e := Entry{Key: r.key, Value: r.value, Error: r.err}
	missing := m.sumThreshold
	missing.Sub(r.thresholdWherePresent)
	e.Error.Add(missing)
	return e
}

// Truncate keeps the union of the top k keys by each metric and raises the
// Threshold to cover the keys it drops (their value plus error). It sorts the
// kept entries by bytes, descending, with the key as a tie-breaker so the result
// is deterministic.
func (t *Table) Truncate(k int) {
	if k <= 0 || len(t.Entries) <= k {
		t.sortBy(Bytes)
		return
	}
	keep := make(map[Key]struct{}, 3*k)
	for _, m := range []Metric{Bytes, Packets, Flows} {
		t.sortBy(m)
		for i := 0; i < k; i++ {
			keep[t.Entries[i].Key] = struct{}{}
		}
	}
	// A fresh slice, so the dropped entries' array can be freed while the
	// kept ones wait for the store.
	kept := make([]Entry, 0, len(keep))
	for _, e := range t.Entries {
		if _, ok := keep[e.Key]; ok {
			kept = append(kept, e)
			continue
		}
		upper := e.Value
		upper.Add(e.Error)
		t.Threshold.Max(upper)
	}
	t.Entries = kept
	t.sortBy(Bytes)
}

func (t *Table) sortBy(m Metric) {
	slices.SortFunc(t.Entries, func(a, b Entry) int {
		va, vb := a.Value.Get(m), b.Value.Get(m)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return compareKeys(a.Key, b.Key)
	})
}

func compareKeys(a, b Key) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Top returns the n largest entries by metric m (n<=0: all) of the table,
// which is of dimension d, and "other": what the keys not listed hold,
// d.CountsPerFlow() × Total minus the rows, in every metric. The rows are lower
// bounds, so other is an upper bound, over by at most the rows' errors.
func (t *Table) Top(d Dim, n int, m Metric) (rows []Entry, other Counters) {
	t.sortBy(m)
	rows = t.Entries
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	other = t.Total.Times(d.CountsPerFlow())
	for i := range rows {
		// Sub stops at zero: a drill-down's total is a lower bound where the
		// minute's own table compacted its key, and its rows may then exceed it.
		other.Sub(rows[i].Value)
	}
	return rows, other
}

// Lookup returns the entry for key k and whether the table kept it.
func (t *Table) Lookup(k Key) (Entry, bool) {
	for i := range t.Entries {
		if t.Entries[i].Key == k {
			return t.Entries[i], true
		}
	}
	return Entry{}, false
}

// TopTable returns the n largest keys by metric by (n <= 0: all), with their
// error bounds, as a Table with the merged Total and Threshold. It selects with
// a heap instead of materializing and sorting every merged key: over 1,440
// minutes with a churning tail that is 720k keys to show ten.
func (m *Merger) TopTable(n int, by Metric) *Table {
	if n <= 0 || n >= len(m.rows) {
		t := m.Table()
		t.sortBy(by)
		return t
	}
	h := m.topRows(n, by)
	out := &Table{Total: m.total, Threshold: m.sumThreshold, Entries: make([]Entry, len(h))}
	for i, idx := range h {
		out.Entries[i] = m.entry(&m.rows[idx])
	}
	out.sortBy(by)
	return out
}

// topRows returns the indexes of the n rows largest by metric by, in no order
// (0 < n < len(m.rows)).
func (m *Merger) topRows(n int, by Metric) []int32 {
	// h is a min-heap of row indexes by (value, reversed key), so its root is
	// the weakest of the n best so far.
	h := make([]int32, 0, n)
	less := func(i, j int32) bool {
		vi, vj := m.rows[i].value.Get(by), m.rows[j].value.Get(by)
		if vi != vj {
			return vi < vj
		}
		return compareKeys(m.rows[i].key, m.rows[j].key) > 0
	}
	down := func(i int) {
		for {
			l, small := 2*i+1, i
			if l < len(h) && less(h[l], h[small]) {
				small = l
			}
			if r := l + 1; r < len(h) && less(h[r], h[small]) {
				small = r
			}
			if small == i {
				return
			}
			h[i], h[small] = h[small], h[i]
			i = small
		}
	}
	for i := range m.rows {
		idx := int32(i)
		if len(h) < n {
			h = append(h, idx)
			for c := len(h) - 1; c > 0; {
				p := (c - 1) / 2
				if !less(h[c], h[p]) {
					break
				}
				h[c], h[p] = h[p], h[c]
				c = p
			}
			continue
		}
		if less(h[0], idx) {
			h[0] = idx
			down(0)
		}
	}
	return h
}

// Truncated returns the merged table cut as Table().Truncate(k) cuts it, but
// selects the kept rows with a heap per metric instead of materializing and
// sorting every merged key: a minute's source addresses can be millions.
func (m *Merger) Truncated(k int) *Table {
	if k <= 0 || len(m.rows) <= k {
		t := m.Table()
		t.sortBy(Bytes)
		return t
	}
	keep := make([]bool, len(m.rows))
	n := 0
	for _, by := range []Metric{Bytes, Packets, Flows} {
		for _, i := range m.topRows(k, by) {
			if !keep[i] {
				keep[i] = true
				n++
			}
		}
	}
	out := &Table{Total: m.total, Threshold: m.sumThreshold, Entries: make([]Entry, 0, n)}
	for i := range m.rows {
		e := m.entry(&m.rows[i])
		if keep[i] {
			out.Entries = append(out.Entries, e)
			continue
		}
		upper := e.Value
		upper.Add(e.Error)
		out.Threshold.Max(upper)
	}
	out.sortBy(Bytes)
	return out
}
