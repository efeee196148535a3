//go:build linux

package flowgen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; Go's padding matches C's on 32 and 64-bit.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// sender sends an exporter's datagrams with sendmmsg(2) on an unconnected
// socket (a connected one would report ICMP port unreachable as send errors
// when nobody listens). The message headers of the whole pool are built
// once, so a batch is one syscall on a slice of them and allocates nothing.
type sender struct {
	conn *net.UDPConn
	raw  syscall.RawConn
	name [unix.SizeofSockaddrInet6]byte
	nlen uint32
	pool []mmsghdr
	iovs []unix.Iovec
	one  [1]mmsghdr // for datagrams outside the pool
	oneV unix.Iovec

	// Arguments and results of the pending call, so call is bound once
	// (a closure per batch would allocate).
	batch []mmsghdr
	sent  int
	errno syscall.Errno
	call  func(fd uintptr) bool
}

func newSender(conn *net.UDPConn, dst netip.AddrPort, pool []*datagram) (*sender, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	s := &sender{conn: conn, raw: raw}
	if dst.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.name[0]))
		sa.Family = unix.AF_INET
		sa.Addr = dst.Addr().As4()
		s.nlen = unix.SizeofSockaddrInet4
	} else {
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.name[0]))
		sa.Family = unix.AF_INET6
		sa.Addr = dst.Addr().As16()
		s.nlen = unix.SizeofSockaddrInet6
	}
	// The port is in network byte order in both sockaddrs, at the same offset.
	s.name[2], s.name[3] = byte(dst.Port()>>8), byte(dst.Port())

	s.pool = make([]mmsghdr, len(pool))
	s.iovs = make([]unix.Iovec, len(pool))
	for i, d := range pool {
		s.iovs[i].Base = &d.buf[0]
		s.iovs[i].SetLen(len(d.buf))
		s.setHeader(&s.pool[i].hdr, &s.iovs[i])
	}
	s.setHeader(&s.one[0].hdr, &s.oneV)
	s.call = s.sendmmsg
	return s, nil
}

func (s *sender) setHeader(h *unix.Msghdr, iov *unix.Iovec) {
	h.Name = &s.name[0]
	h.Namelen = s.nlen
	h.Iov = iov
	h.SetIovlen(1)
}

func (s *sender) sendmmsg(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd,
		uintptr(unsafe.Pointer(&s.batch[0])), uintptr(len(s.batch)), 0, 0, 0)
	switch errno {
	case 0:
		s.sent, s.errno = int(n), 0
		return true
	case unix.EAGAIN, unix.EINTR:
		return false // the poller waits until the socket is writable again
	}
	s.sent, s.errno = 0, errno
	return true
}

// send sends pool datagrams [first, first+k) and returns how many the
// kernel took, at least 1 unless err != nil.
func (s *sender) send(first, k int) (int, error) {
	return s.sendHeaders(s.pool[first : first+k])
}

func (s *sender) sendHeaders(h []mmsghdr) (int, error) {
	s.batch = h
	if err := s.raw.Write(s.call); err != nil {
		return 0, fmt.Errorf("sendmmsg: %w", err)
	}
	if s.errno != 0 {
		if errors.Is(s.errno, unix.ENOBUFS) {
			return 0, nil // transient: the caller tries again
		}
		return 0, fmt.Errorf("sendmmsg: %w", s.errno)
	}
	return s.sent, nil
}

// sendBuf sends one datagram that is not in the pool (templates, a last
// truncated datagram); it reports whether the kernel took it.
func (s *sender) sendBuf(b []byte) (bool, error) {
	s.oneV.Base = &b[0]
	s.oneV.SetLen(len(b))
	n, err := s.sendHeaders(s.one[:])
	return n == 1, err
}
