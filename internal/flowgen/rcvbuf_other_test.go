//go:build !linux

package flowgen

import (
	"net"
	"testing"
)

func bigReceiveBuffer(_ *testing.T, conn *net.UDPConn) { _ = conn.SetReadBuffer(64 << 20) }
