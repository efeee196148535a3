package rollup

import (
	"errors"
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/store"
)

// evictChunk is how much of a tier one delete takes from its oldest end.
func evictChunk(tier store.Tier) time.Duration {
	if tier == store.TierMinute {
		return time.Hour
	}
	return 24 * time.Hour
}

// MinMaxDisk is the smallest MaxDisk that works: the cap evicts down to 90 %
// of itself, which must stay above what Badger's working files may take
// (store.WorkingDisk), or a store that holds almost nothing evicts its tiers
// for room it cannot get back. Leave room above it for the history.
func MinMaxDisk() int64 {
	w := store.WorkingDisk()
	return (w*10 + 8) / 9
}

// enforceCap keeps the store under MaxDisk. Over it, it evicts the oldest
// intervals of the finest tier first (minutes, then hours, then days) until it
// has deleted what brings the store down to 90% of the cap, so it does not evict
// again at every pass. It evicts only data already rolled up into the next tier
// (minutes before the hour watermark, hours before the day watermark) and never
// the newest day: what it evicts lives on, coarser.
//
// The disk is measured as the blocks the store's files occupy
// (store.DiskUsage), not their length: Badger's value log and memtable logs
// are sparse files created at full length. Badger gives the space back only
// when compaction rewrites the tables that held the deleted keys, so the disk
// cannot be re-measured right after a delete: the amount to delete is counted
// in the deleted keys' and values' sizes before compression, which is more than
// the disk gets back (it errs on evicting too little), and the next measure
// waits Settle.
func (r *Rollup) enforceCap(now time.Time) error {
	if r.cfg.MaxDisk <= 0 || now.Before(r.settleUntil) {
		return nil
	}
	used, err := r.deps.Usage()
	if err != nil {
		return fmt.Errorf("disk cap: %w", err)
	}
	if used <= r.cfg.MaxDisk {
		return nil
	}
	need := used - r.cfg.MaxDisk/10*9
	var freed int64
	var errs []error
	for _, tier := range store.Tiers {
		if freed >= need {
			break
		}
		n, size, cut, err := r.evictTier(tier, need-freed)
		freed += size
		if n > 0 {
			r.logger.Info("disk cap: evicted the oldest data", "tier", tier.String(),
				"before", cut.Format(time.RFC3339), "intervals", n, "approx_bytes", size,
				"disk_bytes", used, "max_disk", r.cfg.MaxDisk)
		}
		if err != nil {
			errs = append(errs, err)
			break
		}
	}
	if freed > 0 {
		r.settleUntil = now.Add(r.cfg.Settle)
	}
	if freed < need && len(errs) == 0 {
		r.logError("disk cap exceeded with nothing left that may be evicted (only data not rolled up yet and the newest day remain)",
			fmt.Errorf("disk %d bytes, max_disk %d", used, r.cfg.MaxDisk))
	}
	return errors.Join(errs...)
}

// evictTier deletes tier's oldest intervals, a chunk at a time, until it has
// deleted need bytes or reached what must be kept. It returns the global-scope
// intervals and bytes deleted and where it cut.
func (r *Rollup) evictTier(tier store.Tier, need int64) (intervals int, size int64, cut time.Time, err error) {
	st := r.deps.Store
	for size < need {
		if r.stopping() {
			return intervals, size, cut, ErrStopped
		}
		first, last, ok, err := st.Bounds(tier)
		if err != nil || !ok {
			return intervals, size, cut, err
		}
		var limit time.Time
		switch tier {
		case store.TierMinute:
			limit = r.Rolled(store.TierHour)
		case store.TierHour:
			limit = r.Rolled(store.TierDay)
		default:
			limit = last // the newest day stays
		}
		if !first.Before(limit) {
			return intervals, size, cut, nil
		}
		chunk := evictChunk(tier)
		c := first.Truncate(chunk).Add(chunk)
		if c.After(limit) {
			c = limit
		}
		n, sz, err := st.DeleteBefore(tier, c)
		intervals, size, cut = intervals+n, size+sz, c
		r.metrics.evictedIntervals[tier].Add(float64(n))
		r.metrics.evictedBytes[tier].Add(float64(sz))
		if err != nil {
			return intervals, size, cut, fmt.Errorf("disk cap: %w", err)
		}
		r.mu.Lock()
		r.evicted[tier] = c
		err = st.PutMeta(evictedName(tier), encodeTime(c))
		r.mu.Unlock()
		if err != nil {
			return intervals, size, cut, fmt.Errorf("disk cap: %w", err)
		}
	}
	return intervals, size, cut, nil
}
