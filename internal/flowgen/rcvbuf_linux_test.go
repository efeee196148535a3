package flowgen

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// bigReceiveBuffer sets a 64 MB receive buffer: SO_RCVBUFFORCE lets root
// exceed net.core.rmem_max; others get what rmem_max allows.
func bigReceiveBuffer(t *testing.T, conn *net.UDPConn) {
	raw, err := conn.SyscallConn()
	require.NoError(t, err)
	require.NoError(t, raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 64<<20)
		}
	}))
}
