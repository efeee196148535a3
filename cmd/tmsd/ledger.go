package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// The import ledger: what `tmsd import` wrote into a store, one metadata entry
// per capture file's contents ("import/" + hex SHA-256), so that a second import
// of the same capture is refused instead of doubling its traffic. A run is
// recorded as finished only after its minutes are in the store; before its
// first write reaches the store it is marked stored, so a run killed midway
// leaves an entry that says part of it may be there.

const (
	ledgerPrefix  = "import/"
	ledgerVersion = 1
)

// importEntry is every import of one file content.
type importEntry struct {
	V      int         `json:"v"`
	SHA256 string      `json:"sha256"`
	Size   int64       `json:"size"`
	Runs   []importRun `json:"runs"` // oldest first
}

// importRun is one import of the file.
type importRun struct {
	File      string           `json:"file"`                 // as named on the command line
	Started   time.Time        `json:"started"`              // wall clock
	Finished  time.Time        `json:"finished,omitzero"`    // zero: it did not finish (killed, or Failed)
	Failed    string           `json:"failed,omitempty"`     // why it stopped, when tmsd could tell
	Stored    bool             `json:"stored"`               // some of it may be in the store
	Forced    bool             `json:"forced,omitempty"`     // --force: the file had been imported before
	Datagrams uint64           `json:"datagrams"`            // flow export datagrams decoded
	NotExport uint64           `json:"not_export,omitempty"` // UDP datagrams that were not flow export
	Flows     uint64           `json:"flows"`
	Exporters []importExporter `json:"exporters,omitempty"`
}

// importExporter is the minutes a run wrote for one exporter.
type importExporter struct {
	Addr    netip.Addr `json:"addr"`
	First   time.Time  `json:"first"` // start of the first minute written
	Last    time.Time  `json:"last"`  // start of the last minute written
	Minutes int        `json:"minutes"`
}

func (r *importRun) done() bool { return !r.Finished.IsZero() }

// wrote reports whether a finished run put any minute in the store. One that
// did not (every flow older than the retention, or no flow at all) left nothing
// that a new import could double.
func (r *importRun) wrote() bool { return r.done() && len(r.Exporters) > 0 }

// prior is the run that a new import of the file would double: the last
// finished one that wrote minutes, or else the last that stopped after storing
// part of it; nil when no run stored anything.
func (e *importEntry) prior() *importRun {
	var stored *importRun
	for i := len(e.Runs) - 1; i >= 0; i-- {
		r := &e.Runs[i]
		if r.wrote() {
			return r
		}
		if r.done() {
			continue // finished without writing a minute
		}
		if r.Stored && stored == nil {
			stored = r
		}
	}
	return stored
}

// finished counts the runs that finished having written minutes: how many
// times the file's traffic is in the store.
func (e *importEntry) finished() int {
	n := 0
	for i := range e.Runs {
		if e.Runs[i].wrote() {
			n++
		}
	}
	return n
}

// ledger holds the store's import entries and taps the aggregator's writes:
// it marks the runs begun stored before the first write that follows, and
// notes which exporter minutes were written.
type ledger struct {
	aggregate.Store // the minute writer, tapped
	st              *store.Store

	mu       sync.Mutex
	entries  map[string]*importEntry // by digest
	unmarked []*importEntry          // begun in this command, not yet marked stored
	written  map[flow.Addr]map[int64]bool
}

func newLedger() *ledger {
	return &ledger{entries: map[string]*importEntry{}, written: map[flow.Addr]map[int64]bool{}}
}

// tap is newPipeline's hook.
func (l *ledger) tap(s aggregate.Store) aggregate.Store {
	l.Store = s
	return l
}

// load reads every entry of the store.
func (l *ledger) load(st *store.Store) error {
	l.st = st
	return st.Metas(ledgerPrefix, func(name string, v []byte) error {
		var e importEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("import ledger entry %q: %w", name, err)
		}
		if e.V != ledgerVersion {
			return fmt.Errorf("import ledger entry %q has version %d; this tmsd reads %d", name, e.V, ledgerVersion)
		}
		l.entries[e.SHA256] = &e
		return nil
	})
}

