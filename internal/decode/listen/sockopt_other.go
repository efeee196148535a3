//go:build !linux

package listen

import (
	"net"
	"syscall"
)

// Outside Linux: one socket per address, system receive buffer, no drop counter.
const (
	reusePortSupported = false
	msgTrunc           = 0
)

var oobSize = 0

func (l *Listener) control(_, _ string, _ syscall.RawConn) error { return nil }

func parseDrops([]byte) (uint32, bool) { return 0, false }

type mmsgState struct{}

func newMmsgState(*reader) *mmsgState { return nil }

func (r *reader) runBatch() bool { return true }

// socketInode: no /proc to match sockets against outside Linux.
func socketInode(*net.UDPConn) (uint64, bool) { return 0, false }
