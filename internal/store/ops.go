package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/tmsd/tmsd/internal/store/tablecodec"
	"github.com/tmsd/tmsd/internal/topn"
)

// Interval is one tier's interval worth of tables for one scope.
type Interval struct {
	Tier   Tier
	Start  time.Time // aligned to the tier's duration, UTC
	Scope  topn.Scope
	Total  topn.Counters            // exact totals for the scope and interval
	Tables map[topn.Dim]*topn.Table // per dimension; a missing (or nil) dim means none stored
}

// MaxMetaName is the longest metadata name.
const MaxMetaName = 256

// Put writes intervals in one batch. Each key expires when its interval is
// retention old: its TTL is retention - age, where age = now - (Start + tier
// duration), counted from the wall clock at the write. An interval already older
// than its retention is not written: Put writes the others, counts it in skipped
// and returns an error wrapping ErrBeyondRetention. Put replaces a stored interval:
// its totals, its tables, and it deletes the stored tables of dimensions the new
// interval lacks. An invalid interval (ErrInvalid) fails the whole call before any write.
// A large batch is committed in several transactions: after an error, part of it
// may be written, and retrying it is safe.
func (s *Store) Put(now time.Time, ivs []Interval) (written, skipped int, err error) {
	for i := range ivs {
		if err := checkInterval(&ivs[i]); err != nil {
			return 0, 0, fmt.Errorf("interval %d: %w", i, err)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, 0, ErrNotStarted
	}
	todo := make([]pending, 0, len(ivs))
	var beyond error
	for i := range ivs {
		p, err := s.prepare(now, &ivs[i])
		if err != nil {
			if skipped == 0 {
				beyond = err
			}
			skipped++
			continue
		}
		todo = append(todo, p)
	}
	if skipped > 1 {
		beyond = fmt.Errorf("%d of %d intervals skipped, first: %w", skipped, len(ivs), beyond)
	}
	if len(todo) == 0 {
		return 0, skipped, beyond
	}

	if err := s.checkSpace(); err != nil {
		return 0, skipped, s.wrote(err)
	}
	// Which intervals are rewrites: only those may have tables to delete.
	err = s.db.View(func(txn *badger.Txn) error {
		for i := range todo {
			existed, err := exists(txn, todo[i].totalsKey)
			if err != nil {
				return err
			}
			todo[i].existed = existed
		}
		return nil
	})
	if err != nil {
		return 0, skipped, s.wrote(fmt.Errorf("read before write: %w", err))
	}

	wb := s.db.NewWriteBatch()
	if err := fillBatch(wb, todo); err != nil {
		wb.Cancel()
		return 0, skipped, s.wrote(err)
	}
	if err := wb.Flush(); err != nil {
		return 0, skipped, s.wrote(fmt.Errorf("flush write batch: %w", err))
	}
	s.wrote(nil)
	s.writes.Add(float64(len(todo)))
	return len(todo), skipped, beyond
}

// PutInterval writes one interval like Put, but in one Badger transaction: after
// an error nothing of it is written, so a caller may keep serving it from memory
// until it is. An interval too big for one transaction (Badger's limit is 15% of
// the 16 MiB memtable: a scope's 11 tables of several thousand keys each) falls back
// to Put's batches, which may leave it half written on error.
func (s *Store) PutInterval(now time.Time, iv Interval) error {
	if err := checkInterval(&iv); err != nil {
		return err
	}
	err := s.putTxn(now, &iv)
	if errors.Is(err, badger.ErrTxnTooBig) {
		_, _, err = s.Put(now, []Interval{iv})
	}
	return err
}

func (s *Store) putTxn(now time.Time, iv *Interval) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrNotStarted
	}
	p, err := s.prepare(now, iv)
	if err != nil {
		return err
	}
	if err := s.checkSpace(); err != nil {
		return s.wrote(err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		existed, err := exists(txn, p.totalsKey)
		if err != nil {
			return err
		}
		p.existed = existed
		return fillBatch(txn, []pending{p})
	})
	if errors.Is(err, badger.ErrTxnTooBig) {
		return err // not a failure: the caller splits it
	}
	if err != nil {
		return s.wrote(fmt.Errorf("put %s interval at %s (scope %s): %w", iv.Tier, iv.Start.UTC().Format(time.RFC3339), iv.Scope, err))
	}
	s.wrote(nil)
	s.writes.Inc()
	return nil
}