func (l *ledger) entry(sha string) *importEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[sha]
}

// save writes an entry; l.mu is held.
func (l *ledger) save(e *importEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := l.st.PutMeta(ledgerPrefix+e.SHA256, b); err != nil {
		return fmt.Errorf("import ledger: %w", err)
	}
	return nil
}

// begin records a new run of a file before anything of it is decoded. Runs
// that stopped before storing anything are dropped: they left nothing behind.
func (l *ledger) begin(sha string, size int64, run importRun) (*importEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entries[sha]
	if e == nil {
		e = &importEntry{V: ledgerVersion, SHA256: sha, Size: size}
		l.entries[sha] = e
	}
	e.Runs = slices.DeleteFunc(e.Runs, func(r importRun) bool { return !r.done() && !r.Stored })
	e.Runs = append(e.Runs, run)
	if err := l.save(e); err != nil {
		return nil, err
	}
	l.unmarked = append(l.unmarked, e)
	return e, nil
}

// finish updates the last run of e.
func (l *ledger) finish(e *importEntry, update func(r *importRun)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	update(&e.Runs[len(e.Runs)-1])
	return l.save(e)
}

// beforeWrite marks the runs begun as stored, durably, before the store gets
// what may be theirs.
func (l *ledger) beforeWrite() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.unmarked) > 0 {
		e := l.unmarked[0]
		e.Runs[len(e.Runs)-1].Stored = true
		if err := l.save(e); err != nil {
			return err
		}
		l.unmarked = l.unmarked[1:]
	}
	return nil
}

func (l *ledger) BeginFinal(ivs []store.Interval) error {
	if err := l.beforeWrite(); err != nil {
		return err
	}
	return l.Store.BeginFinal(ivs)
}

func (l *ledger) PutCheckpoints(cks []store.Checkpoint, pos []byte) error {
	if err := l.beforeWrite(); err != nil {
		return err
	}
	return l.Store.PutCheckpoints(cks, pos)
}

func (l *ledger) PutInterval(now time.Time, iv store.Interval) error {
	if err := l.beforeWrite(); err != nil {
		return err
	}
	err := l.Store.PutInterval(now, iv)
	if err == nil && iv.Tier == store.TierMinute && iv.Scope.Kind == topn.ScopeExporter {
		l.mu.Lock()
		m := l.written[iv.Scope.Exporter]
		if m == nil {
			m = map[int64]bool{}
			l.written[iv.Scope.Exporter] = m
		}
		m[iv.Start.Unix()] = true
		l.mu.Unlock()
	}
	return err
}

// coverage is the minutes of minutes (a file's flows, per exporter) that were
// written to the store.
func (l *ledger) coverage(minutes map[flow.Addr]map[int64]bool) []importExporter {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []importExporter
	for addr, ms := range minutes {
		x := importExporter{Addr: addr.Netip()}
		for m := range ms {
			if !l.written[addr][m] {
				continue
			}
			t := time.Unix(m, 0).UTC()
			if x.Minutes == 0 || t.Before(x.First) {
				x.First = t
			}
			if x.Minutes == 0 || t.After(x.Last) {
				x.Last = t
			}
			x.Minutes++
		}
		if x.Minutes > 0 {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b importExporter) int { return a.Addr.Compare(b.Addr) })
	return out
}

