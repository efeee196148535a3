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
//   - Total is exact: all traffic of the interval and scope, kept or not.
//   - Entries are the kept keys; each is under-counted by at most its Error.
//   - Threshold bounds, per metric, the true amount of any key not in Entries.
//
// So the remainder ("other") is Total minus the entries, and totals always add up.
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
	index        map[Key]int32
	rows         []mergeRow
}

type mergeRow struct {
	key                               Key
	value, err, thresholdWherePresent Counters
}

// NewMerger returns an empty merger sized for about n keys.
func NewMerger(n int) *Merger {
	return &Merger{index: make(map[Key]int32, n), rows: make([]mergeRow, 0, n)}
}

// Add merges one table.
func (m *Merger) Add(t *Table) {
	m.total.Add(t.Total)
	m.sumThreshold.Add(t.Threshold)
	for i := range t.Entries {
		e := &t.Entries[i]
		j, ok := m.index[e.Key]
		if !ok {
			j = int32(len(m.rows))
			m.index[e.Key] = j
			m.rows = append(m.rows, mergeRow{key: e.Key})
		}
		r := &m.rows[j]
		r.value.Add(e.Value)
		r.err.Add(e.Error)
		r.thresholdWherePresent.Add(t.Threshold)
	}
}

// Len is the number of distinct keys merged so far.
func (m *Merger) Len() int { return len(m.rows) }

// Table returns the merged table with every key seen (no truncation).
func (m *Merger) Table() *Table {
	out := &Table{Total: m.total, Threshold: m.sumThreshold, Entries: make([]Entry, len(m.rows))}
	for i := range m.rows {
		r := &m.rows[i]
		e := Entry{Key: r.key, Value: r.value, Error: r.err}
		missing := m.sumThreshold
		missing.Sub(r.thresholdWherePresent)
		e.Error.Add(missing)
		out.Entries[i] = e
	}
	return out
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
	kept := t.Entries[:0]
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

// Top returns the n largest entries by metric m (n<=0: all), and the remainder
// of the total they leave.
func (t *Table) Top(n int, m Metric) (rows []Entry, other Counters) {
	t.sortBy(m)
	rows = t.Entries
	if n > 0 && len(rows) > n {
		rows = rows[:n]
	}
	other = t.Total
	for i := range rows {
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
