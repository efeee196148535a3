package rollup

import (
	"time"

	"github.com/tmsd/tmsd/internal/store"
)

// Writer is the store as the aggregator writes minutes into it. It notes every
// minute written into an hour already rolled up (a flow later than the delay, a
// `tmsd import` of an older capture, a final write replayed after a crash) or
// being rolled up, and lowers the watermarks so that hour and its day are rolled
// up again: a rolled-up hour never silently misses minutes the minute tier has.
// Every other method is the store's.
type Writer struct {
	*store.Store
	r *Rollup
}

// MinuteWriter returns the Writer the aggregator must write through.
func (r *Rollup) MinuteWriter() *Writer { return &Writer{Store: r.deps.Store, r: r} }

// PutInterval writes through to the store, then notes the minute written.
func (w *Writer) PutInterval(now time.Time, iv store.Interval) error {
	err := w.Store.PutInterval(now, iv)
	if iv.Tier == store.TierMinute {
		w.r.noteMinute(iv.Start)
	}
	return err
}

// Put writes through to the store, then notes the earliest minute written.
func (w *Writer) Put(now time.Time, ivs []store.Interval) (int, int, error) {
	written, skipped, err := w.Store.Put(now, ivs)
	var earliest time.Time
	for i := range ivs {
		if ivs[i].Tier == store.TierMinute && (earliest.IsZero() || ivs[i].Start.Before(earliest)) {
			earliest = ivs[i].Start
		}
	}
	if !earliest.IsZero() {
		w.r.noteMinute(earliest)
	}
	return written, skipped, err
}

// noteMinute handles a minute written at start (the earliest of a batch).
func (r *Rollup) noteMinute(start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	hour := start.Truncate(time.Hour)
	if r.rolling.tier == store.TierHour && hour.Equal(r.rolling.start) {
		r.rolling.dirty = true
	}
	if r.mark[store.TierHour].IsZero() || !hour.Before(r.mark[store.TierHour]) {
		return
	}
	// Rolling up an hour again rewrites it from the minutes the store has now:
	// not below the first hour whose minutes are all still there (expired or
	// evicted minutes would be lost from it).
	if floor := r.rerollFloor(store.TierHour); hour.Before(floor) {
		if now := time.Now(); now.Sub(r.floorWarned) >= time.Minute {
			r.floorWarned = now
			r.logger.Warn("minutes written into an hour whose other minutes are gone: the hour tier keeps its earlier figures for it",
				"minute", start.UTC().Format(time.RFC3339), "first_hour_rolled_again", floor.Format(time.RFC3339))
		}
		hour = floor
	}
	if !hour.Before(r.mark[store.TierHour]) {
		return
	}
	if err := r.setMark(store.TierHour, hour); err != nil {
		r.logger.Warn("could not lower the hour watermark", "err", err)
		return
	}
	day := hour.Truncate(24 * time.Hour)
	if floor := r.rerollFloor(store.TierDay); day.Before(floor) {
		day = floor
	}
	if !r.mark[store.TierDay].IsZero() && day.Before(r.mark[store.TierDay]) {
		if err := r.setMark(store.TierDay, day); err != nil {
			r.logger.Warn("could not lower the day watermark", "err", err)
		}
	}
}

// rerollFloor is the first interval of tier whose source intervals are all
// still stored: after the last one the disk cap evicted, and after those the
// retention expired (retention is wall-clock time, as the store's TTLs are).
// Called with mu held.
func (r *Rollup) rerollFloor(tier store.Tier) time.Time {
	d, src := tier.Duration(), source(tier)
	floor := ceilTo(r.evicted[src], d)
	expired := time.Now().Add(-r.deps.Store.Retention(src) - src.Duration())
	if f := expired.Truncate(d).Add(d); f.After(floor) {
		floor = f
	}
	return floor
}

// ceilTo rounds t up to a multiple of d (the zero time stays zero).
func ceilTo(t time.Time, d time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	if f := t.Truncate(d); !f.Equal(t) {
		return f.Add(d)
	}
	return t
}