// overlaps returns the runs of other files that wrote minutes of the same
// exporters as cover, with the exporters and the span of minutes they share.
// Spans that only touch, one ending in the minute the other begins (captures
// rotated every hour), do not overlap.
func (l *ledger) overlaps(sha string, cover []importExporter) (runs []*importRun, addrs []netip.Addr, first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.SHA256 == sha {
			continue
		}
		for i := range e.Runs {
			r := &e.Runs[i]
			hit := false
			for _, a := range cover {
				for _, b := range r.Exporters {
					if a.Addr != b.Addr || !overlap(a, b) {
						continue
					}
					hit = true
					if !slices.Contains(addrs, a.Addr) {
						addrs = append(addrs, a.Addr)
					}
					lo, hi := later(a.First, b.First), earlier(a.Last, b.Last)
					if first.IsZero() || lo.Before(first) {
						first = lo
					}
					if hi.After(last) {
						last = hi
					}
				}
			}
			if hit {
				runs = append(runs, r)
			}
		}
	}
	slices.SortFunc(runs, func(a, b *importRun) int { return a.Started.Compare(b.Started) })
	slices.SortFunc(addrs, netip.Addr.Compare)
	return runs, addrs, first, last
}

// runs returns every run of every entry, oldest first, with its entry.
func (l *ledger) runs() []ledgerRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []ledgerRun
	for _, e := range l.entries {
		for i := range e.Runs {
			out = append(out, ledgerRun{e, &e.Runs[i]})
		}
	}
	slices.SortFunc(out, func(a, b ledgerRun) int {
		return cmp.Or(a.run.Started.Compare(b.run.Started), strings.Compare(a.entry.SHA256, b.entry.SHA256))
	})
	return out
}

type ledgerRun struct {
	entry *importEntry
	run   *importRun
}

// overlap reports whether two runs' minutes of an exporter overlap by more
// than a shared edge minute: a capture rotated at 10:00 ends and the next one
// begins with the 10:00 minute, and each holds its own part of it.
func overlap(a, b importExporter) bool {
	if a.Last.Before(b.First) || b.Last.Before(a.First) {
		return false
	}
	single := a.First.Equal(a.Last) && b.First.Equal(b.Last)
	return single || !(a.Last.Equal(b.First) || b.Last.Equal(a.First))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Formatting, shared by the import summary, its refusals and --list.

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func minuteStamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04Z") }

// minuteSpan is "minute T" or "minutes T–T".
func minuteSpan(first, last time.Time) string {
	if first.Equal(last) {
		return "minute " + minuteStamp(first)
	}
	a, b := minuteStamp(first), minuteStamp(last)
	if first.UTC().Format(time.DateOnly) == last.UTC().Format(time.DateOnly) {
		b = last.UTC().Format("15:04Z")
	}
	return "minutes " + a + "–" + b
}

func shortSHA(sha string) string { return sha[:min(12, len(sha))] }

// covered says what a run wrote: "33 datagrams, 980 flows; exporter
// 127.0.0.1, minute 2026-11-22T19:47Z".
func (r *importRun) covered() string {
	if !r.done() && r.Failed == "" {
		return "how much is not known" // killed: nothing was counted
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d datagrams, %d flows", r.Datagrams, r.Flows)
	switch n := len(r.Exporters); {
	case n == 0:
		b.WriteString("; no minute written")
	case n == 1:
		x := r.Exporters[0]
		fmt.Fprintf(&b, "; exporter %s, %s", x.Addr, minuteSpan(x.First, x.Last))
	default:
		fmt.Fprintf(&b, "; %d exporters:", n)
		for i, x := range r.Exporters {
			if i == 3 {
				fmt.Fprintf(&b, " and %d more", n-3)
				break
			}
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s %s", x.Addr, minuteSpan(x.First, x.Last))
		}
	}
	return b.String()
}

// state says how a run ended, for messages and --list.
func (r *importRun) state() string {
	switch {
	case r.done() && r.Forced:
		return "finished " + stamp(r.Finished) + ", forced"
	case r.done():
		return "finished " + stamp(r.Finished)
	case r.Failed != "":
		return "did not finish: " + r.Failed
	case r.Stored:
		return "did not finish (killed?) after storing part of it"
	}
	return "did not finish, stored nothing"
}
