package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/tmsd/tmsd/internal/store/tablecodec"
	"github.com/tmsd/tmsd/internal/topn"
)

// Crash safety (docs/STORAGE.md, "Checkpoints and final writes"). The aggregator
// keeps its open minutes in memory and saves each one every few seconds as a
// checkpoint: an opaque value of its own, which replaces the previous checkpoint
// of that minute. The invariant is that what the store holds for a minute and
// that minute's checkpoint never overlap: the checkpoint holds only what is not
// written yet. So a minute's final write (merged with what was stored before) must
// remove the checkpoint atomically with the write. A minute's intervals do not fit
// in one Badger transaction (its limit is 15% of the memtable, 2.4 MiB; a minute
// with fifty exporters is ~600 tables), so the final write is redo-logged:
//
//  1. BeginFinal: one transaction writes the final intervals as one redo record
//     and deletes the checkpoint. Killed before: old intervals and checkpoint, as
//     if the close had not started. Killed after: the redo record has it all.
//  2. PutInterval for each interval, one transaction each. Put replaces, so
//     writing an interval twice is harmless.
//  3. EndFinal deletes the redo record.
//
// After a crash, Finals lists the redo records left, and the owner repeats 2 and 3.

// valueChunk bounds one Badger value of a checkpoint or a redo record. Values
// above 1 MiB go to the value log, whose entries must be smaller than its
// file (16 MiB, kept small so that a small store.max_disk works: WorkingDisk),
// and a minute at the default max_memory (2.8M keys) encodes to a ~45 MB
// checkpoint. A variable for tests.
var valueChunk = 8 << 20

// putChunked stores value under prefix in chunks of valueChunk, the keys
// prefix|index (uint16 BE), deleting what is left of an older, longer value
// and an unchunked one (the key prefix itself, as an older tmsd wrote redo
// records). The others are overwritten.
func putChunked(txn *badger.Txn, prefix, value []byte) error {
	n := max(1, (len(value)+valueChunk-1)/valueChunk)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	var stale [][]byte
	for it.Seek(prefix); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) == len(prefix) || (len(k) == len(prefix)+2 && int(binary.BigEndian.Uint16(k[len(prefix):])) >= n) {
			stale = append(stale, it.Item().KeyCopy(nil))
		}
	}
	it.Close()
	for _, k := range stale {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	for i := range n {
		chunk := value[min(i*valueChunk, len(value)):min((i+1)*valueChunk, len(value))]
		key := binary.BigEndian.AppendUint16(bytes.Clone(prefix), uint16(i))
		if err := txn.Set(key, chunk); err != nil {
			return err
		}
	}
	return nil
}

// deleteChunked deletes every key under prefix: the chunks of a value.
func deleteChunked(txn *badger.Txn, prefix []byte) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
	var keys [][]byte
	for it.Seek(prefix); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint is one minute's checkpoint value.
type Checkpoint struct {
	Start time.Time
	Value []byte
}

// A checkpoint pass (PutCheckpoints) replaces the checkpoints of several
// minutes at once, with the position of the feed they reflect (an
// aggregator's Kafka offsets): a restart sees every minute as of the same
// pass, never some minutes newer than the position stored. A pass's values
// do not fit in one transaction, so they are versioned: each is written
// under the pass's number, then one small transaction records the pass
// (number and position) and deletes the versions it replaced. A reader
// takes each minute's newest version not above the recorded pass; versions
// of a pass that was not recorded (killed midway) are ignored, and deleted by
// the next pass. Keys: checkpoint prefix | start | pass (8, BE) | chunk (2);
// a key without the pass (an older tmsd's) is pass 0.

// passKey holds the last recorded pass: its number (8, BE) and position.
var passKey = metaKey("checkpoint-pass")

func checkpointKey(start int64, pass uint64) []byte {
	return binary.BigEndian.AppendUint64(checkpointPrefix(start), pass)
}

