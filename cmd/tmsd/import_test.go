package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

const (
	v5Pcap    = "../../testdata/pcaps/softflowd-v5.pcap"
	v9Pcap    = "../../testdata/pcaps/softflowd-v9.pcap"
	ipfixPcap = "../../testdata/pcaps/softflowd-ipfix.pcap"
	tracePcap = "../../testdata/traces/trace.pcap"
)

// tmsdImport runs `tmsd import --data data --retention 36500d ARGS…` in-process.
func tmsdImport(t *testing.T, data string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(append([]string{"import", "--data", data, "--retention", "36500d"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// storedTotal is the store's total over the span of the testdata captures.
func storedTotal(t *testing.T, data string) goldenRow {
	t.Helper()
	st, err := pcapsrc.Read(v5Pcap, func(pcapsrc.Datagram) error { return nil })
	require.NoError(t, err)
	p := startServe(t, data)
	got := queryTop(t, "http://"+p.api.Addr().String(), "proto", st.First.Add(-2*time.Hour), st.Last.Add(2*time.Hour)).Total
	require.NoError(t, p.stop())
	return goldenRow{Bytes: got.Bytes, Packets: got.Packets, Flows: got.Flows}
}

func sum(rows ...goldenRow) goldenRow {
	var s goldenRow
	for _, r := range rows {
		s.Bytes, s.Packets, s.Flows = s.Bytes+r.Bytes, s.Packets+r.Packets, s.Flows+r.Flows
	}
	return s
}

// The ledger's lines in --list.
func ledgerLines(t *testing.T, data string) []string {
	t.Helper()
	var out bytes.Buffer
	require.NoError(t, run([]string{"import", "--data", data, "--list"}, &out, &out))
	return strings.Split(strings.TrimSpace(out.String()), "\n")
}

// Importing a capture twice counts it once: the second run is refused in one
// line naming the file, when it was imported and what it wrote; --force counts
// it twice on purpose.
func TestImportTwiceRefused(t *testing.T) {
	g := loadGolden(t, v5Pcap).Total
	data := t.TempDir()
	first, _, err := tmsdImport(t, data, v5Pcap)
	require.NoError(t, err)

	out, _, refused := tmsdImport(t, data, v5Pcap)
	require.Equal(t, g, storedTotal(t, data), "the golden totals, once")
	require.Error(t, refused, "a second import of the same capture must be refused")
	require.Regexp(t, "^"+regexp.QuoteMeta(v5Pcap)+` was imported into this store before, at 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ `+
		regexp.QuoteMeta("(sha256 f70564dd5475: 33 datagrams, 980 flows; exporter 127.0.0.1, minute 2026-11-22T19:47Z): not importing it twice; --force imports it again")+"$",
		refused.Error())
	require.Empty(t, out, "nothing imported, nothing to report")
	require.Contains(t, first, v5Pcap+": 33 datagrams, 980 flows; exporter 127.0.0.1, minute 2026-11-22T19:47Z; recorded (sha256 f70564dd5475)")
	require.Len(t, ledgerLines(t, data), 1)

	out, _, err = tmsdImport(t, data, "--force", v5Pcap)
	require.NoError(t, err)
	require.Contains(t, out, "--force: importing it again, so its traffic counts 2 times")
	require.Equal(t, sum(g, g), storedTotal(t, data), "--force doubles on purpose")
	list := ledgerLines(t, data)
	require.Len(t, list, 2)
	require.Contains(t, list[1], "forced")
	t.Logf("refusal: %s\nledger:\n%s", refused, strings.Join(list, "\n"))
}

// An import whose flows were all older than the retention stored nothing: it is
// listed, but a new import of the file with a longer retention is not refused
// as a repeat, and counts the capture once.
func TestImportBeyondRetentionNotARepeat(t *testing.T) {
	g := loadGolden(t, v5Pcap).Total
	data := t.TempDir()
	var out bytes.Buffer
	// The capture's minutes are weeks older than a day of retention.
	require.NoError(t, run([]string{"import", "--data", data, "--retention", "1d", v5Pcap}, &out, io.Discard))
	require.Contains(t, out.String(), v5Pcap+": 33 datagrams, 980 flows; no minute written; recorded")
	require.Contains(t, out.String(), "980 decoded, 0 stored, 980 skipped")

	again, _, err := tmsdImport(t, data, v5Pcap)
	require.NoError(t, err, "nothing of the file is in the store: importing it is no repeat")
	require.NotContains(t, again, "--force")
	require.Contains(t, again, v5Pcap+": 33 datagrams, 980 flows; exporter 127.0.0.1, minute 2026-11-22T19:47Z; recorded")
	require.Equal(t, g, storedTotal(t, data), "the capture once")
	require.Len(t, ledgerLines(t, data), 2, "both runs listed")

	_, _, err = tmsdImport(t, data, v5Pcap)
	require.ErrorContains(t, err, "was imported into this store before", "now it is in the store")
	out2, _, err := tmsdImport(t, data, "--force", v5Pcap)
	require.NoError(t, err)
	require.Contains(t, out2, "so its traffic counts 2 times", "the run that wrote nothing does not count")
}

// One command is refused whole when one of its files was imported before; a
// file named twice (same contents) is imported once; a different file that
// wrote the same exporter's minutes is imported with a warning naming the
// earlier import.
func TestImportSeveralFiles(t *testing.T) {
	v5, v9, ipfix := loadGolden(t, v5Pcap).Total, loadGolden(t, v9Pcap).Total, loadGolden(t, ipfixPcap).Total
	data := t.TempDir()
	_, _, err := tmsdImport(t, data, v5Pcap, v9Pcap)
	require.NoError(t, err)

	_, _, err = tmsdImport(t, data, ipfixPcap, v9Pcap)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2, err.Error())
	require.Contains(t, lines[0], v9Pcap+" was imported into this store before")
	require.Equal(t, "nothing imported: 1 of 2 files were imported before (--force imports them again)", lines[1])
	require.Equal(t, sum(v5, v9), storedTotal(t, data), "refused before writing anything: not even the new file")

	copyOf := filepath.Join(t.TempDir(), "copy.pcap")
	b, err := os.ReadFile(ipfixPcap)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(copyOf, b, 0o644))
	out, warn, err := tmsdImport(t, data, ipfixPcap, copyOf, ipfixPcap)
	require.NoError(t, err)
	require.Equal(t, 2, strings.Count(out, "same contents as "+ipfixPcap+" (sha256 029691874b47): imported once"), out)
	require.Regexp(t, "^tmsd import: warning: "+regexp.QuoteMeta(ipfixPcap+": exporter 127.0.0.1, minute 2026-11-22T19:47Z, also written by "+v5Pcap+" (imported ")+
		`\S+\), `+regexp.QuoteMeta(v9Pcap+" (imported ")+`\S+\): a different file, so imported; datagrams the captures share count twice\n$`, warn)
	require.Equal(t, sum(v5, v9, ipfix), storedTotal(t, data), "each capture once")
	require.Len(t, ledgerLines(t, data), 3)
}

// An import that fails midway is not recorded as finished: a re-run of the
// same file is refused (part of it is stored), the full capture still imports.
func TestImportFailedNotRecorded(t *testing.T) {
	b, err := os.ReadFile(v9Pcap)
	require.NoError(t, err)
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	require.NoError(t, os.WriteFile(cut, b[:len(b)*2/3], 0o644)) // ends inside a record
	data := t.TempDir()

	out, _, err := tmsdImport(t, data, cut)
	require.ErrorContains(t, err, "truncated file")
	part := storedTotal(t, data)
	require.Positive(t, part.Flows, "what was read before the end is stored")

	_, _, err = tmsdImport(t, data, cut)
	require.Equal(t, part, storedTotal(t, data), "the re-run adds nothing")
	require.Error(t, err)
	require.Regexp(t, "^"+regexp.QuoteMeta(cut)+`: an import of it begun at \S+ \(sha256 \w+\) did not finish \(`+regexp.QuoteMeta(cut)+
		`: truncated file: unexpected EOF\) after storing part of it \(\d+ datagrams, \d+ flows; exporter 127.0.0.1, minute 2026-11-22T19:47Z\): importing it again would count that part twice; --force imports it anyway$`, err.Error())

	require.Contains(t, out, cut+": not finished (")
	list := ledgerLines(t, data)
	require.Len(t, list, 1)
	require.Contains(t, list[0], "did not finish: "+cut+": truncated file")
	require.NotContains(t, list[0], "finished 20")

	out, warn, err := tmsdImport(t, data, v9Pcap)
	require.NoError(t, err)
	require.Contains(t, out, "recorded")
	require.Contains(t, warn, "also written by "+cut)
}

// A raw packet trace holds no flow export: one line, no exporter, nothing
// recorded, no part of the time span.
func TestImportRawTrace(t *testing.T) {
	// Beside a real capture: the trace's line, and only the real exporter.
	data := t.TempDir()
	out, _, err := tmsdImport(t, data, tracePcap, v5Pcap)
	require.NoError(t, err)
	require.Contains(t, out, "exporters:  1\n")
	require.Contains(t, out, "errors:     none\n")
	require.Contains(t, out, tracePcap+": no flow export")
	require.Contains(t, out, "datagrams:  33 flow export, 232 not flow export\n")
	// The time span is the flow export's: not the trace's packets, weeks earlier.
	require.Contains(t, out, "time span:  2026-11-22T19:47:44Z to 2026-11-22T19:47:44Z (0s)\n")
	require.Equal(t, loadGolden(t, v5Pcap).Total, storedTotal(t, data))

	// Alone: one line, a failure, nothing recorded.
	data = t.TempDir()
	out, warn, err := tmsdImport(t, data, tracePcap)
	require.Error(t, err)
	require.Equal(t, tracePcap+": no flow export: 232 UDP datagrams of 14709 packets, none a NetFlow v5/v9, IPFIX or sFlow v5 datagram; nothing imported", err.Error())
	require.Empty(t, out)
	require.Empty(t, warn)
	require.Equal(t, []string{"no import recorded in " + data}, ledgerLines(t, data))
}

// A datagram whose framing is broken is flow export only on a flow port: a
// collector port given with --netflow makes it one (and counted malformed
// against its exporter).
func TestImportListenPortIsFlowPort(t *testing.T) {
	payload := firstDatagram(t, v9Pcap)[:30] // v9 header and a cut flowset
	path := filepath.Join(t.TempDir(), "broken.pcap")
	writeUDPPcap(t, path, 40109, payload)

	_, _, err := tmsdImport(t, t.TempDir(), path)
	require.ErrorContains(t, err, "no flow export: 1 UDP datagrams of 1 packets")
	out, _, err := tmsdImport(t, t.TempDir(), "--netflow", "127.0.0.1:40109", path)
	require.NoError(t, err)
	require.Contains(t, out, "exporters:  1\n")
	require.Contains(t, out, "errors:     malformed=1\n")
}

// writeUDPPcap writes a one-packet Ethernet pcap: payload from 127.0.0.1:50000 to 127.0.0.1:port.
func writeUDPPcap(t *testing.T, path string, port uint16, payload []byte) {
	t.Helper()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4(127, 0, 0, 1), DstIP: net.IPv4(127, 0, 0, 1)}
	udp := &layers.UDP{SrcPort: 50000, DstPort: layers.UDPPort(port)}
	require.NoError(t, udp.SetNetworkLayerForChecksum(ip))
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, DstMAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}, EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload(payload)))
	f, err := os.Create(path)
	require.NoError(t, err)
	w := pcapgo.NewWriter(f)
	require.NoError(t, w.WriteFileHeader(65536, layers.LinkTypeEthernet))
	frame := buf.Bytes()
	require.NoError(t, w.WritePacket(gopacket.CaptureInfo{Timestamp: time.Date(2026, 11, 22, 19, 47, 0, 0, time.UTC), CaptureLength: len(frame), Length: len(frame)}, frame))
	require.NoError(t, f.Close())
}

// A capture is read twice (digest, then datagrams): a pipe or a directory is refused up front.
func TestImportNeedsRegularFiles(t *testing.T) {
	dir := t.TempDir()
	_, _, err := tmsdImport(t, t.TempDir(), v5Pcap, dir)
	require.EqualError(t, err, dir+" is a directory: name the capture files in it")
	_, _, err = tmsdImport(t, t.TempDir(), os.DevNull)
	require.ErrorContains(t, err, os.DevNull+" is not a regular file")
}

// `tmsd import --help` lists --force and --list.
func TestImportHelpListsForce(t *testing.T) {
	var out bytes.Buffer
	err := run([]string{"import", "--help"}, &out, &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	require.Contains(t, out.String(), "-force")
	require.Contains(t, out.String(), "-list")
}
