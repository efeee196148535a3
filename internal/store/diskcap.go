package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/tmsd/tmsd/internal/topn"
)

// DiskUsage returns the bytes the store's files occupy on disk now: the
// blocks allocated to each file of the data directory (st_blocks × 512).
// Badger creates its value log file (2 × ValueLogFileSize) and its memtable
// logs (2 × MemTableSize) as sparse files of their full length and fills
// them as it writes: their length, which Badger's own Size and `ls` report,
// is mostly preallocation that takes no disk (a fresh store: 49 MiB long,
// 24 KiB allocated; 288 MiB long with the earlier options). Space freed by deletes and expiry comes back only when
// compaction rewrites the tables that held them. 0 for an in-memory store.
func (s *Store) DiskUsage() (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, ErrNotStarted
	}
	if s.cfg.InMemory {
		return 0, nil
	}
	return allocated(s.cfg.Path)
}

// allocated sums the blocks allocated to the files of dir (not recursing:
// Badger keeps its files flat). A file removed while it walks (compaction
// deletes tables) is skipped.
func allocated(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("disk usage: %w", err)
	}
	var total int64
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("disk usage: %w", err)
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += int64(st.Blocks) * 512
		} else {
			total += info.Size()
		}
	}
	return total, nil
}

// WorkingDisk is the most Badger's working files may occupy whatever the
// history holds, the floor under a disk cap (rollup.MinMaxDisk): the memtable
// logs (the one written, NumMemtables queued to flush and the one flushing,
// each rotated once it passes MemTableSize, by at most one batch: 15 %), the
// level-0 tables they flush to until compaction merges them
// (NumLevelZeroTables, at most a memtable each: ZSTD halves them in practice),
// the value log file written (ValueLogFileSize, passed by at most the
// transaction that fills it: a value chunk), and the 1 MiB DISCARD file.
// Value log files already rotated hold checkpoints and redo records over
// 1 MiB (minutes of many keys) until compaction and the value log GC reclaim
// them: more traffic, more of them (docs/STORAGE.md).
func WorkingDisk() int64 {
	o := badgerOptions(DefaultConfiguration(), nil)
	memtables := (int64(o.NumMemtables) + 2) * o.MemTableSize * 115 / 100
	level0 := int64(o.NumLevelZeroTables) * o.MemTableSize
	vlog := o.ValueLogFileSize + int64(valueChunk)
	return memtables + level0 + vlog + 1<<20
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
