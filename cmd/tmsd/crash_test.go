package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// tmsdProc is a tmsd process on loopback ports chosen by the kernel.
type tmsdProc struct {
	cmd           *exec.Cmd
	netflow, base string
	exited        chan struct{}
	mu            sync.Mutex
	log           []string
}

const crashPcap = "../../testdata/pcaps/softflowd-v9.pcap"

var startedLine = regexp.MustCompile(`msg="tmsd started" netflow=\[(\S+)\] .* http=(\S+)`)

// buildTmsd builds this command into the test's temporary directory (the
// tests that run tmsd as a process: kill -9 needs one). Skipped by -short.
func buildTmsd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tmsd")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())
	return bin
}

// runTmsd runs bin with args and waits for the log line started matches,
// returning its submatches; the log keeps being drained. At the end of the
// test a process still running gets SIGTERM, then SIGKILL after 20 s.
func runTmsd(t *testing.T, ctx context.Context, started *regexp.Regexp, bin string, args ...string) (*tmsdProc, []string) {
	t.Helper()
	p := &tmsdProc{exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	lines := bufio.NewScanner(stderr)
	var m []string
	for m == nil && lines.Scan() {
		p.keep(lines.Text())
		m = started.FindStringSubmatch(lines.Text())
	}
	require.NotNil(t, m, "tmsd did not start: %s", strings.Join(p.lines(), "\n"))
	go func() { // keep draining the log so the process never blocks on it
		for lines.Scan() {
			p.keep(lines.Text())
		}
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p, m
}

// startTmsd runs bin on the data directory with a 1 s checkpoint interval and
// waits for its "started" line.
func startTmsd(t *testing.T, ctx context.Context, bin, data string) *tmsdProc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "tmsd.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("aggregate:\n  checkpoint_interval: 1s\n"), 0o600))
	p, m := runTmsd(t, ctx, startedLine, bin, "--config", cfg, "--netflow", "127.0.0.1:0", "--sflow", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", data)
	p.netflow, p.base = m[1], "http://"+m[2]
	return p
}

func (p *tmsdProc) keep(line string) {
	p.mu.Lock()
	p.log = append(p.log, line)
	p.mu.Unlock()
}

func (p *tmsdProc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// signal sends sig and waits for the process to end.
func (p *tmsdProc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(sig))
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("tmsd did not exit on %s", sig)
	}
	if sig == syscall.SIGTERM {
		require.True(t, p.cmd.ProcessState.Success(), "exit status after SIGTERM: %s\n%s", p.cmd.ProcessState, strings.Join(p.lines(), "\n"))
	}
}

// metric sums the samples of a metric on /metrics (every label set).
func (p *tmsdProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	page, err := p.metrics()
	require.NoError(t, err)
	return sumMetric(page, name)
}

func (p *tmsdProc) metrics() (string, error) {
	resp, err := http.Get(p.base + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// datagrams is how many datagrams the process has decoded.
func (p *tmsdProc) datagrams(t *testing.T) uint64 {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/exporters")
	require.NoError(t, err)
	defer resp.Body.Close()
	var ex struct{ Exporters []struct{ Datagrams uint64 } }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&ex))
	var n uint64
	for _, e := range ex.Exporters {
		n += e.Datagrams
	}
	return n
}

// total is the API's total over the test's minutes.
func (p *tmsdProc) total(t *testing.T, from time.Time) goldenRow {
	t.Helper()
	tot := queryTop(t, p.base, "proto", from, time.Now().Add(2*time.Minute)).Total
	return goldenRow{Bytes: tot.Bytes, Packets: tot.Packets, Flows: tot.Flows}
}

// replay sends the capture once, paced to stay inside the socket buffer, and
// returns how many datagrams it sent.
func replay(t *testing.T, target string) uint64 { return replayPcap(t, target, crashPcap) }

// eventually polls cond every 10 ms for at most 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 10*time.Millisecond, what)
}

// waitCounted waits until the process decoded datagrams and counted flows.
func (p *tmsdProc) waitCounted(t *testing.T, datagrams uint64, flows uint64) {
	t.Helper()
	eventually(t, "datagrams decoded", func() bool { return p.datagrams(t) == datagrams })
	eventually(t, "flows counted", func() bool { return p.metric(t, "tmsd_aggregate_flows_total") == float64(flows) })
}

// waitCheckpoint waits for a checkpoint that began after this call: the
// counter moves by one when the checkpoint running now (if any) ends, by two
// when one that started afterwards does.
func (p *tmsdProc) waitCheckpoint(t *testing.T) {
	t.Helper()
	c0 := p.metric(t, "tmsd_aggregate_checkpoints_total")
	eventually(t, "a checkpoint after the flows", func() bool { return p.metric(t, "tmsd_aggregate_checkpoints_total") >= c0+2 })
}

func times(g goldenRow, n uint64) goldenRow {
	return goldenRow{Bytes: g.Bytes * n, Packets: g.Packets * n, Flows: g.Flows * n}
}

