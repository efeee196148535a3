package main

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"time"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// seedApps are the first application names of the seeded app tables; the
// rest are numbered, as user rules would name them.
var seedApps = []string{"https", "http", "dns", "quic", "ssh", "smtp", "imaps", "ntp", "ldap", "rdp", "mysql", "postgresql", "bgp", "snmp", "syslog"}

// seedAppCount is how many applications a seeded minute names: a real network
// sees hundreds, not K.
const seedAppCount = 300

// seedTotal is the exact total of every seeded minute: about a minute at 1M
// flows/s of 700-byte packets, more than its tables' entries (the rest is
// "other").
var seedTotal = topn.Counters{Bytes: 60e6 * 5 * 700, Packets: 60e6 * 5, Flows: 60e6}

// seedTable is one minute's srcip table of k keys: the first half are the
// same in every minute (the heavy hitters, 10.0.0.0/16), the second half the
// minute's own (a churning tail, 100.64.0.0/10 numbered from tail), with
// Zipf-like bytes. Its threshold is its smallest entry, as a minute that
// dropped keys records.
func seedSrcTable(k int, tail uint32) *topn.Table {
	t := &topn.Table{Total: seedTotal, Entries: make([]topn.Entry, 0, k)}
	for i := 0; i < k; i++ {
		var a flow.Addr // IPv4-mapped
		a[10], a[11] = 0xff, 0xff
		if i < k/2 {
			binary.BigEndian.PutUint32(a[12:], 10<<24|uint32(i))
		} else {
			binary.BigEndian.PutUint32(a[12:], 100<<24|64<<16|(tail+uint32(i))%(1<<22))
		}
		t.Entries = append(t.Entries, topn.Entry{Key: topn.AddrKey(a), Value: seedValue(i)})
	}
	t.Threshold = t.Entries[len(t.Entries)-1].Value
	return t
}

// seedAppTable is one minute's app table: seedAppCount applications (at most k).
func seedAppTable(k int) *topn.Table {
	n := min(k, seedAppCount)
	t := &topn.Table{Total: seedTotal, Entries: make([]topn.Entry, 0, n)}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("svc-%d", i)
		if i < len(seedApps) {
			name = seedApps[i]
		}
		t.Entries = append(t.Entries, topn.Entry{Key: topn.AppKey(name), Value: seedValue(i)})
	}
	return t
}

// seedValue is the counters of the i-th key: bytes falling as 1/(i+1), so the
// entries of a table add up to well under seedTotal.
func seedValue(i int) topn.Counters {
	return topn.Counters{Bytes: uint64(3e10 / (i + 1)), Packets: uint64(4e7 / (i + 1)), Flows: uint64(1e6/(i+1)) + 1}
}

// seedStore writes minutes minute tables starting at first (a minute
// boundary) into a tmsd data directory at path, through internal/store as
// tmsd's aggregator would: srcip tables of k keys and app tables, each minute
// with the exact total seedTotal. tmsd must not be running on path.
func seedStore(path string, first time.Time, minutes, k int) error {
	cfg := store.DefaultConfiguration()
	cfg.Path = path
	st, err := store.New(cfg, store.Dependencies{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	if err := st.Start(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	app := seedAppTable(k)
	// One hour per batch: a day in one batch would hold ~100 MB of tables.
	for m := 0; m < minutes; m += 60 {
		var ivs []store.Interval
		for i := m; i < min(m+60, minutes); i++ {
			start := first.Add(time.Duration(i) * time.Minute)
			ivs = append(ivs, store.Interval{Tier: store.TierMinute, Start: start, Total: seedTotal,
				Tables: map[topn.Dim]*topn.Table{
					topn.DimSrcIP: seedSrcTable(k, uint32(start.Unix()/60)*uint32(k)),
					topn.DimApp:   app,
				}})
		}
		if _, _, err := st.Put(time.Now(), ivs); err != nil {
			st.Stop()
			return fmt.Errorf("seed: %w", err)
		}
	}
	if err := st.Stop(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}
