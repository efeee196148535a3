//go:build linux

package listen

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// holdEnv makes the test binary a holder process: it binds the address the
// variable names ("MODE ADDRESS"), prints the bound address and waits for
// its standard input to close.
const holdEnv = "TMSD_LISTEN_TEST_HOLD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(holdEnv); spec != "" {
		os.Exit(hold(spec))
	}
	os.Exit(m.Run())
}

// hold binds as another tmsd would ("listener": a reuseport group of two
// sockets), as one socket joining a group ("reuseport"), or a plain socket
// ("udp4", "udp", "tcp").
func hold(spec string) int {
	mode, address, _ := strings.Cut(spec, " ")
	var bound string
	switch mode {
	case "listener":
		l, err := New(testConfig(address, 2), Dependencies{Handler: &collector{}, Name: "holder"})
		if err == nil {
			err = l.Start()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer l.Stop()
		bound = l.Addrs()[0].String()
	case "reuseport":
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
			return errors.Join(err, serr)
		}}
		pc, err := lc.ListenPacket(context.Background(), "udp", address)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pc.Close()
		bound = pc.LocalAddr().String()
	case "tcp":
		ln, err := net.Listen("tcp", address)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer ln.Close()
		bound = ln.Addr().String()
	default:
		pc, err := net.ListenPacket(mode, address)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pc.Close()
		bound = pc.LocalAddr().String()
	}
	fmt.Println(bound)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// holder is a child process holding an address.
type holder struct {
	pid  int
	port string
}

// startHolder re-executes the test binary as a holder of address and waits
// until it has bound it; it ends at cleanup.
func startHolder(t *testing.T, mode, address string) holder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+mode+" "+address)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
		cancel()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "the holder did not bind %s", address)
	_, port, err := net.SplitHostPort(strings.TrimSpace(line))
	require.NoError(t, err)
	return holder{pid: cmd.Process.Pid, port: port}
}

// command is how /proc/PID/comm names the test binary.
func command() string {
	c := filepath.Base(os.Args[0])
	if len(c) > 15 {
		c = c[:15]
	}
	return c
}

// A second process's listener on a port another process's reuseport group
// holds is refused, naming the address and the process, on any address that
// overlaps the holder's; one that does not overlap starts.
func TestSecondProcessRefused(t *testing.T) {
	f := func(mode, holderAddr, host string, conflict bool) {
		t.Helper()
		h := startHolder(t, mode, holderAddr)
		addr := net.JoinHostPort(host, h.port)
		l, err := New(testConfig(addr, 2), Dependencies{Handler: &collector{}, Name: "netflow"})
		require.NoError(t, err)
		err = l.Start()
		if !conflict {
			require.NoError(t, err, "%s held by %s %s", addr, mode, holderAddr)
			require.NoError(t, l.Stop())
			return
		}
		require.Error(t, err, "%s held by %s %s: started", addr, mode, holderAddr)
		require.ErrorIs(t, err, syscall.EADDRINUSE)
		require.Equal(t, fmt.Sprintf("netflow address %s (udp) is already in use by pid %d (%s)", addr, h.pid, command()), err.Error())
		require.NoError(t, l.Stop())
	}
	f("listener", "127.0.0.1:0", "127.0.0.1", true)
	f("listener", "127.0.0.1:0", "", true)    // dual-stack wildcard over a specific address
	f("listener", ":0", "127.0.0.1", true)    // a specific address under a wildcard
	f("udp4", "0.0.0.0:0", "127.0.0.1", true) // under an IPv4-only wildcard
	f("listener", "127.0.0.1:0", "127.0.0.2", false)
	if pc, err := net.ListenPacket("udp", "[::1]:0"); err == nil {
		pc.Close()
		f("listener", "[::1]:0", "::1", true)
		f("listener", "[::1]:0", "127.0.0.1", false)
	}
}

// The HTTP address is probed as a TCP listener: a listening socket of
// another process stands in the way, naming it; a port in TIME_WAIT does not.
func TestCheckFreeTCP(t *testing.T) {
	h := startHolder(t, "tcp", "127.0.0.1:0")
	addr := "127.0.0.1:" + h.port
	err := CheckFree("http", "tcp", addr)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.Equal(t, fmt.Sprintf("http address %s (tcp) is already in use by pid %d (%s)", addr, h.pid, command()), err.Error())
	var inUse *InUseError
	require.True(t, errors.As(err, &inUse))
	require.Equal(t, []Process{{PID: h.pid, Command: command()}}, inUse.Holders)
	require.NoError(t, CheckFree("http", "tcp", "127.0.0.2:"+h.port))

	// A server that closed a connection first leaves it in TIME_WAIT on its port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	server, err := ln.Accept()
	require.NoError(t, err)
	require.NoError(t, server.Close())
	_, _ = client.Read(make([]byte, 1)) // EOF: the server's side is closed
	require.NoError(t, client.Close())
	require.NoError(t, ln.Close())
	ap, ok := resolve("tcp", ln.Addr().String())
	require.True(t, ok)
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(sockets(procRoot, "tcp", ap, nil), func(s socket) bool { return s.state == tcpTimeWait })
	}, 10*time.Second, time.Millisecond, "no socket in TIME_WAIT on %s", ap)
	require.NoError(t, CheckFree("http", "tcp", ln.Addr().String()))
}

