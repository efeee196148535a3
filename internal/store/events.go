package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The event log holds alert events (internal/alerts) under the minute they
// are about, in time order: a range is one forward scan, and retention one
// deletion of a prefix range. The seq after the time makes two events of one
// minute two keys; it starts from the wall clock in nanoseconds, so that a
// restarted process does not reuse a previous one's.

var eventSeq atomic.Uint64

func init() { eventSeq.Store(uint64(time.Now().UnixNano())) }

func eventPrefix() []byte { return []byte{spaceEvent, keyVersion} }

// PutEvent appends one event's encoding to the log under at.
func (s *Store) PutEvent(at time.Time, value []byte) error {
	key := appendStart(eventPrefix(), uint64(max(at.Unix(), 0)))
	key = binary.BigEndian.AppendUint64(key, eventSeq.Add(1))
	if err := s.update(func(txn *badger.Txn) error { return txn.Set(key, bytes.Clone(value)) }); err != nil {
		return fmt.Errorf("put event: %w", err)
	}
	return nil
}

// Events calls fn with every event whose time is in [from, to), in time
// order (and in the order they were put within a second). The value is valid
// only during fn; an error from fn stops the scan and is returned.
func (s *Store) Events(from, to time.Time, fn func(at time.Time, value []byte) error) error {
	p := eventPrefix()
	seek, end := appendStart(eventPrefix(), ceilSeconds(from)), appendStart(eventPrefix(), ceilSeconds(to))
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Seek(seek); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if bytes.Compare(key, end) >= 0 {
				return nil
			}
			if len(key) != len(p)+startLen+8 {
				return fmt.Errorf("%w: event key %x has %d bytes", ErrCorrupt, key, len(key))
			}
			at := time.Unix(int64(binary.BigEndian.Uint64(key[len(p):])), 0).UTC()
			if err := item.Value(func(v []byte) error { return fn(at, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}

// DeleteEventsBefore drops the events of times before t (their retention)
// and says how many.
func (s *Store) DeleteEventsBefore(t time.Time) (int, error) {
	p := eventPrefix()
	end := appendStart(eventPrefix(), ceilSeconds(t))
	var keys [][]byte
	err := s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Seek(p); it.Valid() && bytes.Compare(it.Item().Key(), end) < 0; it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	// Deletions write nothing of substance: they bypass the free-space
	// guard, which would otherwise keep a full disk full.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return 0, ErrNotStarted
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, fmt.Errorf("delete events: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("delete events: %w", err)
	}
	return len(keys), nil
}
