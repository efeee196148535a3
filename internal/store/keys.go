package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tmsd/tmsd/internal/topn"
)

// Key schema (docs/STORAGE.md has the diagrams). Every key starts with a space
// byte and the schema version, so a new schema can live beside the old one:
//
//	table:  'T' | 0x01 | tier | scope (Scope.Bytes) | dim | start (8, BE unix seconds)
//	totals: 'S' | 0x01 | tier | scope (Scope.Bytes) | start (8, BE unix seconds)
//	meta:   'M' | 0x01 | name (UTF-8, no terminator)
//	checkpoint: 'C' | 0x01 | start (8, BE unix seconds) | pass (8, BE) | chunk (2, BE)
//	final:  'F' | 0x01 | tier | start (8, BE unix seconds)
//	event:  'E' | 0x01 | at (8, BE unix seconds) | seq (8, BE)
//
// Scope bytes are self-delimiting (their first byte is the kind, which fixes the
// length), so the prefix up to dim names exactly one (tier, scope, dim) and the
// big-endian start makes its keys sort in time order: Range is one forward scan.
const (
	spaceTable  = 'T'
	spaceTotals = 'S'
	spaceMeta   = 'M'
	// checkpoints of open minutes and the redo records of final writes (checkpoint.go)
	spaceCheckpoint = 'C'
	spaceFinal      = 'F'
	// the alert event log (events.go)
	spaceEvent = 'E'

	keyVersion = 1

	startLen = 8
)

func appendStart(dst []byte, sec uint64) []byte { return binary.BigEndian.AppendUint64(dst, sec) }

// tablePrefix is the key prefix of every table of (tier, scope, dim).
func tablePrefix(tier Tier, scope topn.Scope, dim topn.Dim) []byte {
	sb := scope.Bytes()
	b := make([]byte, 0, 3+len(sb)+1+startLen)
	b = append(b, spaceTable, keyVersion, byte(tier))
	b = append(b, sb...)
	return append(b, byte(dim))
}

// totalsPrefix is the key prefix of every total of (tier, scope).
func totalsPrefix(tier Tier, scope topn.Scope) []byte {
	sb := scope.Bytes()
	b := make([]byte, 0, 3+len(sb)+startLen)
	b = append(b, spaceTotals, keyVersion, byte(tier))
	return append(b, sb...)
}

// checkpointPrefix is the prefix of every chunk of the checkpoint of start
// (or, with start < 0, of every checkpoint).
func checkpointPrefix(start int64) []byte {
	b := []byte{spaceCheckpoint, keyVersion}
	if start < 0 {
		return b
	}
	return appendStart(b, uint64(start))
}

func finalKey(tier Tier, start int64) []byte {
	return appendStart([]byte{spaceFinal, keyVersion, byte(tier)}, uint64(start))
}

func metaKey(name string) []byte {
	return append([]byte{spaceMeta, keyVersion}, name...)
}

// startOf parses the interval start at the end of a table or totals key.
func startOf(key, prefix []byte) (time.Time, error) {
	if len(key) != len(prefix)+startLen {
		return time.Time{}, fmt.Errorf("%w: key %x has %d bytes, want %d", ErrCorrupt, key, len(key), len(prefix)+startLen)
	}
	return time.Unix(int64(binary.BigEndian.Uint64(key[len(prefix):])), 0).UTC(), nil
}

// seconds bounds for [from, to): the first whole second >= t (and never before
// the epoch, which keys cannot hold).
func ceilSeconds(t time.Time) uint64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	if s < 0 {
		return 0
	}
	return uint64(s)
}