// prepare computes an interval's totals key and expiry, or ErrBeyondRetention.
// The caller holds s.mu.
func (s *Store) prepare(now time.Time, iv *Interval) (pending, error) {
	retention := s.retention[iv.Tier]
	age := now.Sub(iv.Start.Add(iv.Tier.Duration()))
	if age >= retention {
		return pending{}, fmt.Errorf("%s interval at %s (scope %s) ended %s before now, retention %s: %w",
			iv.Tier, iv.Start.UTC().Format(time.RFC3339), iv.Scope, age, retention, ErrBeyondRetention)
	}
	// Round up so a key is never born expired.
	exp := s.now().Add(retention - age)
	expiresAt := exp.Unix()
	if exp.Nanosecond() > 0 {
		expiresAt++
	}
	return pending{
		iv:        iv,
		totalsKey: appendStart(totalsPrefix(iv.Tier, iv.Scope), uint64(iv.Start.Unix())),
		expiresAt: uint64(expiresAt),
	}, nil
}

func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, err
}

// pending is an interval Put writes.
type pending struct {
	iv        *Interval
	totalsKey []byte
	expiresAt uint64
	existed   bool // a rewrite: delete the tables of dimensions iv lacks
}

// writer is what fillBatch writes to: a WriteBatch or a transaction.
type writer interface {
	SetEntry(e *badger.Entry) error
	Delete(key []byte) error
}

func fillBatch(wb writer, todo []pending) error {
	for _, p := range todo {
		iv := p.iv
		err := wb.SetEntry(&badger.Entry{Key: p.totalsKey, Value: tablecodec.EncodeTotals(iv.Total), ExpiresAt: p.expiresAt})
		if err != nil {
			return fmt.Errorf("write totals: %w", err)
		}
		for _, dim := range topn.Dims {
			key := appendStart(tablePrefix(iv.Tier, iv.Scope, dim), uint64(iv.Start.Unix()))
			if t := iv.Tables[dim]; t != nil {
				err = wb.SetEntry(&badger.Entry{Key: key, Value: EncodeTable(t), ExpiresAt: p.expiresAt})
			} else if p.existed {
				err = wb.Delete(key)
			}
			if err != nil {
				return fmt.Errorf("write table %s: %w", dim, err)
			}
		}
	}
	return nil
}

// Get returns the stored table of one (tier, scope, dim, start); ok is false when absent.
func (s *Store) Get(tier Tier, scope topn.Scope, dim topn.Dim, start time.Time) (*topn.Table, bool, error) {
	if err := checkQuery(tier, scope, dim); err != nil {
		return nil, false, err
	}
	if err := checkStart(tier, start); err != nil {
		return nil, false, err
	}
	key := appendStart(tablePrefix(tier, scope, dim), uint64(start.Unix()))
	var t *topn.Table
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			t, err = DecodeTable(v)
			return err
		})
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get %s %s %s at %s: %w", tier, scope, dim, start.UTC().Format(time.RFC3339), err)
	}
	return t, true, nil
}

// Range calls fn for each stored table of (tier, scope, dim) with start in
// [from, to), in time order. The table is only valid until fn returns: Range
// decodes every interval into the same one (a day of K=1000 minutes would
// otherwise allocate 100 MB), so fn merges or copies what it keeps. An error from
// fn stops the scan and is returned as is.
func (s *Store) Range(tier Tier, scope topn.Scope, dim topn.Dim, from, to time.Time, fn func(start time.Time, t *topn.Table) error) error {
	if err := checkQuery(tier, scope, dim); err != nil {
		return err
	}
	var t topn.Table
	return s.scan(tablePrefix(tier, scope, dim), from, to, func(start time.Time, v []byte) error {
		if err := DecodeTableInto(&t, v); err != nil {
			return fmt.Errorf("table %s %s %s at %s: %w", tier, scope, dim, start.Format(time.RFC3339), err)
		}
		return fn(start, &t)
	})
}

// Totals calls fn for each stored total of (tier, scope) with start in [from, to),
// in time order. An error from fn stops the scan and is returned as is.
func (s *Store) Totals(tier Tier, scope topn.Scope, from, to time.Time, fn func(start time.Time, total topn.Counters) error) error {
	if err := checkQuery(tier, scope, topn.DimApp); err != nil {
		return err
	}
	return s.scan(totalsPrefix(tier, scope), from, to, func(start time.Time, v []byte) error {
		c, err := tablecodec.DecodeTotals(v)
		if err != nil {
			return fmt.Errorf("totals %s %s at %s: %w", tier, scope, start.Format(time.RFC3339), err)
		}
		return fn(start, c)
	})
}

// Bounds returns the first and last interval start stored for a tier in the
// global scope; ok is false when there is none.
func (s *Store) Bounds(tier Tier) (first, last time.Time, ok bool, err error) {
	if !tier.valid() {
		return first, last, false, fmt.Errorf("%w: tier %d", ErrInvalid, uint8(tier))
	}
	prefix := totalsPrefix(tier, topn.Scope{})
	err = s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		it.Seek(prefix)
		if !it.Valid() {
			it.Close()
			return nil
		}
		var err error
		first, err = startOf(it.Item().Key(), prefix)
		it.Close()
		if err != nil {
			return err
		}
		it = txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
		defer it.Close()
		it.Seek(append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
		if !it.Valid() { // expired between the two seeks
			return nil
		}
		last, err = startOf(it.Item().Key(), prefix)
		ok = err == nil
		return err
	})
	if err != nil {
		return time.Time{}, time.Time{}, false, fmt.Errorf("bounds of %s: %w", tier, err)
	}
	if !ok {
		return time.Time{}, time.Time{}, false, nil
	}
	return first, last, true, nil
}

