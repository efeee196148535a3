package listen

import (
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// reader owns one socket and its buffers; its counters are read by Stats.
type reader struct {
	l     *Listener
	conn  *net.UDPConn
	bufs  [][]byte // one per datagram of a batch, MaxDatagramSize each
	oobs  [][]byte // control messages (SO_RXQ_OVFL), one per datagram
	batch []Datagram
	// rejectedSrcs collects a batch's refused sources, so that the shared
	// Offenders is locked once per batch, without allocating.
	rejectedSrcs []netip.Addr
	mmsg         *mmsgState // recvmmsg state (Linux), nil elsewhere

	datagrams atomic.Uint64
	bytes     atomic.Uint64
	truncated atomic.Uint64
	drops     atomic.Uint64 // kernel's cumulative drop counter for this socket
	rejected  atomic.Uint64
}

func newReader(l *Listener, conn *net.UDPConn) *reader {
	n, size := l.cfg.BatchSize, l.cfg.MaxDatagramSize
	r := &reader{
		l:     l,
		conn:  conn,
		bufs:  make([][]byte, n),
		oobs:  make([][]byte, n),
		batch: make([]Datagram, 0, n),
	}
	if len(l.cfg.Allow) > 0 {
		r.rejectedSrcs = make([]netip.Addr, 0, n)
	}
	slab := make([]byte, n*size)
	oob := make([]byte, n*oobSize)
	for i := range r.bufs {
		r.bufs[i] = slab[i*size : (i+1)*size : (i+1)*size]
		r.oobs[i] = oob[i*oobSize : (i+1)*oobSize : (i+1)*oobSize]
	}
	if !l.noBatch {
		r.mmsg = newMmsgState(r)
	}
	return r
}

// run reads until the socket is closed: batches with recvmmsg where available, else one
// datagram per system call.
func (r *reader) run() {
	if r.mmsg != nil && !r.runBatch() {
		return
	}
	r.runSingle()
}

// runSingle is the fallback without recvmmsg: one datagram per read.
func (r *reader) runSingle() {
	buf, oob := r.bufs[0], r.oobs[0]
	for {
		n, oobn, flags, src, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.readError(err)
			continue
		}
		now := time.Now()
		r.control(oob[:oobn])
		if flags&msgTrunc != 0 {
			r.truncate()
			continue
		}
		batch := append(r.batch[:0], Datagram{
			Src:     netip.AddrPortFrom(src.Addr().Unmap(), src.Port()),
			Payload: buf[:n],
		})
		r.deliver(now, batch, uint64(n))
	}
}

// control reads the kernel's drop counter from a datagram's control messages.
func (r *reader) control(oob []byte) {
	if len(oob) > 0 {
		if d, ok := parseDrops(oob); ok {
			r.drops.Store(uint64(d))
		}
	}
}

func (r *reader) deliver(now time.Time, batch []Datagram, nbytes uint64) {
	if len(r.l.cfg.Allow) > 0 {
		batch, nbytes = r.filter(now, batch, nbytes)
	}
	if len(batch) == 0 {
		return
	}
	r.datagrams.Add(uint64(len(batch)))
	r.bytes.Add(nbytes)
	r.l.handler.HandleBatch(now, batch)
}

func (r *reader) truncate() {
	r.truncated.Add(1)
	if r.l.errLog.allow(time.Now()) {
		r.l.log.Warn("UDP datagram longer than the receive buffer, dropped: raise max datagram size",
			"max_datagram_size", r.l.cfg.MaxDatagramSize)
	}
}

// readError logs (throttled) and pauses briefly so that a persistent error does not spin.
func (r *reader) readError(err error) {
	if r.l.errLog.allow(time.Now()) {
		r.l.log.Warn("UDP read error", "error", err)
	}
	time.Sleep(time.Millisecond)
}
