package store

import (
	"github.com/tmsd/tmsd/internal/store/tablecodec"
	"github.com/tmsd/tmsd/internal/topn"
)

// Values are encoded by package tablecodec (docs/STORAGE.md, "Values"). It is a separate
// package so that its users (checkpoints) and its fuzz test do not link Badger.

// EncodeTable returns the stored encoding of t.
func EncodeTable(t *topn.Table) []byte { return tablecodec.Encode(t) }

// AppendTable appends the stored encoding of t to dst.
func AppendTable(dst []byte, t *topn.Table) []byte { return tablecodec.Append(dst, t) }

// DecodeTable decodes a stored table; malformed input gives an error wrapping ErrCorrupt.
func DecodeTable(b []byte) (*topn.Table, error) { return tablecodec.Decode(b) }

// DecodeTableInto is DecodeTable into t, reusing the capacity of t.Entries.
func DecodeTableInto(t *topn.Table, b []byte) error { return tablecodec.DecodeInto(t, b) }
