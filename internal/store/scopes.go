package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/tmsd/tmsd/internal/topn"
)

// ScopeDims is a scope with the dimensions it has tables for.
type ScopeDims struct {
	Scope topn.Scope
	Dims  []topn.Dim
}

// Scopes lists the scopes of tier that have at least one table with a start in
// [from, to), each with the dimensions that have one, in key order (the global
// scope first). Rollups use it to learn what to roll up without a fixed list of
// scopes: whatever the aggregator wrote is what gets rolled up.
//
// It is a skip scan over the keys only: one or two seeks per (scope, dim)
// series, never a read of every key in the range.
func (s *Store) Scopes(tier Tier, from, to time.Time) ([]ScopeDims, error) {
	if !tier.valid() {
		return nil, fmt.Errorf("%w: tier %d", ErrInvalid, uint8(tier))
	}
	lo, hi := ceilSeconds(from), ceilSeconds(to)
	if lo >= hi {
		return nil, nil
	}
	var out []ScopeDims
	prefix := []byte{spaceTable, keyVersion, byte(tier)}
	err := s.eachSeries(prefix, lo, func(series []byte, start uint64, _ *badger.Item) (bool, error) {
		if start >= hi {
			return false, nil
		}
		sc, n, err := topn.ParseScopeBytes(series[len(prefix):])
		if err != nil || len(series) != len(prefix)+n+1 {
			return false, fmt.Errorf("%w: table key prefix %x: %v", ErrCorrupt, series, err)
		}
		d := topn.Dim(series[len(series)-1])
		if len(out) == 0 || out[len(out)-1].Scope != sc {
			out = append(out, ScopeDims{Scope: sc})
		}
		last := &out[len(out)-1]
		last.Dims = append(last.Dims, d)
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("scopes of %s: %w", tier, err)
	}
	return out, nil
}

// eachSeries walks the keys under prefix (table or totals keys of one tier)
// series by series, a series being a key without its 8-byte start. In each
// series it seeks to the first key with start >= lo and calls fn with the series,
// the start and the item (keys only: no value is read). fn returns true to be
// called with the series' next key, false to skip to the next series.
func (s *Store) eachSeries(prefix []byte, lo uint64, fn func(series []byte, start uint64, item *badger.Item) (bool, error)) error {
	return s.view(func(txn *badger.Txn) error { return eachSeriesTxn(txn, prefix, lo, fn) })
}

func eachSeriesTxn(txn *badger.Txn, prefix []byte, lo uint64, fn func(series []byte, start uint64, item *badger.Item) (bool, error)) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	defer it.Close()
	seek := make([]byte, 0, 64)
	for it.Seek(prefix); it.Valid(); {
		item := it.Item()
		key := item.Key()
		if len(key) < len(prefix)+startLen {
			return fmt.Errorf("%w: short key %x", ErrCorrupt, key)
		}
		series := key[:len(key)-startLen]
		sec := binary.BigEndian.Uint64(key[len(series):])
		if sec < lo {
			seek = appendStart(append(seek[:0], series...), lo)
			it.Seek(seek)
			continue
		}
		more, err := fn(series, sec, item)
		if err != nil {
			return err
		}
		if more {
			it.Next()
			continue
		}
		// Past the last key the series can have.
		seek = append(append(seek[:0], series...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		it.Seek(seek)
	}
	return nil
}
