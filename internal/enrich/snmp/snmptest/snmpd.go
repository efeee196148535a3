// Package snmptest runs a real SNMP agent for tests: Debian's net-snmp
// snmpd on a free 127.0.0.1 port, with a known ifTable/ifXTable given by
// `override` lines (TableConf), stopped when the test ends.
package snmptest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The agent under test is Debian's net-snmp snmpd, started with its interface
// tables (ifTable, ifXTable) left out (-I -...) and `override` lines in their
// place: override registers exact instances, which snmpd's registry walks
// like any table's rows (GETNEXT and GETBULK included), so a static config
// gives a known ifTable/ifXTable with no pass script. A rename is a restart
// with another config on the same port.

const (
	V3User     = "tmsd"
	V3AuthPass = "auth-pass-0123"
	V3PrivPass = "priv-pass-0123"
)

// AccessConf lets in v2c "public" and the v3 user (SHA/AES, authPriv only).
const AccessConf = `rocommunity public 127.0.0.1
createUser ` + V3User + ` SHA "` + V3AuthPass + `" AES "` + V3PrivPass + `"
rouser ` + V3User + ` priv
`

// TableConf is sysName seoul-bb1 and four interfaces: lo (1), xe-0/0/1 named
// name517 (517), xe-0/0/2 (518), and 519 in the ifTable only (no ifXTable
// row: its name must come from ifDescr).
func TableConf(name517 string) string {
	return `sysName seoul-bb1
override 1.3.6.1.2.1.2.2.1.1.1 integer 1
override 1.3.6.1.2.1.2.2.1.2.1 octet_str "lo"
override 1.3.6.1.2.1.2.2.1.1.517 integer 517
override 1.3.6.1.2.1.2.2.1.2.517 octet_str "Juniper xe-0/0/1"
override 1.3.6.1.2.1.2.2.1.1.518 integer 518
override 1.3.6.1.2.1.2.2.1.2.518 octet_str "Juniper xe-0/0/2"
override 1.3.6.1.2.1.2.2.1.1.519 integer 519
override 1.3.6.1.2.1.2.2.1.2.519 octet_str "ge-0/0/9"
override 1.3.6.1.2.1.31.1.1.1.1.1 octet_str "lo"
override 1.3.6.1.2.1.31.1.1.1.1.517 octet_str "` + name517 + `"
override 1.3.6.1.2.1.31.1.1.1.1.518 octet_str "xe-0/0/2"
override 1.3.6.1.2.1.31.1.1.1.15.1 unsigned 0
override 1.3.6.1.2.1.31.1.1.1.15.517 unsigned 100000
override 1.3.6.1.2.1.31.1.1.1.15.518 unsigned 10000
override 1.3.6.1.2.1.31.1.1.1.18.517 octet_str "to KT"
override 1.3.6.1.2.1.31.1.1.1.18.518 octet_str "to SKB"
`
}

// SNMPDPath finds snmpd (in /usr/sbin, not on every user's PATH). Without it
// the tests skip, unless CI is set: there a missing agent is a broken setup.
func SNMPDPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("snmpd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/snmpd"); serr == nil {
			return "/usr/sbin/snmpd"
		}
		if os.Getenv("CI") == "" {
			t.Skip("snmpd is not installed (apt-get install snmpd snmp); with CI set this is a failure")
		}
		t.Fatalf("snmpd is not installed and CI is set: apt-get install snmpd snmp")
	}
	return path
}

// Agent is a running snmpd.
type Agent struct {
	t      *testing.T
	bin    string
	dir    string // config, log, pid and persistent state (engine ID, boots)
	Access string // AccessConf unless a test changes it before a restart
	Addr   netip.AddrPort
	runs   int
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts snmpd on a free 127.0.0.1 port with AccessConf and conf,
// and stops it when the test ends.
func Start(t *testing.T, conf string) netip.AddrPort {
	t.Helper()
	return NewAgent(t, conf).Addr
}

// NewAgent is Start, for tests that stop or restart the agent.
func NewAgent(t *testing.T, conf string) *Agent {
	t.Helper()
	a := &Agent{t: t, bin: SNMPDPath(t), dir: t.TempDir(), Access: AccessConf}
	t.Cleanup(a.Stop)
	var err error
	for range 5 { // the free port may be taken before snmpd binds it
		var port uint16
		if port, err = freeUDPPort(); err == nil {
			if err = a.run(conf, port); err == nil {
				return a
			}
		}
		t.Logf("starting snmpd: %v; retrying", err)
	}
	t.Fatalf("cannot start snmpd: %v", err)
	return nil
}

// freeUDPPort returns a port no socket of 127.0.0.1 has at the moment.
func freeUDPPort() (uint16, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// run starts snmpd on port and waits until it listens (its log says its
// version once the ports are open) or exits.
func (a *Agent) run(conf string, port uint16) error {
	a.runs++
	confPath := filepath.Join(a.dir, fmt.Sprintf("snmpd-%d.conf", a.runs))
	logPath := filepath.Join(a.dir, fmt.Sprintf("snmpd-%d.log", a.runs))
	full := fmt.Sprintf("agentAddress udp:127.0.0.1:%d\n", port) + a.Access + conf
	if err := os.WriteFile(confPath, []byte(full), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(a.bin, "-f", "-C", "-c", confPath, "-Lf", logPath,
		"-p", filepath.Join(a.dir, "snmpd.pid"), "-I", "-ifTable,ifXTable,ifTable_ifXTable")
	// MIBS= : no MIB files parsed (faster, no warnings); the persistent
	// directory keeps snmpd off /var/lib/snmp.
	cmd.Env = append(os.Environ(), "SNMP_PERSISTENT_DIR="+filepath.Join(a.dir, "persist"), "MIBS=")
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		log, _ := os.ReadFile(logPath)
		select {
		case <-exited:
			return fmt.Errorf("snmpd exited: %s", strings.TrimSpace(string(log)))
		default:
		}
		if strings.Contains(string(log), "NET-SNMP version") {
			a.cmd, a.exited = cmd, exited
			a.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New("snmpd did not start within 10 s")
}

// Stop stops snmpd (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (a *Agent) Stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// Restart replaces the agent by one with conf on the same port.
func (a *Agent) Restart(conf string) {
	a.t.Helper()
	a.Stop()
	var err error
	for range 5 { // the port is ours again once the old snmpd exited, but be lenient
		if err = a.run(conf, a.Addr.Port()); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.t.Fatalf("cannot restart snmpd on %s: %v", a.Addr, err)
}