// kill -9 a real tmsd and restart it on the same data directory: no repair
// needed, nothing counted twice, and nothing lost beyond the checkpoint interval.
func TestKill9(t *testing.T) {
	g := loadGolden(t, crashPcap).Total
	bin := buildTmsd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// A checkpoint covers phase 1, then kill -9; phase 2, then SIGTERM: the
	// total is exactly both phases.
	t.Run("after a checkpoint", func(t *testing.T) {
		data := t.TempDir()
		from := time.Now().Add(-time.Minute)
		p := startTmsd(t, ctx, bin, data)
		p.waitCounted(t, replay(t, p.netflow), g.Flows)
		p.waitCheckpoint(t)
		p.signal(t, syscall.SIGKILL)

		p = startTmsd(t, ctx, bin, data)
		require.Equal(t, g, p.total(t, from), "phase 1 restored once")
		require.True(t, slicesContain(p.lines(), `msg="restored after an unclean stop"`), "restart log:\n%s", strings.Join(p.lines(), "\n"))
		p.waitCounted(t, replay(t, p.netflow), g.Flows)
		p.signal(t, syscall.SIGTERM)

		p = startTmsd(t, ctx, bin, data)
		require.Equal(t, times(g, 2), p.total(t, from), "phase 1 + phase 2")
		require.False(t, slicesContain(p.lines(), "restored after an unclean stop"), "SIGTERM leaves no checkpoint")
		p.signal(t, syscall.SIGTERM)
	})

	// kill -9 at an arbitrary moment while replays are being sent: the restart
	// never has more than was sent, and has at least every replay that was
	// counted before a checkpoint that began before the kill.
	t.Run("while sending", func(t *testing.T) {
		data := t.TempDir()
		from := time.Now().Add(-time.Minute)
		p := startTmsd(t, ctx, bin, data)
		type replayed struct{ checkpointsWhenCounted float64 }
		var (
			mu      sync.Mutex
			done    []replayed
			started uint64
			stop    = make(chan struct{})
			sender  = make(chan struct{})
		)
		began := time.Now()
		go func() {
			defer close(sender)
			var datagrams uint64
			until := time.Now().Add(30 * time.Second)
			for i := uint64(1); i <= 1000 && time.Now().Before(until); i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond): // a steady stream, not a burst
				}
				mu.Lock()
				started = i
				mu.Unlock()
				conn, err := net.Dial("udp", p.netflow)
				if err != nil {
					return
				}
				_, err = pcapsrc.Read(crashPcap, func(d pcapsrc.Datagram) error {
					select {
					case <-stop: // the kill: stop mid-replay
						return io.EOF
					default:
					}
					if _, err := conn.Write(d.Payload); err != nil {
						return err
					}
					if datagrams++; datagrams%100 == 0 {
						time.Sleep(time.Millisecond)
					}
					return nil
				})
				conn.Close()
				if err != nil {
					return
				}
				// Wait until this replay is counted, then note the checkpoint counter,
				// in a later scrape: a checkpoint two after it began after the flows were counted.
				deadline := time.Now().Add(20 * time.Second)
				for {
					page, err := p.metrics()
					if err != nil || time.Now().After(deadline) {
						return
					}
					if sumMetric(page, "tmsd_aggregate_flows_total") == float64(i*g.Flows) {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				page, err := p.metrics()
				if err != nil {
					return
				}
				mu.Lock()
				done = append(done, replayed{sumMetric(page, "tmsd_aggregate_checkpoints_total")})
				mu.Unlock()
			}
		}()
		// Kill once a checkpoint covered the first replay, at a random point of the stream.
		eventually(t, "a replay checkpointed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(done) > 0 && p.metric(t, "tmsd_aggregate_checkpoints_total") >= done[0].checkpointsWhenCounted+2
		})
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Millisecond) // the arbitrary moment
		ckAtKill := p.metric(t, "tmsd_aggregate_checkpoints_total")
		streamed := time.Since(began)
		p.signal(t, syscall.SIGKILL)
		close(stop)
		<-sender

		mu.Lock()
		var covered uint64
		for _, r := range done {
			if r.checkpointsWhenCounted+2 <= ckAtKill {
				covered++
			}
		}
		upper := started
		mu.Unlock()
		require.Positive(t, covered, "the test must cover some replays to mean anything")

		p = startTmsd(t, ctx, bin, data)
		got := p.total(t, from)
		restored := float64(got.Flows) / float64(g.Flows)
		// The loss in seconds of the stream, against the 1 s checkpoint interval.
		t.Logf("kill after %.2f s: sent %d replays (the last maybe in part), %d covered by a checkpoint; restored %d flows = %.2f replays; lost %.2f replays = %.2f s of the stream",
			streamed.Seconds(), upper, covered, got.Flows, restored, float64(upper)-restored,
			(float64(upper)-restored)*streamed.Seconds()/float64(upper))
		require.LessOrEqual(t, got.Flows, upper*g.Flows, "no flow counted twice")
		require.LessOrEqual(t, got.Bytes, upper*g.Bytes)
		require.GreaterOrEqual(t, got.Flows, covered*g.Flows, "nothing checkpointed is lost")
		require.GreaterOrEqual(t, got.Bytes, covered*g.Bytes)
		p.signal(t, syscall.SIGTERM)
		p = startTmsd(t, ctx, bin, data)
		require.Equal(t, got, p.total(t, from), "SIGTERM after the restart keeps exactly that")
		p.signal(t, syscall.SIGTERM)
	})
}

func slicesContain(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// sumMetric sums the samples of a metric in a /metrics page.
func sumMetric(page, name string) float64 {
	var sum float64
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				sum += v
			}
		}
	}
	return sum
}
