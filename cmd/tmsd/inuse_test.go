package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A second real tmsd on an address a running tmsd holds (the same NetFlow
// port, also under a wildcard, or the same HTTP address) exits non-zero with
// one line naming the address and the first process, and leaves no data
// directory behind; the first keeps running.
func TestSecondTmsdRefused(t *testing.T) {
	bin := buildTmsd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	first := startTmsd(t, ctx, bin, t.TempDir())
	pid := first.cmd.Process.Pid
	_, nfPort, err := net.SplitHostPort(first.netflow)
	require.NoError(t, err)
	httpAddr := strings.TrimPrefix(first.base, "http://")

	f := func(netflow, sflow, http, want string) {
		t.Helper()
		data := filepath.Join(t.TempDir(), "d2")
		// Bounded: a tmsd that starts runs until killed.
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--netflow", netflow, "--sflow", sflow, "--http", http)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		require.Error(t, err, "the second tmsd started: %s", stderr.String())
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit)
		require.Equal(t, 1, exit.ExitCode(), "the second tmsd (-1: ran until killed):\n%s", stderr.String())
		require.Equal(t, want+"\n", stderr.String())
		require.Empty(t, stdout.String())
		require.NoDirExists(t, data, "a refused start opened the store")
	}
	f(first.netflow, "127.0.0.1:0", "127.0.0.1:0",
		fmt.Sprintf("tmsd: netflow address %s (udp) is already in use by pid %d (tmsd)", first.netflow, pid))
	f(":"+nfPort, "127.0.0.1:0", "127.0.0.1:0",
		fmt.Sprintf("tmsd: netflow address :%s (udp) is already in use by pid %d (tmsd)", nfPort, pid))
	f("127.0.0.1:0", first.netflow, "127.0.0.1:0",
		fmt.Sprintf("tmsd: sflow address %s (udp) is already in use by pid %d (tmsd)", first.netflow, pid))
	f("127.0.0.1:0", "127.0.0.1:0", httpAddr,
		fmt.Sprintf("tmsd: http address %s (tcp) is already in use by pid %d (tmsd)", httpAddr, pid))

	// The first still receives every datagram: none went to a newcomer.
	first.waitCounted(t, replay(t, first.netflow), loadGolden(t, crashPcap).Total.Flows)
}