// checkpointVersion reads a checkpoint key: its start and pass.
func checkpointVersion(k []byte) (start int64, pass uint64, err error) {
	base := len(checkpointPrefix(-1))
	switch len(k) {
	case base + startLen + 2:
	case base + startLen + 8 + 2:
		pass = binary.BigEndian.Uint64(k[base+startLen:])
	default:
		return 0, 0, fmt.Errorf("%w: checkpoint key %x", ErrCorrupt, k)
	}
	return int64(binary.BigEndian.Uint64(k[base:])), pass, nil
}

// recordedPass is the last recorded pass and its position.
func recordedPass(txn *badger.Txn) (uint64, []byte, error) {
	item, err := txn.Get(passKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, nil, err
	}
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("%w: checkpoint pass record of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

// PutCheckpoints replaces the checkpoints of cks' minutes, and records pos
// (opaque: the feed's position they reflect), as one pass: a restart sees
// all of them or none (then the previous pass, and its position).
func (s *Store) PutCheckpoints(cks []Checkpoint, pos []byte) error {
	for _, c := range cks {
		if err := checkStart(TierMinute, c.Start); err != nil {
			return err
		}
	}
	var pass uint64
	// The versions of an unrecorded pass go first: this pass may reuse
	// its number, and must not adopt the minutes it does not rewrite.
	err := s.update(func(txn *badger.Txn) error {
		last, _, err := recordedPass(txn)
		if err != nil {
			return err
		}
		pass = last + 1
		all := checkpointPrefix(-1)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: all, PrefetchValues: false})
		var stale [][]byte
		for it.Seek(all); it.Valid(); it.Next() {
			if _, p, err := checkpointVersion(it.Item().Key()); err == nil && p > last {
				stale = append(stale, it.Item().KeyCopy(nil))
			}
		}
		it.Close()
		for _, k := range stale {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint pass: %w", err)
	}
	for _, c := range cks {
		err := s.update(func(txn *badger.Txn) error { return putChunked(txn, checkpointKey(c.Start.Unix(), pass), c.Value) })
		if err != nil {
			return fmt.Errorf("put checkpoint of %s: %w", c.Start.UTC().Format(time.RFC3339), err)
		}
	}
	err = s.update(func(txn *badger.Txn) error {
		for _, c := range cks {
			prefix := checkpointPrefix(c.Start.Unix())
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
			var old [][]byte
			for it.Seek(prefix); it.Valid(); it.Next() {
				if _, p, err := checkpointVersion(it.Item().Key()); err != nil || p < pass {
					old = append(old, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
			for _, k := range old {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return txn.Set(passKey, append(binary.BigEndian.AppendUint64(nil, pass), pos...))
	})
	if err != nil {
		return fmt.Errorf("record checkpoint pass %d: %w", pass, err)
	}
	return nil
}

// PutCheckpoint replaces the checkpoint of the minute starting at start
// with value: a pass of one minute, keeping the recorded position.
func (s *Store) PutCheckpoint(start time.Time, value []byte) error {
	pos, err := s.CheckpointPosition()
	if err != nil {
		return err
	}
	return s.PutCheckpoints([]Checkpoint{{Start: start, Value: value}}, pos)
}

// CheckpointPosition is the position the last pass recorded (nil: none).
func (s *Store) CheckpointPosition() ([]byte, error) {
	var pos []byte
	err := s.view(func(txn *badger.Txn) error {
		var err error
		_, pos, err = recordedPass(txn)
		return err
	})
	return pos, err
}

// DeleteCheckpoint deletes the checkpoint of the minute starting at start
// (every version).
func (s *Store) DeleteCheckpoint(start time.Time) error {
	if err := checkStart(TierMinute, start); err != nil {
		return err
	}
	err := s.update(func(txn *badger.Txn) error { return deleteCheckpoint(txn, start.Unix()) })
	if err != nil {
		return fmt.Errorf("delete checkpoint of %s: %w", start.UTC().Format(time.RFC3339), err)
	}
	return nil
}

func deleteCheckpoint(txn *badger.Txn, start int64) error {
	return deleteChunked(txn, checkpointPrefix(start))
}

// Checkpoints calls fn with each checkpoint, oldest first, as of the last
// recorded pass. The value is only valid during fn. An error from fn stops
// the walk and is returned as is.
func (s *Store) Checkpoints(fn func(start time.Time, value []byte) error) error {
	all := checkpointPrefix(-1)
	return s.view(func(txn *badger.Txn) error {
		last, _, err := recordedPass(txn)
		if err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: all})
		defer it.Close()
		var (
			cur   int64 = -1
			ver   uint64
			value []byte
		)
		// Keys sort by start, then pass, then chunk: the newest version
		// not above last is the one whose chunks are gathered last.
		for it.Seek(all); ; it.Next() {
			start, pass := int64(-1), uint64(0)
			if it.Valid() {
				var err error
				if start, pass, err = checkpointVersion(it.Item().Key()); err != nil {
					return err
				}
			}
			if start != cur && cur >= 0 && value != nil {
				if err := fn(time.Unix(cur, 0).UTC(), value); err != nil {
					return err
				}
			}
			if !it.Valid() {
				return nil
			}
			if start != cur {
				cur, ver, value = start, pass, nil
			}
			if pass > last {
				continue // an unrecorded pass's
			}
			if pass != ver || value == nil {
				ver, value = pass, []byte{}
			}
			if err := it.Item().Value(func(v []byte) error { value = append(value, v...); return nil }); err != nil {
				return err
			}
		}
	})
}

// BeginFinal starts the final write of one minute's intervals (all of one tier
// and start): in one transaction it stores them as a redo record and deletes
// that minute's checkpoint. The caller then writes each with PutInterval and calls
// EndFinal. Nothing is written when it fails.
func (s *Store) BeginFinal(ivs []Interval) error {
	if len(ivs) == 0 {
		return fmt.Errorf("%w: no intervals", ErrInvalid)
	}
	tier, start := ivs[0].Tier, ivs[0].Start
	for i := range ivs {
		if err := checkInterval(&ivs[i]); err != nil {
			return err
		}
		if ivs[i].Tier != tier || !ivs[i].Start.Equal(start) {
			return fmt.Errorf("%w: a final write is of one tier and start", ErrInvalid)
		}
	}
	value := encodeFinal(ivs)
	err := s.update(func(txn *badger.Txn) error {
		if err := putChunked(txn, finalKey(tier, start.Unix()), value); err != nil {
			return err
		}
		if tier == TierMinute {
			return deleteCheckpoint(txn, start.Unix())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("begin final write of %s %s: %w", tier, start.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// EndFinal deletes the redo record of a final write whose intervals are all written.
func (s *Store) EndFinal(tier Tier, start time.Time) error {
	if err := checkStart(tier, start); err != nil {
		return err
	}
	err := s.update(func(txn *badger.Txn) error { return deleteChunked(txn, finalKey(tier, start.Unix())) })
	if err != nil {
		return fmt.Errorf("end final write of %s %s: %w", tier, start.UTC().Format(time.RFC3339), err)
	}
	return nil
}

// Finals calls fn with each final write that was begun and not ended: its intervals,
// or err (wrapping ErrCorrupt) when the record does not decode. A corrupt record
// stays until EndFinal deletes it. An error from fn stops the walk and is returned.
func (s *Store) Finals(fn func(tier Tier, start time.Time, ivs []Interval, err error) error) error {
	prefix := []byte{spaceFinal, keyVersion}
	record := len(prefix) + 1 + startLen // a record's key; its chunks' add the index
	return s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		var (
			cur   []byte // the record being read: its key
			value []byte
		)
		flush := func() error {
			if cur == nil {
				return nil
			}
			tier, start := Tier(cur[2]), time.Unix(int64(binary.BigEndian.Uint64(cur[3:])), 0).UTC()
			ivs, err := decodeFinal(value, tier, start)
			cur, value = nil, value[:0]
			return fn(tier, start, ivs, err)
		}
		for it.Seek(prefix); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != record && len(k) != record+2 {
				return fmt.Errorf("%w: final key %x", ErrCorrupt, k)
			}
			if cur != nil && !bytes.Equal(cur, k[:record]) {
				if err := flush(); err != nil {
					return err
				}
			}
			if cur == nil {
				cur = bytes.Clone(k[:record])
			}
			if err := it.Item().Value(func(v []byte) error { value = append(value, v...); return nil }); err != nil {
				return err
			}
		}
		return flush()
	})
}

// Redo record (the value of a final key):
//
//	0x01 | tier (1) | start (8, BE) | n (uvarint) | n × interval | crc32c (4, LE)
//	interval: scope (Scope.Bytes) | len (uvarint) | totals value | ntables (uvarint) |
//	          ntables × (dim (1) | len (uvarint) | table value)
//
// Totals and tables are the store's own value encodings (tablecodec), each with its CRC.
const finalFormatV1 = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func encodeFinal(ivs []Interval) []byte {
	b := []byte{finalFormatV1, byte(ivs[0].Tier)}
	b = appendStart(b, uint64(ivs[0].Start.Unix()))
	b = binary.AppendUvarint(b, uint64(len(ivs)))
	for i := range ivs {
		iv := &ivs[i]
		b = append(b, iv.Scope.Bytes()...)
		tot := tablecodec.EncodeTotals(iv.Total)
		b = binary.AppendUvarint(b, uint64(len(tot)))
		b = append(b, tot...)
		n := 0
		for _, d := range topn.Dims {
			if iv.Tables[d] != nil {
				n++
			}
		}
		b = binary.AppendUvarint(b, uint64(n))
		for _, d := range topn.Dims {
			t := iv.Tables[d]
			if t == nil {
				continue
			}
			tb := tablecodec.Encode(t)
			b = append(b, byte(d))
			b = binary.AppendUvarint(b, uint64(len(tb)))
			b = append(b, tb...)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeFinal(v []byte, tier Tier, start time.Time) ([]Interval, error) {
	corrupt := func(what string) error {
		return fmt.Errorf("%w: final record of %s %s: %s", ErrCorrupt, tier, start.Format(time.RFC3339), what)
	}
	if len(v) < 1+1+startLen+1+4 {
		return nil, corrupt("too short")
	}
	body := v[:len(v)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(v[len(body):]) {
		return nil, corrupt("checksum mismatch")
	}
	if body[0] != finalFormatV1 || Tier(body[1]) != tier || int64(binary.BigEndian.Uint64(body[2:])) != start.Unix() {
		return nil, corrupt("bad header")
	}
	b := body[2+startLen:]
	next := func() (uint64, bool) {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return x, true
	}
	bytesOf := func() ([]byte, bool) {
		n, ok := next()
		if !ok || n > uint64(len(b)) {
			return nil, false
		}
		out := b[:n]
		b = b[n:]
		return out, true
	}
	n, ok := next()
	if !ok || n > uint64(len(b)) {
		return nil, corrupt("bad interval count")
	}
	ivs := make([]Interval, 0, n)
	for range n {
		sc, used, err := topn.ParseScopeBytes(b)
		if err != nil {
			return nil, corrupt(err.Error())
		}
		b = b[used:]
		iv := Interval{Tier: tier, Start: start, Scope: sc, Tables: map[topn.Dim]*topn.Table{}}
		tot, ok := bytesOf()
		if !ok {
			return nil, corrupt("truncated totals")
		}
		if iv.Total, err = tablecodec.DecodeTotals(tot); err != nil {
			return nil, err
		}
		nt, ok := next()
		if !ok || nt > uint64(topn.NumDims) {
			return nil, corrupt("bad table count")
		}
		for range nt {
			if len(b) == 0 || !validDim(topn.Dim(b[0])) || iv.Tables[topn.Dim(b[0])] != nil {
				return nil, corrupt("bad dimension")
			}
			d := topn.Dim(b[0])
			b = b[1:]
			tv, ok := bytesOf()
			if !ok {
				return nil, corrupt("truncated table")
			}
			if iv.Tables[d], err = tablecodec.Decode(tv); err != nil {
				return nil, err
			}
		}
		ivs = append(ivs, iv)
	}
	if len(b) != 0 {
		return nil, corrupt("trailing bytes")
	}
	return ivs, nil
}
