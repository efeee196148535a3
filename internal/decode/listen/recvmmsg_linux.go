//go:build linux

package listen

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; Go's padding matches C's on 32 and 64-bit.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// mmsgState is a reader's recvmmsg(2) state, built once: headers, iovecs and source
// addresses point into the reader's buffers, so a batch costs no allocation (x/net's
// ipv4.PacketConn.ReadBatch allocates a net.UDPAddr per datagram).
type mmsgState struct {
	raw   syscall.RawConn
	hs    []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for IPv4 too
	oobN  int
	recv  func(fd uintptr) bool // bound once: a method value allocates
	n     int
	errno syscall.Errno
}

func newMmsgState(r *reader) *mmsgState {
	raw, err := r.conn.SyscallConn()
	if err != nil {
		return nil
	}
	n := len(r.bufs)
	m := &mmsgState{
		raw:   raw,
		hs:    make([]mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet6, n),
		oobN:  oobSize,
	}
	for i := range m.hs {
		m.iovs[i].Base = &r.bufs[i][0]
		m.iovs[i].SetLen(len(r.bufs[i]))
		h := &m.hs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
		if oobSize > 0 {
			h.Control = &r.oobs[i][0]
		}
	}
	m.recv = m.recvmmsg
	return m
}

func (m *mmsgState) recvmmsg(fd uintptr) bool {
	for i := range m.hs {
		h := &m.hs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(m.oobN)
		h.Flags = 0
		m.hs[i].len = 0
	}
	for {
		// The socket is non-blocking: recvmmsg returns what is queued, up to len(hs).
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hs[0])), uintptr(len(m.hs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		}
		m.n, m.errno = int(n), e
		return true
	}
}

// runBatch reads with recvmmsg until the socket is closed (false), or returns true when
// recvmmsg is not available.
func (r *reader) runBatch() bool {
	m := r.mmsg
	for {
		m.n, m.errno = 0, 0
		if err := m.raw.Read(m.recv); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return false
			}
			r.readError(err)
			continue
		}
		switch m.errno {
		case 0:
		case unix.ENOSYS, unix.EOPNOTSUPP:
			r.l.log.Info("recvmmsg unavailable, reading one datagram per system call", "error", m.errno)
			return true
		default:
			r.readError(os.NewSyscallError("recvmmsg", m.errno))
			continue
		}
		now := time.Now()
		batch := r.batch[:0]
		var nbytes uint64
		for i := range m.hs[:m.n] {
			h := &m.hs[i]
			r.control(r.oobs[i][:h.hdr.Controllen])
			if h.hdr.Flags&unix.MSG_TRUNC != 0 {
				r.truncate()
				continue
			}
			src, ok := sockaddrToAddrPort(&m.names[i], h.hdr.Namelen)
			if !ok {
				continue
			}
			batch = append(batch, Datagram{Src: src, Payload: r.bufs[i][:h.len]})
			nbytes += uint64(h.len)
		}
		r.deliver(now, batch, nbytes)
	}
}

// sockaddrToAddrPort decodes a sockaddr_in or sockaddr_in6; IPv4-mapped addresses are
// unmapped and IPv6 zones dropped (naming a zone allocates).
func sockaddrToAddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	port := func(p *uint16) uint16 { return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(p))[:]) }
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(&sa4.Port)), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port(&sa.Port)), true
	}
	return netip.AddrPort{}, false
}
