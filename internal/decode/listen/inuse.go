package listen

// A port must belong to one process. SO_REUSEPORT lets any socket of the same
// user join a group already bound to the port, and the kernel then splits the
// exporters between the group's sockets: a second tmsd started by mistake
// would take part of the traffic without a word. So an address is probed
// before use with a socket that sets neither SO_REUSEPORT nor SO_REUSEADDR
// (UDP), which the kernel refuses with EADDRINUSE whenever any socket holds
// an overlapping address (0.0.0.0:P and 127.0.0.1:P, [::]:P dual-stack and
// any IPv4 address), reuseport group included; and once a Listener has bound
// its sockets it checks /proc/net/udp{,6} that no socket outside it shares the
// port (two processes that probed at the same moment). The owner of a
// conflicting socket is found by matching the socket inodes of
// /proc/net/{udp,tcp}{,6} against the /proc/PID/fd links it may read.

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Process is a process holding a socket.
type Process struct {
	PID     int
	Command string // /proc/PID/comm
}

// InUseError says that another process already has an address. It wraps
// syscall.EADDRINUSE.
type InUseError struct {
	Name    string // what the address is for: netflow, sflow, http
	Network string // udp or tcp
	Address string // as configured
	// Holders are the processes found holding the port on an overlapping
	// address; empty when /proc cannot tell (another user's process).
	Holders []Process
}

func (e *InUseError) Error() string {
	var b strings.Builder
	if e.Name != "" {
		b.WriteString(e.Name + " ")
	}
	fmt.Fprintf(&b, "address %s (%s) is already in use", e.Address, e.Network)
	if len(e.Holders) == 0 {
		b.WriteString(" by another process")
		return b.String()
	}
	b.WriteString(" by ")
	self := os.Getpid()
	for i, p := range e.Holders {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "pid %d (%s", p.PID, p.Command)
		if p.PID == self {
			b.WriteString(", this process")
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *InUseError) Unwrap() error { return syscall.EADDRINUSE }

// procRoot is where procfs is mounted.
const procRoot = "/proc"

// CheckFree probes that no socket holds address ("host:port") for network
// ("udp" or "tcp"), the way Start (UDP) or an HTTP server (TCP) would bind it
// but alone: a UDP probe without SO_REUSEPORT or SO_REUSEADDR, a TCP probe
// with Go's listener options (SO_REUSEADDR, which only waives sockets in
// TIME_WAIT). A held address gives an *InUseError naming the holders it can
// read; another failure to bind (a foreign address, a privileged port) is
// returned as it is. Port 0 is always free. The probe is closed at once.
func CheckFree(name, network, address string) error {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%s address %q: %w", name, address, err)
	}
	if port == "0" || port == "" {
		return nil
	}
	var closer interface{ Close() error }
	switch network {
	case "udp":
		closer, err = net.ListenPacket("udp", address)
	case "tcp":
		closer, err = net.Listen("tcp", address)
	default:
		return fmt.Errorf("%s address %q: network %q is not udp or tcp", name, address, network)
	}
	if err == nil {
		return closer.Close()
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s address %s: %w", name, address, err)
	}
	e := &InUseError{Name: name, Network: network, Address: address}
	if ap, ok := resolve(network, address); ok {
		socks := sockets(procRoot, network, ap, nil)
		if network == "tcp" {
			// The listener, if there is one: connections that use the port
			// are not what stands in the way.
			if l := slices.DeleteFunc(slices.Clone(socks), func(s socket) bool { return s.state != tcpListen }); len(l) > 0 {
				socks = l
			}
		}
		e.Holders = holders(procRoot, socks)
	}
	return e
}

