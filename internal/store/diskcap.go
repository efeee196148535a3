package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/tmsd/tmsd/internal/topn"
)

// DiskUsage returns the bytes Badger's files take (LSM tables and value log), as
// Badger last measured them: it refreshes the figure about once a minute, and
// space freed by deletes and expiry comes back only when compaction rewrites
// the tables that held them. 0 for an in-memory store.
func (s *Store) DiskUsage() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, ErrNotStarted
	}
	lsm, vlog := s.db.Size()
	return lsm + vlog, nil
}

// DeleteBefore deletes every interval of tier that starts before before: its
// tables of every scope and dimension and its totals. It returns how many
// intervals of the global scope it deleted (every interval has one) and the
// approximate bytes of the keys and values deleted, uncompressed: what the disk
// gets back after compaction is smaller (values are ZSTD-compressed on disk).
// The disk cap evicts with it; retention does not need it (keys have TTLs).
func (s *Store) DeleteBefore(tier Tier, before time.Time) (intervals int, size int64, err error) {
	if !tier.valid() {
		return 0, 0, fmt.Errorf("%w: tier %d", ErrInvalid, uint8(tier))
	}
	hi := ceilSeconds(before)
	if hi == 0 {
		return 0, 0, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, 0, ErrNotStarted
	}
	globalTotals := totalsPrefix(tier, topn.Scope{})
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, space := range []byte{spaceTable, spaceTotals} {
		prefix := []byte{space, keyVersion, byte(tier)}
		err := s.db.View(func(txn *badger.Txn) error {
			return eachSeriesTxn(txn, prefix, 0, func(series []byte, start uint64, item *badger.Item) (bool, error) {
				if start >= hi {
					return false, nil
				}
				if space == spaceTotals && bytes.Equal(series, globalTotals) {
					intervals++
				}
				size += item.EstimatedSize()
				return true, wb.Delete(item.KeyCopy(nil))
			})
		})
		if err != nil {
			s.writeErrors.Inc()
			return 0, 0, fmt.Errorf("delete %s before %s: %w", tier, before.UTC().Format(time.RFC3339), err)
		}
	}
	if err := wb.Flush(); err != nil {
		s.writeErrors.Inc()
		return 0, 0, fmt.Errorf("delete %s before %s: %w", tier, before.UTC().Format(time.RFC3339), err)
	}
	return intervals, size, nil
}
