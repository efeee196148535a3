package decode

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Data that arrives before its template (after a restart without saved
// state, after a template expired, or when an exporter sends data first) is
// held per exporter rather than lost: a copy of its data sets waits, bounded
// in datagrams, bytes and time, for a datagram that adds a template. Nothing
// here runs for a datagram whose templates are all known.

// holdSet keeps a copy of a data set whose template is unknown, for finish
// to hold; false when it cannot be held (holding disabled or full).
func (dg *datagram) holdSet(h *nfHeader, id uint16, set []byte) bool {
	l := dg.e.limits
	size := setHeaderLength + len(set)
	switch {
	case l.holdDatagrams == 0,
		len(dg.e.held) >= l.holdDatagrams,
		dg.e.heldBytes+len(dg.pending)+size > l.holdBytes:
		return false
	}
	if dg.pending == nil {
		dg.pendingHeader = *h
	}
	dg.pending = binary.BigEndian.AppendUint16(dg.pending, id)
	dg.pending = binary.BigEndian.AppendUint16(dg.pending, uint16(size))
	dg.pending = append(dg.pending, set...)
	return true
}

// release decodes the held data that a template just added makes
// decodable: the datagram's own earlier data sets, then the held datagrams,
// oldest first. It runs right after the template set, so held options data
// (sampling rates) applies to the data sets that follow in the datagram.
func (dg *datagram) release() {
	dg.newTemplate = false
	if len(dg.pending) > 0 {
		// Data before its template in the same datagram is not held at all.
		own := heldDatagram{h: dg.pendingHeader, received: dg.received, sets: dg.pending}
		dg.releaseOne(&own)
		dg.pending = own.sets
	}
	e := dg.e
	if len(e.held) == 0 {
		return
	}
	kept := e.held[:0]
	for i := range e.held {
		e.heldBytes -= dg.releaseOne(&e.held[i])
		if len(e.held[i].sets) == 0 {
			e.released++
			continue
		}
		kept = append(kept, e.held[i])
	}
	clear(e.held[len(kept):])
	e.held = kept
}

// finish holds what is left of the datagram's data sets with no template.
func (dg *datagram) finish() {
	if len(dg.pending) == 0 {
		return
	}
	// holdSet checked the room, and release only frees some.
	e := dg.e
	e.held = append(e.held, heldDatagram{h: dg.pendingHeader, received: dg.received, sets: dg.pending})
	e.heldBytes += len(dg.pending)
	e.heldCount++
}

// releaseOne decodes the held data sets whose template is now known and
// keeps the others in hd; it returns the bytes it freed. The records get the
// held datagram's receive time and their own record limit.
func (dg *datagram) releaseOne(hd *heldDatagram) (freed int) {
	received, records := dg.received, dg.records
	dg.received, dg.records = hd.received, 0
	defer func() { dg.received, dg.records = received, records }()

	sets, kept := hd.sets, hd.sets[:0] // compacted in place: kept never overtakes sets
	for len(sets) >= setHeaderLength {
		id := binary.BigEndian.Uint16(sets)
		length := int(binary.BigEndian.Uint16(sets[2:]))
		if length < setHeaderLength || length > len(sets) {
			break // cannot happen: holdSet wrote them
		}
		whole := sets[:length]
		sets = sets[length:]
		t, err := dg.e.templates.lookup(hd.h.version, hd.h.domain, id)
		if err != nil {
			kept = append(kept, whole...)
			continue
		}
		dg.walk(&hd.h, id, t, whole[setHeaderLength:])
	}
	freed = len(hd.sets) - len(kept)
	hd.sets = kept
	return freed
}

// dropHeld gives up every held datagram: after a recovered panic, held
// data may be half released.
func (e *exporter) dropHeld() {
	e.dropped += uint64(len(e.held))
	e.errors[reasonTemplateUnknown] += uint64(len(e.held))
	clear(e.held)
	e.held, e.heldBytes = e.held[:0], 0
}

// expireHeld drops the held datagrams older than HoldTime at this
// datagram's receive time, counting them dropped and template_unknown.
func (dg *datagram) expireHeld() {
	e := dg.e
	n := 0
	for n < len(e.held) && dg.received-e.held[n].received > e.limits.holdTime {
		e.heldBytes -= len(e.held[n].sets)
		n++
	}
	if n == 0 {
		return
	}
	e.held = append(e.held[:0], e.held[n:]...)
	clear(e.held[len(e.held) : len(e.held)+n])
	e.dropped += uint64(n)
	e.errors[reasonTemplateUnknown] += uint64(n)
	if dg.logErr == nil {
		dg.logErr = fmt.Errorf("%w: %d held datagrams dropped, their templates did not come within %s",
			ErrTemplateUnknown, n, time.Duration(e.limits.holdTime)*time.Millisecond)
	}
}
