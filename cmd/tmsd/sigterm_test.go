package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/store"
	"github.com/tmsd/tmsd/internal/topn"
)

// A real tmsd process receives a capture live and gets SIGTERM within the
// same minute: the open minute must be in the store when it has exited.
// Before that, SIGHUP reloads its file: a bad rule is refused with FILE:LINE
// and the process goes on, a good file is applied.
func TestSIGTERMFlushesOpenMinute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const pcap = "../../testdata/pcaps/softflowd-v9.pcap"
	g := loadGolden(t, pcap)
	bin := buildTmsd(t)

	data := t.TempDir()
	conf := writeConfig(t, "apps:\n  - \"web-a = tcp/443\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", conf, "--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	lines := bufio.NewScanner(stderr)
	started := regexp.MustCompile(`msg="tmsd started" netflow=\[(\S+)\] .* http=(\S+)`)
	var target, httpAddr string
	for lines.Scan() {
		if m := started.FindStringSubmatch(lines.Text()); m != nil {
			target, httpAddr = m[1], m[2]
			break
		}
	}
	require.NotEmpty(t, target, "tmsd did not log its start")
	logged := make(chan string, 1024)
	go func() { // keep draining the log so the process never blocks on it
		for lines.Scan() {
			select {
			case logged <- lines.Text():
			default:
			}
		}
	}()
	waitLog := func(re *regexp.Regexp) string {
		t.Helper()
		for {
			select {
			case l := <-logged:
				if re.MatchString(l) {
					return l
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("tmsd did not log %s", re)
			}
		}
	}
	require.NoError(t, os.WriteFile(conf, []byte("exporters: {127.0.0.1: edge-1}\napps:\n  - \"web-b = tcp/99999\"\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	l := waitLog(regexp.MustCompile(`reload refused`))
	require.Contains(t, l, conf+`:3: apps: app rule \"web-b = tcp/99999\"`)
	require.NoError(t, os.WriteFile(conf, []byte("exporters: {127.0.0.1: edge-1}\napps:\n  - \"web-b = tcp/443\"\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Contains(t, waitLog(regexp.MustCompile(`configuration reloaded`)), `changed="[apps exporters]"`)

	sent := replayPcap(t, target, pcap)
	require.Eventually(t, func() bool { // every datagram decoded before the signal
		resp, err := http.Get("http://" + httpAddr + "/api/v1/exporters")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ex struct{ Exporters []struct{ Datagrams uint64 } }
		return json.NewDecoder(resp.Body).Decode(&ex) == nil && len(ex.Exporters) == 1 && ex.Exporters[0].Datagrams == sent
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())

	scfg := store.DefaultConfiguration()
	scfg.Path = data
	st, err := store.New(scfg, store.Dependencies{})
	require.NoError(t, err)
	require.NoError(t, st.Start())
	defer st.Stop()
	var total topn.Counters
	require.NoError(t, st.Totals(store.TierMinute, topn.Scope{}, time.Now().Add(-2*time.Hour), time.Now().Add(time.Hour),
		func(_ time.Time, c topn.Counters) error { total.Add(c); return nil }))
	require.Equal(t, topn.Counters{Bytes: g.Total.Bytes, Packets: g.Total.Packets, Flows: g.Total.Flows}, total)
}