// resolve gives the address a probe of address binds, for matching against
// /proc: a wildcard host (empty, 0.0.0.0 or ::) binds [::] dual-stack, as
// Go does when the system has IPv6.
func resolve(network, address string) (netip.AddrPort, bool) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := net.LookupPort(network, port)
	if err != nil {
		return netip.AddrPort{}, false
	}
	if host == "" {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(p)), true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return netip.AddrPort{}, false
		}
		a, _ = netip.AddrFromSlice(ips[0])
	}
	a = a.Unmap()
	if a.IsUnspecified() {
		a = netip.IPv6Unspecified()
	}
	return netip.AddrPortFrom(a, uint16(p)), true
}

// TCP states in /proc/net/tcp.
const (
	tcpTimeWait = 0x06
	tcpListen   = 0x0A
)

// socket is one line of /proc/net/{udp,tcp}{,6}.
type socket struct {
	local netip.AddrPort
	state int
	inode uint64 // 0 for a socket no file holds (TCP TIME_WAIT)
}

// sockets lists the sockets of network bound to ap's port on an address that
// overlaps ap's, leaving out the inodes in skip. It reads what it can: no
// procfs, no sockets.
func sockets(root, network string, ap netip.AddrPort, skip map[uint64]bool) []socket {
	var out []socket
	for _, file := range []string{network, network + "6"} {
		f, err := os.Open(filepath.Join(root, "net", file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			s, ok := parseSocket(sc.Text())
			if !ok || s.local.Port() != ap.Port() || skip[s.inode] || !overlap(s.local.Addr(), ap.Addr()) {
				continue
			}
			out = append(out, s)
		}
		f.Close()
	}
	return out
}

// parseSocket reads a line such as
//
//	"  12: 0100007F:0807 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 35612 2 ..."
//
// whose addresses are 32-bit words in host byte order, then the port in hex.
func parseSocket(line string) (socket, bool) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return socket{}, false
	}
	hostHex, portHex, ok := strings.Cut(f[1], ":")
	if !ok {
		return socket{}, false
	}
	raw, err := hex.DecodeString(hostHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return socket{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	port, err1 := strconv.ParseUint(portHex, 16, 16)
	state, err2 := strconv.ParseUint(f[3], 16, 8)
	inode, err3 := strconv.ParseUint(f[9], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return socket{}, false
	}
	return socket{local: netip.AddrPortFrom(addr.Unmap(), uint16(port)), state: int(state), inode: inode}, true
}

// overlap says whether sockets bound to a and b on one port both receive
// some destination: the same address, or a wildcard that covers the other.
// [::] covers IPv4 too (dual-stack, Go's default; /proc does not show
// IPV6_V6ONLY, so it is assumed off).
func overlap(a, b netip.Addr) bool {
	a, b = a.Unmap(), b.Unmap()
	switch {
	case a == b:
		return true
	case a == netip.IPv6Unspecified() || b == netip.IPv6Unspecified():
		return true
	case a == netip.IPv4Unspecified():
		return b.Is4()
	case b == netip.IPv4Unspecified():
		return a.Is4()
	}
	return false
}

// holders finds the processes whose file descriptors are the sockets, in
// PID order, each once. Processes it may not read (another user's, without
// privileges) are left out.
func holders(root string, socks []socket) []Process {
	want := map[string]bool{}
	for _, s := range socks {
		if s.inode != 0 {
			want["socket:["+strconv.FormatUint(s.inode, 10)+"]"] = true
		}
	}
	if len(want) == 0 {
		return nil
	}
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []Process
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(root, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && want[link] {
				comm, _ := os.ReadFile(filepath.Join(root, d.Name(), "comm"))
				out = append(out, Process{PID: pid, Command: strings.TrimSpace(string(comm))})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Process) int { return a.PID - b.PID })
	return out
}

// checkAlone returns an *InUseError when a socket other than the listener's
// own (inodes) is bound to the port of local on an overlapping address.
func (l *Listener) checkAlone(address string, local netip.AddrPort, own map[uint64]bool) error {
	foreign := sockets(procRoot, "udp", local, own)
	if len(foreign) == 0 {
		return nil
	}
	return &InUseError{Name: l.name, Network: "udp", Address: address, Holders: holders(procRoot, foreign)}
}