// A process that joins the group between the probe and the binds (it probed
// at the same moment) is found after them.
func TestJoinedAfterProbeFound(t *testing.T) {
	l := startListener(t, testConfig("127.0.0.1:0", 2), Dependencies{Handler: &collector{}, Name: "netflow"})
	own := map[uint64]bool{}
	for _, c := range l.conns {
		ino, ok := socketInode(c)
		require.True(t, ok)
		own[ino] = true
	}
	local := l.Addrs()[0].(*net.UDPAddr).AddrPort()
	require.NoError(t, l.checkAlone("127.0.0.1:0", local, own), "alone in its group")
	h := startHolder(t, "reuseport", local.String())
	err := l.checkAlone(local.String(), local, own)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	require.Equal(t, fmt.Sprintf("netflow address %s (udp) is already in use by pid %d (%s)", local, h.pid, command()), err.Error())
}

// Port 0 is always free, and a failure other than a held address is
// returned as it is.
func TestCheckFreeOtherErrors(t *testing.T) {
	require.NoError(t, CheckFree("netflow", "udp", "127.0.0.1:0"))
	err := CheckFree("netflow", "udp", "192.0.2.1:2055") // not an address of this host
	require.Error(t, err)
	require.NotErrorIs(t, err, syscall.EADDRINUSE)
	require.ErrorIs(t, err, syscall.EADDRNOTAVAIL)
	require.ErrorContains(t, CheckFree("netflow", "udp", "2055"), `netflow address "2055"`)
}

// Without a readable owner (another user's process) the line names the
// address alone.
func TestInUseErrorWithoutHolder(t *testing.T) {
	e := &InUseError{Name: "sflow", Network: "udp", Address: ":6343"}
	require.Equal(t, "sflow address :6343 (udp) is already in use by another process", e.Error())
	// A procfs whose net tables list the socket but whose process cannot be read.
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "net"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "net", "udp"), []byte(
		"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"+
			"  812: 00000000:18BB 00000000:0000 07 00000000:00000000 00:00000000 00000000   104        0 3141592 2 0000000000000000 0\n"), 0o644))
	ap, ok := resolve("udp", "127.0.0.1:6331")
	require.True(t, ok)
	socks := sockets(root, "udp", ap, nil)
	require.Len(t, socks, 1)
	require.Equal(t, uint64(3141592), socks[0].inode)
	require.Empty(t, holders(root, socks))
}

func TestOverlap(t *testing.T) {
	f := func(a, b string, want bool) {
		t.Helper()
		pa, pb := mustAddr(t, a), mustAddr(t, b)
		require.Equal(t, want, overlap(pa, pb), "%s %s", a, b)
		require.Equal(t, want, overlap(pb, pa), "%s %s", b, a)
	}
	f("127.0.0.1", "127.0.0.1", true)
	f("127.0.0.1", "127.0.0.2", false)
	f("0.0.0.0", "127.0.0.1", true)
	f("0.0.0.0", "::1", false)
	f("::", "127.0.0.1", true)
	f("::", "::1", true)
	f("::ffff:127.0.0.1", "127.0.0.1", true)
	f("::1", "127.0.0.1", false)
}

func TestParseSocket(t *testing.T) {
	f := func(line, want string, state int, inode uint64) {
		t.Helper()
		s, ok := parseSocket(line)
		require.True(t, ok, line)
		require.Equal(t, want, s.local.String())
		require.Equal(t, state, s.state)
		require.Equal(t, inode, s.inode)
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("lines as a little-endian host prints them")
	}
	f("   0: 0100007F:0807 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 35612 2 0000000000000000 0", "127.0.0.1:2055", 7, 35612)
	f("   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0", "[::1]:8080", 0x0A, 99)
	f("   2: 0000000000000000FFFF00000100007F:18BD 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 7 2 0000000000000000 0", "127.0.0.1:6333", 7, 7)
	_, ok := parseSocket("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode")
	require.False(t, ok)
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	require.NoError(t, err)
	return a
}
