package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tmsd/tmsd/internal/pcapsrc"
	"github.com/twmb/franz-go/pkg/kfake"
)

// kafkaCluster is franz-go's in-process Kafka (the real wire protocol,
// consumer groups and offset commits) on 127.0.0.1, stopped with the test.
func kafkaCluster(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// serveRole runs one tmsd of role on the cluster, in-process.
func serveRole(t *testing.T, role string, brokers []string, edit func(*Config)) (*pipeline, string) {
	t.Helper()
	cfg := defaultConfig()
	cfg.NetFlow, cfg.SFlow, cfg.HTTP, cfg.Data = []string{"127.0.0.1:0"}, []string{"127.0.0.1:0"}, "127.0.0.1:0", t.TempDir()
	cfg.Role = role
	cfg.Kafka.Brokers, cfg.Kafka.Topic, cfg.Kafka.Partitions = brokers, "flows", 6
	cfg.Aggregate.CheckpointInterval = CheckpointInterval(time.Second)
	if edit != nil {
		edit(&cfg)
	}
	require.NoError(t, cfg.checkKafka(configSource{}))
	return serveConfig(t, cfg, nil)
}

// TestScaleOutEqualsGolden: two collectors publish each capture into one
// topic of six partitions (records keyed by flow, so every aggregator gets
// a share), three aggregators consume it as one group; the third, with the
// other two as peers, answers top and series for all of them, and its
// answers equal the independent collector's golden file: nothing lost,
// nothing counted twice, no error bound. With a peer down the answer is
// partial and names it. A collector answers no traffic query, and says why.
func TestScaleOutEqualsGolden(t *testing.T) {
	for _, pcap := range captures(t) {
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			g := loadGolden(t, pcap)
			brokers := kafkaCluster(t)
			byFlow := func(c *Config) { c.Kafka.Key = "flow" }
			var aggs []*pipeline
			var bases []string
			for i := range 3 {
				edit := byFlow
				if i == 2 {
					// The third answers for all: its peers are the first two.
					peers := slices.Clone(bases)
					edit = func(c *Config) { byFlow(c); c.API.Peers = peers }
				}
				p, base := serveRole(t, roleAggregator, brokers, edit)
				aggs, bases = append(aggs, p), append(bases, base)
			}
			c1, c1base := serveRole(t, roleCollector, brokers, byFlow)
			c2, _ := serveRole(t, roleCollector, brokers, byFlow)
			require.Empty(t, aggs[0].listeners, "an aggregator listens to no exporter")
			require.Eventually(t, func() bool {
				for _, a := range aggs {
					if a.consumer.Assigned() != 2 {
						return false
					}
				}
				return true
			}, 60*time.Second, 20*time.Millisecond, "two partitions each")

			listener := 0
			if strings.Contains(filepath.Base(pcap), "sflow") {
				listener = 1
			}
			start := time.Now()
			// The capture to the first collector (an exporter sends to one).
			sent := replayPcap(t, c1.listeners[listener].Addrs()[0].String(), pcap)
			var decoded uint64
			require.Eventually(t, func() bool {
				decoded = 0
				for _, e := range c1.decoder.Exporters() {
					decoded += e.Flows
				}
				return c1Datagrams(c1) == sent
			}, 30*time.Second, 10*time.Millisecond)
			require.Equal(t, g.Total.Flows, decoded)

			require.Eventually(t, func() bool {
				var n float64
				for _, a := range aggs {
					n += float64(a.consumer.Flows())
				}
				return n == float64(g.Total.Flows)
			}, 60*time.Second, 20*time.Millisecond, "the aggregators consumed every flow")
			shares := 0
			for _, a := range aggs {
				require.NoError(t, a.agg.Sync(10*time.Second))
				if float64(a.consumer.Flows()) > 0 {
					shares++
				}
			}
			if g.Total.Flows > 100 {
				require.Greater(t, shares, 1, "keyed by flow, the partitions spread the flows")
			}

			from, to := start.Add(-time.Minute), time.Now().Add(2*time.Minute)
			// The third aggregator answers for the group: its merged totals
			// and top-10s equal the golden file's, exact (no error bound).
			whole := queryTop(t, bases[2], "proto", from, to)
			require.False(t, whole.Partial, "unanswered: %v", whole.Unanswered)
			compareWithGolden(t, bases[2], g, from, to)
			ser := querySeries(t, bases[2], from, to)
			require.False(t, ser.Partial)
			require.Equal(t, g.Total.Bytes, ser.sum(), "series across aggregators")

			// The same capture through the second collector: every total doubles.
			replayPcap(t, c2.listeners[listener].Addrs()[0].String(), pcap)
			require.Eventually(t, func() bool {
				var n float64
				for _, a := range aggs {
					n += float64(a.consumer.Flows())
				}
				return n == float64(2*g.Total.Flows)
			}, 60*time.Second, 20*time.Millisecond, "the aggregators consumed both collectors' flows")
			for _, a := range aggs {
				require.NoError(t, a.agg.Sync(10*time.Second))
			}
			got := queryTop(t, bases[2], "proto", from, to)
			require.False(t, got.Partial)
			require.Equal(t, []uint64{2 * g.Total.Bytes, 2 * g.Total.Packets, 2 * g.Total.Flows},
				[]uint64{got.Total.Bytes, got.Total.Packets, got.Total.Flows}, "two collectors' totals")

			// A peer down: the answer says whose traffic is missing, and has
			// the others' exactly.
			share1 := queryTop(t, bases[1], "proto", from, to).Total // no peers: its own
			require.NotZero(t, share1.Bytes)
			require.NoError(t, aggs[1].stop())
			part := queryTop(t, bases[2], "proto", from, to)
			require.True(t, part.Partial)
			require.False(t, part.Exact)
			require.Equal(t, []string{bases[1]}, part.Unanswered)
			require.Equal(t, got.Total.Bytes-share1.Bytes, part.Total.Bytes)

			resp, err := http.Get(c1base + "/api/v1/top?by=srcip")
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "a collector counts nothing")
		})
	}
}

