//go:build !linux

package flowgen

import (
	"fmt"
	"net"
	"net/netip"
)

// sender is the portable fallback: one write per datagram, much slower
// than sendmmsg but correct.
type sender struct {
	conn *net.UDPConn
	dst  netip.AddrPort
	pool []*datagram
}

func newSender(conn *net.UDPConn, dst netip.AddrPort, pool []*datagram) (*sender, error) {
	return &sender{conn: conn, dst: dst, pool: pool}, nil
}

func (s *sender) send(first, k int) (int, error) {
	for i := range k {
		if _, err := s.conn.WriteToUDPAddrPort(s.pool[first+i].buf, s.dst); err != nil {
			if i > 0 {
				return i, nil
			}
			return 0, fmt.Errorf("send: %w", err)
		}
	}
	return k, nil
}

func (s *sender) sendBuf(b []byte) (bool, error) {
	if _, err := s.conn.WriteToUDPAddrPort(b, s.dst); err != nil {
		return false, fmt.Errorf("send: %w", err)
	}
	return true, nil
}
