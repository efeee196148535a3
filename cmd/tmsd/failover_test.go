package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flowgen"
)

var aggregatorStarted = regexp.MustCompile(`msg="tmsd started" .*http=(\S+)`)

// startAggregatorProc runs bin as an aggregator of the cluster on data,
// its API on port, and waits for its "started" line; killed at the end of
// the test if still running.
func startAggregatorProc(t *testing.T, ctx context.Context, bin string, brokers []string, data string, port int) *tmsdProc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "tmsd.yaml")
	body := fmt.Sprintf(`role: aggregator
http: 127.0.0.1:%d
data: %s
aggregate:
  checkpoint_interval: 1s
kafka:
  brokers: [%s]
  topic: flows
  partitions: 6
  key: flow
  session_timeout: 6s
`, port, data, strings.Join(brokers, ", "))
	require.NoError(t, os.WriteFile(cfg, []byte(body), 0o600))
	p, m := runTmsd(t, ctx, aggregatorStarted, bin, "serve", "--config", cfg)
	p.base = "http://" + m[1]
	return p
}

// TestFailoverKill9: two collectors publish the captures and a flowgen run
// into a topic of six partitions; aggregators consume it as one group. One
// aggregator process is killed (kill -9) mid-stream and another added; the
// killed one comes back on its data directory later, as systemd would
// restart it. The group's merged answers (one in-process aggregator asks
// its peers) equal those of a single aggregator that read the whole topic
// as a group of its own: nothing lost, nothing counted twice. Their totals
// are the golden files' and flowgen's truth's.
func TestFailoverKill9(t *testing.T) {
	bin := buildTmsd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	brokers := kafkaCluster(t)
	ports := []int{freePort(t, "tcp"), freePort(t, "tcp"), freePort(t, "tcp")}
	dataP1 := t.TempDir()
	p1 := startAggregatorProc(t, ctx, bin, brokers, dataP1, ports[0])
	p2 := startAggregatorProc(t, ctx, bin, brokers, t.TempDir(), ports[1])
	peers := []string{p1.base, p2.base, fmt.Sprintf("http://127.0.0.1:%d", ports[2])}
	fleet := func(c *Config) {
		c.Kafka.Key, c.Kafka.SessionTimeout, c.API.Peers = "flow", Duration(6*time.Second), peers
	}
	a0, base := serveRole(t, roleAggregator, brokers, fleet)
	ref, refBase := serveRole(t, roleAggregator, brokers, func(c *Config) { c.Kafka.Group = "reference" })
	c1, _ := serveRole(t, roleCollector, brokers, func(c *Config) { c.Kafka.Key = "flow" })
	c2, _ := serveRole(t, roleCollector, brokers, func(c *Config) { c.Kafka.Key = "flow" })
	var counts []int
	require.Eventually(t, func() bool {
		counts = []int{a0.consumer.Assigned(), ref.consumer.Assigned()}
		n := counts[0]
		for _, p := range []*tmsdProc{p1, p2} {
			m, err := p.metrics()
			if err != nil {
				return false
			}
			counts = append(counts, int(sumMetric(m, "tmsd_kafka_assigned_partitions")))
			n += counts[len(counts)-1]
		}
		return n == 6 && ref.consumer.Assigned() == 6
	}, 30*time.Second, 50*time.Millisecond, "six partitions over three aggregators: %v\n%s", &counts, &procLog{p1})

	start := time.Now()
	var want struct {
		sync.Mutex
		bytes, packets, flows uint64
	}
	add := func(b, p, f uint64) {
		want.Lock()
		want.bytes, want.packets, want.flows = want.bytes+b, want.packets+p, want.flows+f
		want.Unlock()
	}
	// flowgen into the second collector, for 8 s; the captures into the
	// first meanwhile.
	var gen sync.WaitGroup
	gen.Go(func() {
		truth, err := flowgen.Run(ctx, flowgen.Config{Format: "v9", Target: c2.listeners[0].Addrs()[0].String(), Rate: 20_000,
			Duration: 8 * time.Second, Exporters: 4, Seed: 11, Hosts: 20_000})
		if err == nil {
			add(truth.Total.Bytes, truth.Total.Packets, truth.Total.Flows)
		}
		require.NoError(t, err)
	})
	for _, pcap := range captures(t) {
		g := loadGolden(t, pcap)
		listener := 0
		if strings.Contains(filepath.Base(pcap), "sflow") {
			listener = 1
		}
		replayPcap(t, c1.listeners[listener].Addrs()[0].String(), pcap)
		add(g.Total.Bytes, g.Total.Packets, g.Total.Flows)
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Until(start.Add(3 * time.Second)))
	before := p1.metric(t, "tmsd_kafka_consumed_flows_total")
	require.Positive(t, before, "the aggregator killed was counting")
	p1.signal(t, syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	startAggregatorProc(t, ctx, bin, brokers, t.TempDir(), ports[2]) // added
	gen.Wait()
	p1 = startAggregatorProc(t, ctx, bin, brokers, dataP1, ports[0]) // back on its data
	require.True(t, slicesContain(p1.lines(), `msg="restored after an unclean stop"`), "restart log:\n%s", strings.Join(p1.lines(), "\n"))

	from, to := start.Add(-time.Minute), time.Now().Add(2*time.Minute)
	var got apiTop
	require.Eventually(t, func() bool {
		got = queryTop(t, base, "proto", from, to)
		r := queryTop(t, refBase, "proto", from, to)
		return !got.Partial && got.Total.Flows == want.flows && r.Total.Flows == want.flows
	}, 120*time.Second, 250*time.Millisecond, "every flow counted once: want %d", want.flows)
	require.Equal(t, []uint64{want.bytes, want.packets, want.flows}, []uint64{got.Total.Bytes, got.Total.Packets, got.Total.Flows})
	for _, by := range []string{"app", "srcip", "dstport", "exporter", "proto"} {
		f, r := queryTop(t, base, by, from, to), queryTop(t, refBase, by, from, to)
		require.False(t, f.Partial, by)
		require.Equal(t, r.Total, f.Total, by)
		require.Equal(t, len(r.Rows), len(f.Rows), by)
		for i := range r.Rows {
			require.Equal(t, fmt.Sprint(r.Rows[i].Key, r.Rows[i].Bytes, r.Rows[i].Packets, r.Rows[i].Flows),
				fmt.Sprint(f.Rows[i].Key, f.Rows[i].Bytes, f.Rows[i].Packets, f.Rows[i].Flows), "%s row %d", by, i)
			require.Zero(t, f.Rows[i].Error, "%s row %d", by, i)
		}
	}
	restored := ""
	for _, l := range p1.lines() {
		if strings.Contains(l, `msg="restored after an unclean stop"`) {
			restored = l[strings.Index(l, "checkpointed_minutes"):]
		}
	}
	t.Logf("%d flows (%d bytes) through 2 collectors and 4 aggregator processes; the one killed -9 had consumed %.0f flows, and restarted with %s; the group's answers equal one aggregator's",
		want.flows, want.bytes, before, restored)
}

// procLog prints a process's log when a message is made.
type procLog struct{ p *tmsdProc }

func (l *procLog) String() string { return strings.Join(l.p.lines(), "\n") }