func c1Datagrams(p *pipeline) uint64 {
	var n uint64
	for _, e := range p.decoder.Exporters() {
		n += e.Datagrams
	}
	return n
}

// goflow2Bin builds goflow2 v2.2.6 from its module, once per machine (the
// user cache keeps it), as make bench does.
func goflow2Bin(t *testing.T) string {
	t.Helper()
	dir, err := os.UserCacheDir()
	require.NoError(t, err)
	dir = filepath.Join(dir, "tmsd-tests", "goflow2-v2.2.6")
	bin := filepath.Join(dir, "goflow2")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("go", "install", "github.com/netsampler/goflow2/v2/cmd/goflow2@v2.2.6")
	cmd.Dir = t.TempDir() // outside this module: goflow2's own go.mod decides
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "building goflow2: %s", out)
	return bin
}

// freePort is a loopback port the kernel had free a moment ago: goflow2
// cannot be told port 0 and say which it took.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestGoflow2PublishesToAnAggregator: goflow2 v2.2.6 itself, with its Kafka
// transport, publishes every capture (NetFlow v5/v9, IPFIX, sFlow, sampled
// sFlow) into the topic; a tmsd aggregator consumes them and its totals and
// top-10s equal the golden files, which `tmsd import` of the same captures
// equals (TestImportEqualsGolden). goflow2 does not multiply by the sampling
// rate; tmsd does, from the message's SamplingRate. The reverse, goflow2's
// type reading tmsd's messages, is internal/kafka's codec test.
func TestGoflow2PublishesToAnAggregator(t *testing.T) {
	if testing.Short() {
		t.Skip("builds goflow2")
	}
	bin := goflow2Bin(t)
	for _, pcap := range captures(t) {
		scheme := "netflow"
		if strings.Contains(filepath.Base(pcap), "sflow") {
			scheme = "sflow"
		}
		t.Run(filepath.Base(pcap), func(t *testing.T) {
			g := loadGolden(t, pcap)
			brokers := kafkaCluster(t)
			agg, base := serveRole(t, roleAggregator, brokers, nil) // creates the topic
			require.Eventually(t, func() bool { return agg.consumer.Assigned() == 6 }, 30*time.Second, 20*time.Millisecond)

			port, metricsAddr := freePort(t, "udp"), fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
			ctx, cancel := context.WithCancel(t.Context())
			// One worker, blocking: goflow2's default two workers decode a
			// capture's template and data datagrams out of order, and lose the
			// data as "template error" (the same on a real exporter's burst).
			gf := exec.CommandContext(ctx, bin,
				"-listen", fmt.Sprintf("%s://127.0.0.1:%d?workers=1&blocking=true", scheme, port),
				"-format", "bin", "-transport", "kafka", "-transport.kafka.brokers", brokers[0],
				"-transport.kafka.topic", "flows", "-transport.kafka.flushfreq", "100ms",
				"-addr", metricsAddr, "-loglevel", "warn")
			var log strings.Builder
			gf.Stdout, gf.Stderr = &log, &log
			require.NoError(t, gf.Start())
			t.Cleanup(func() { cancel(); _ = gf.Wait() })
			// goflow2 says nothing when its socket is up: send a one-byte
			// datagram (no flow) until its metrics count one received.
			probe, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			require.NoError(t, err)
			defer probe.Close()
			require.Eventually(t, func() bool {
				_, _ = probe.Write([]byte{0})
				resp, err := http.Get("http://" + metricsAddr + "/metrics")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return strings.Contains(string(body), "goflow2_flow_traffic_packets_total{")
			}, 30*time.Second, 100*time.Millisecond, "goflow2 up: %s", &log)

			start := time.Now()
			// Paced: goflow2, a datagram at a time into Kafka, lets the kernel
			// drop a burst that tmsd takes whole (1,056 of pmacct-v9's 1,294
			// flows arrived at replayPcap's pace).
			conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
			require.NoError(t, err)
			defer conn.Close()
			_, err = pcapsrc.Read(pcap, func(d pcapsrc.Datagram) error {
				_, err := conn.Write(d.Payload)
				time.Sleep(time.Millisecond)
				return err
			})
			require.NoError(t, err)
			require.Eventually(t, func() bool { return agg.consumer.Flows() == g.Total.Flows },
				60*time.Second, 20*time.Millisecond, "every flow through goflow2 (%s of %d): %s", &flowsSeen{agg}, g.Total.Flows, &log)
			require.NoError(t, agg.agg.Sync(10*time.Second))
			compareWithGolden(t, base, g, start.Add(-time.Minute), time.Now().Add(2*time.Minute))
		})
	}
}