// PutMeta stores a metadata value under name, without expiry. The metadata key
// space is for persisted templates, rollup progress and the like.
func (s *Store) PutMeta(name string, value []byte) error {
	if name == "" || len(name) > MaxMetaName {
		return fmt.Errorf("%w: metadata name must be 1 to %d bytes", ErrInvalid, MaxMetaName)
	}
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(name), bytes.Clone(value))
	})
	if err != nil {
		return fmt.Errorf("put meta %q: %w", name, err)
	}
	return nil
}

// GetMeta returns the metadata value stored under name; ok is false when absent.
func (s *Store) GetMeta(name string) ([]byte, bool, error) {
	if name == "" || len(name) > MaxMetaName {
		return nil, false, fmt.Errorf("%w: metadata name must be 1 to %d bytes", ErrInvalid, MaxMetaName)
	}
	var v []byte
	err := s.view(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey(name))
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get meta %q: %w", name, err)
	}
	return v, true, nil
}

// Metas calls fn with the name and value of every metadata entry whose name
// starts with prefix, in name order: a component keeping one entry per item
// (such as `tmsd import`'s ledger, "import/SHA256") lists them. The value is
// valid only during fn; an error from fn stops the scan and is returned.
func (s *Store) Metas(prefix string, fn func(name string, value []byte) error) error {
	if len(prefix) > MaxMetaName {
		return fmt.Errorf("%w: metadata prefix longer than %d bytes", ErrInvalid, MaxMetaName)
	}
	key := metaKey(prefix)
	err := s.view(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = key
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(key); it.ValidForPrefix(key); it.Next() {
			item := it.Item()
			name := string(item.Key()[len(key)-len(prefix):])
			if err := item.Value(func(v []byte) error { return fn(name, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("metadata %q…: %w", prefix, err)
	}
	return nil
}

// scan calls fn with the start and value of each key prefix|start, start in [from, to).
// The value is only valid during fn.
func (s *Store) scan(prefix []byte, from, to time.Time, fn func(start time.Time, v []byte) error) error {
	lo, hi := ceilSeconds(from), ceilSeconds(to)
	if lo >= hi {
		return nil
	}
	seek := appendStart(bytes.Clone(prefix), lo)
	end := appendStart(bytes.Clone(prefix), hi)
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(seek); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if bytes.Compare(key, end) >= 0 {
				return nil
			}
			start, err := startOf(key, prefix)
			if err != nil {
				return err
			}
			if err := item.Value(func(v []byte) error { return fn(start, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) view(fn func(*badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrNotStarted
	}
	return s.db.View(fn)
}

// update runs fn in a write transaction, if there is space, and records the outcome.
func (s *Store) update(fn func(*badger.Txn) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrNotStarted
	}
	if err := s.checkSpace(); err != nil {
		return s.wrote(err)
	}
	return s.wrote(s.db.Update(fn))
}

func checkInterval(iv *Interval) error {
	if err := checkQuery(iv.Tier, iv.Scope, topn.DimApp); err != nil {
		return err
	}
	if err := checkStart(iv.Tier, iv.Start); err != nil {
		return err
	}
	for dim := range iv.Tables {
		if !validDim(dim) {
			return fmt.Errorf("%w: dimension %d", ErrInvalid, uint8(dim))
		}
	}
	return nil
}

func checkQuery(tier Tier, scope topn.Scope, dim topn.Dim) error {
	if !tier.valid() {
		return fmt.Errorf("%w: tier %d", ErrInvalid, uint8(tier))
	}
	if !validDim(dim) {
		return fmt.Errorf("%w: dimension %d", ErrInvalid, uint8(dim))
	}
	// Scope.Bytes silently maps an unknown kind to the global scope: insist on a round trip.
	b := scope.Bytes()
	if got, n, err := topn.ParseScopeBytes(b); err != nil || n != len(b) || got != scope {
		return fmt.Errorf("%w: scope %+v", ErrInvalid, scope)
	}
	return nil
}

func validDim(d topn.Dim) bool { return d > 0 && int(d) < topn.NumDims }

func checkStart(tier Tier, start time.Time) error {
	sec := int64(tier.Duration() / time.Second)
	if start.Unix() < 0 || start.Nanosecond() != 0 || start.Unix()%sec != 0 {
		return fmt.Errorf("%w: start %s is not a %s boundary", ErrInvalid, start.UTC().Format(time.RFC3339Nano), tier)
	}
	return nil
}
