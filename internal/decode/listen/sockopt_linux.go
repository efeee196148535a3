//go:build linux

package listen

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	reusePortSupported = true
	msgTrunc           = unix.MSG_TRUNC
)

// oobSize is the control message space per datagram: room for SO_RXQ_OVFL (a uint32) and a spare.
var oobSize = 2 * unix.CmsgSpace(4)

// control sets the socket options before bind.
func (l *Listener) control(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = l.setOptions(int(fd))
	})
	if err != nil {
		return err
	}
	return serr
}

func (l *Listener) setOptions(fd int) error {
	if l.cfg.Sockets > 1 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fmt.Errorf("SO_REUSEPORT: %w", err)
		}
	}
	if l.cfg.ReceiveBuffer > 0 {
		got, err := setReceiveBuffer(fd, l.cfg.ReceiveBuffer, l.forceRcvbuf)
		if err != nil {
			return err
		}
		l.rcvbufGot.Store(int64(got))
		if got < l.cfg.ReceiveBuffer {
			l.rcvbufWarn.Do(func() {
				l.log.Warn("UDP receive buffer capped by the kernel, raise it with sysctl",
					"requested", l.cfg.ReceiveBuffer, "obtained", got,
					"sysctl", fmt.Sprintf("sysctl -w net.core.rmem_max=%d", l.cfg.ReceiveBuffer))
			})
		}
	}
	// Kernel drop counter delivered with each datagram; best effort.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		l.log.Debug("SO_RXQ_OVFL not available, socket drops not counted", "error", err)
	}
	return nil
}

// setReceiveBuffer sets SO_RCVBUF (SO_RCVBUFFORCE first when force, which needs CAP_NET_ADMIN)
// and returns the size obtained. Linux doubles the value set (bookkeeping overhead) and reports
// the doubled value: it is halved here to compare with the request.
func setReceiveBuffer(fd, size int, force bool) (int, error) {
	set := false
	if force {
		set = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) == nil
	}
	if !set {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return 0, fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return 0, fmt.Errorf("SO_RCVBUF: %w", err)
	}
	return got / 2, nil
}

// parseDrops returns the SO_RXQ_OVFL counter found in the control messages, if any.
// It parses by hand: unix.ParseSocketControlMessage allocates.
func parseDrops(oob []byte) (uint32, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && l >= unix.CmsgLen(4) {
			d := oob[unix.CmsgLen(0):]
			return *(*uint32)(unsafe.Pointer(&d[0])), true
		}
		space := unix.CmsgSpace(l - unix.CmsgLen(0))
		if space > len(oob) {
			return 0, false
		}
		oob = oob[space:]
	}
	return 0, false
}

// socketInode is the inode of a socket, as /proc/net/udp lists it.
func socketInode(c *net.UDPConn) (uint64, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fstat(int(fd), &st) }); err != nil || serr != nil {
		return 0, false
	}
	return st.Ino, true
}