// flowsSeen prints an aggregator's consumed flows when a message is made.
type flowsSeen struct{ p *pipeline }

func (f *flowsSeen) String() string { return fmt.Sprint(f.p.consumer.Flows()) }

// apiSeries is a series answer.
type apiSeries struct {
	Partial    bool
	Unanswered []string
	Points     []struct{ Bytes uint64 }
}

func (s apiSeries) sum() (n uint64) {
	for _, p := range s.Points {
		n += p.Bytes
	}
	return n
}

func querySeries(t *testing.T, base string, from, to time.Time) apiSeries {
	t.Helper()
	q := url.Values{"from": {from.UTC().Format(time.RFC3339)}, "to": {to.UTC().Format(time.RFC3339)}, "step": {"1m"}}
	var out apiSeries
	getAnswer(t, base+"/api/v1/series?"+q.Encode(), &out)
	return out
}

// TestCollectorCountsWhatKafkaRefuses: with Kafka unreachable, a collector
// buffers max_buffered flows and counts every other one as dropped, per
// exporter in /api/v1/exporters and in /metrics.
func TestCollectorCountsWhatKafkaRefuses(t *testing.T) {
	const pcap = "../../testdata/pcaps/softflowd-v9.pcap"
	g := loadGolden(t, pcap)
	nobody := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	c, base := serveRole(t, roleCollector, []string{nobody}, func(c *Config) {
		c.Kafka.MaxBuffered, c.Kafka.FlushTimeout = 100, Duration(200*time.Millisecond)
	})
	sent := replayPcap(t, c.listeners[0].Addrs()[0].String(), pcap)
	eventually(t, "every datagram decoded", func() bool { return c1Datagrams(c) == sent })
	var ex struct {
		Exporters []struct {
			Address      string
			Flows        uint64
			KafkaDropped *uint64 `json:"kafka_dropped"`
		}
	}
	eventually(t, "all but the buffered dropped", func() bool {
		resp, err := http.Get(base + "/api/v1/exporters")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		if json.NewDecoder(resp.Body).Decode(&ex) != nil || len(ex.Exporters) != 1 || ex.Exporters[0].KafkaDropped == nil {
			return false
		}
		return *ex.Exporters[0].KafkaDropped == g.Total.Flows-100
	})
	require.Equal(t, g.Total.Flows, ex.Exporters[0].Flows)
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	require.Equal(t, float64(g.Total.Flows-100), sumMetric(string(page), "tmsd_kafka_produce_dropped_total"))
	require.Equal(t, 100.0, sumMetric(string(page), "tmsd_kafka_produce_buffered_records"))
	require.ErrorContains(t, c.stop(), "records left unpublished at stop", "and a stop says the buffered ones are lost")
}
