package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Collector kinds. tmsd-1core is tmsd with GOMAXPROCS=1 pinned to CPU 0
// (the generator runs on CPU 1); sfacctd stands in for nfcapd on sFlow when
// nfdump has no sfcapd.
const (
	kTmsd      = "tmsd"
	kTmsd1     = "tmsd-1core"
	kTmsdPlain = "tmsd-noenrich" // tmsd with the GeoIP databases off (issue 12: enrichment's cost)
	kGoflow2   = "goflow2"
	kNfcapd    = "nfcapd"
	kSfcapd    = "sfcapd"
	kSfacctd   = "sfacctd"
	httpWait   = 5 * time.Second
	readyWait  = 20 * time.Second
	stopWait   = 30 * time.Second
	purgeWait  = 30 * time.Second
	dumpWait   = 60 * time.Second
	tmsdAPIQry = "from=-10m&to=now"
)

var httpc = &http.Client{Timeout: httpWait}

// instance is one running collector, fresh for one step.
type instance struct {
	kind, format string
	bin          string
	dir          string
	logPath      string
	cmd          *exec.Cmd
	exited       chan struct{}
	udp, udp2    int // netflow (or the only) port, sflow port
	http         int
}

func freePort(network string) (int, error) {
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	default:
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
}

// start runs a collector of kind for format in a fresh directory under work
// and waits until it receives.
func (o *opts) start(ctx context.Context, kind, format, work string) (*instance, error) {
	in := &instance{kind: kind, format: format, exited: make(chan struct{})}
	var err error
	if in.dir, err = os.MkdirTemp(work, kind+"-"+format+"-"); err != nil {
		return nil, err
	}
	in.logPath = filepath.Join(in.dir, "log")
	for _, p := range []*int{&in.udp, &in.udp2} {
		if *p, err = freePort("udp"); err != nil {
			return nil, err
		}
	}
	if in.http, err = freePort("tcp"); err != nil {
		return nil, err
	}
	var argv []string
	env := os.Environ()
	switch kind {
	case kTmsd, kTmsd1, kTmsdPlain:
		cfg := filepath.Join(in.dir, "tmsd.yaml")
		y := fmt.Sprintf("log_level: warn\nlistener: {sockets: %d, receive_buffer: %d}\n", o.tmsdSockets, o.rcvbuf)
		y += o.tmsdYAML + o.tmsdExtra
		if kind == kTmsdPlain {
			y += "geoip: {embedded: false}\n"
		}
		if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
			return nil, err
		}
		argv = []string{filepath.Join(o.bin, "tmsd"), "--config", cfg,
			"--netflow", fmt.Sprintf("127.0.0.1:%d", in.udp), "--sflow", fmt.Sprintf("127.0.0.1:%d", in.udp2),
			"--http", fmt.Sprintf("127.0.0.1:%d", in.http), "--data", cmp.Or(o.tmsdData, filepath.Join(in.dir, "data"))}
		if kind == kTmsd1 {
			env = append(env, "GOMAXPROCS=1")
			argv = append([]string{"taskset", "-c", o.oneCPU}, argv...)
		}
		if format == "sflow" {
			in.udp, in.udp2 = in.udp2, in.udp // flows go to the sflow port
		}
	case kGoflow2:
		argv = []string{filepath.Join(o.bin, "goflow2"),
			"-listen", fmt.Sprintf("netflow://127.0.0.1:%d?count=%d,sflow://127.0.0.1:%d?count=%d", in.udp, o.goflowSockets, in.udp2, o.goflowSockets),
			"-format", "bin", "-transport", "file", "-transport.file", "/dev/null",
			"-addr", fmt.Sprintf("127.0.0.1:%d", in.http), "-loglevel", "warn"}
		if format == "sflow" {
			in.udp, in.udp2 = in.udp2, in.udp
		}
	case kNfcapd, kSfcapd:
		if err := os.Mkdir(filepath.Join(in.dir, "flows"), 0o755); err != nil {
			return nil, err
		}
		argv = []string{kind, "-b", "127.0.0.1", "-p", strconv.Itoa(in.udp), "-w", filepath.Join(in.dir, "flows"),
			"-t", "3600", "-B", strconv.Itoa(o.rcvbuf)}
	case kSfacctd:
		cfg := filepath.Join(in.dir, "sfacctd.conf")
		c := strings.Join([]string{
			"daemonize: false",
			"sfacctd_ip: 127.0.0.1",
			"sfacctd_port: " + strconv.Itoa(in.udp),
			"sfacctd_renormalize: false", // PACKETS = flow samples (flowgen -sampling 1)
			"sfacctd_pipe_size: " + strconv.Itoa(o.rcvbuf),
			"plugins: print[p]",
			// Hand the plugin 64 KiB buffers (default: one element at a time)
			// through a queue as large as the socket buffer.
			"plugin_buffer_size: 65536",
			"plugin_pipe_size: " + strconv.Itoa(o.rcvbuf),
			"aggregate[p]: proto",
			"print_output[p]: csv",
			"print_refresh_time[p]: 3600",
			"print_output_file[p]: " + filepath.Join(in.dir, "out.csv"),
		}, "\n") + "\n"
		if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
			return nil, err
		}
		argv = []string{"sfacctd", "-f", cfg}
	default:
		return nil, fmt.Errorf("unknown collector %q", kind)
	}
	in.bin = argv[0]
	logf, err := os.Create(in.logPath)
	if err != nil {
		return nil, err
	}
	in.cmd = exec.Command(argv[0], argv[1:]...)
	in.cmd.Env = env
	in.cmd.Dir = in.dir
	in.cmd.Stdout, in.cmd.Stderr = logf, logf
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := in.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	go func() {
		_ = in.cmd.Wait()
		logf.Close()
		close(in.exited)
	}()
	if err := in.waitReady(ctx); err != nil {
		in.kill()
		return nil, err
	}
	return in, nil
}

func (in *instance) pid() int { return in.cmd.Process.Pid }

func (in *instance) alive() bool {
	select {
	case <-in.exited:
		return false
	default:
		return true
	}
}

func (in *instance) logTail() string {
	b, _ := os.ReadFile(in.logPath)
	s := strings.TrimSpace(string(b))
	if len(s) > 800 {
		s = "…" + s[len(s)-800:]
	}
	return s
}

func (in *instance) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyWait)
	for time.Now().Before(deadline) {
		if !in.alive() {
			return fmt.Errorf("%s exited at start: %s", in.kind, in.logTail())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		ok := udpBound(in.udp)
		if ok && in.hasHTTP() {
			path := "/healthz"
			if in.kind == kGoflow2 {
				path = "/metrics"
			}
			_, err := in.get(path)
			ok = err == nil
		}
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s: %s", in.kind, readyWait, in.logTail())
}

func (in *instance) hasHTTP() bool {
	return in.isTmsd() || in.kind == kGoflow2
}

func (in *instance) isTmsd() bool {
	return in.kind == kTmsd || in.kind == kTmsd1 || in.kind == kTmsdPlain
}

// live reports whether the collector counts flows while it runs; nfcapd,
// sfcapd and sfacctd are counted from their output after they stop.
func (in *instance) live() bool { return in.hasHTTP() }

func (in *instance) target() string { return fmt.Sprintf("127.0.0.1:%d", in.udp) }

func (in *instance) get(path string) ([]byte, error) {
	return in.getWith(context.Background(), httpc, path)
}

// getWith is get with a context and a client of the caller's (its timeout).
func (in *instance) getWith(ctx context.Context, c *http.Client, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", in.http, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, b)
	}
	return b, nil
}

// goflow2Metric is the goflow2 v2.2.6 counter of decoded flow records (sFlow:
// flow samples) per format, with the labels that select it.
func goflow2Metric(format string) (name string, labels []map[string]string) {
	switch format {
	case "v5": // v5 adds the header's record count to the flowset counter
		return "goflow2_flow_process_nf_flowset_total", []map[string]string{{"version": "5", "type": "DataFlowSet"}}
	case "v9":
		return "goflow2_flow_process_nf_flowset_records_total", []map[string]string{{"version": "9", "type": "DataFlowSet"}}
	case "ipfix":
		return "goflow2_flow_process_nf_flowset_records_total", []map[string]string{{"version": "10", "type": "DataFlowSet"}}
	default:
		return "goflow2_flow_process_sf_samples_total", []map[string]string{{"type": "FlowSample"}, {"type": "ExpandedFlowSample"}}
	}
}

// goflow2MetricDesc describes goflow2Metric for the report.
func goflow2MetricDesc(format string) string {
	name, labels := goflow2Metric(format)
	var parts []string
	for _, l := range labels {
		var kv []string
		for _, k := range []string{"version", "type"} {
			if v, ok := l[k]; ok {
				kv = append(kv, fmt.Sprintf("%s=%q", k, v))
			}
		}
		parts = append(parts, name+"{"+strings.Join(kv, ",")+"}")
	}
	return strings.Join(parts, " + ")
}

type amounts struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

type topRow struct {
	Key string `json:"key"`
	amounts
	// Error is what tmsd says the row's bytes may be under-counted by (0
	// exact; the truth's rows have none).
	Error uint64 `json:"error,omitempty"`
}

type topAnswer struct {
	Exact bool     `json:"exact"`
	Rows  []topRow `json:"rows"`
	Total amounts  `json:"total"`
}

func (in *instance) top(by string, n int) (*topAnswer, error) {
	b, err := in.get(fmt.Sprintf("/api/v1/top?by=%s&n=%d&%s", by, n, tmsdAPIQry))
	if err != nil {
		return nil, err
	}
	var t topAnswer
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("top?by=%s: %w", by, err)
	}
	return &t, nil
}

// count is the live flow count: tmsd's API total, goflow2's metric.
func (in *instance) count() (uint64, error) {
	switch {
	case in.isTmsd():
		t, err := in.top("exporter", 10)
		if err != nil {
			return 0, err
		}
		return t.Total.Flows, nil
	case in.kind == kGoflow2:
		b, err := in.get("/metrics")
		if err != nil {
			return 0, err
		}
		name, labels := goflow2Metric(in.format)
		var sum float64
		for _, l := range labels {
			sum += promSum(string(b), name, l)
		}
		return uint64(sum), nil
	}
	return 0, errors.New("no live count")
}

// diag collects the collector's own loss counters, before it stops.
func (in *instance) diag() map[string]uint64 {
	d := map[string]uint64{}
	switch {
	case in.isTmsd():
		if b, err := in.get("/metrics"); err == nil {
			d["socket_drops"] = uint64(promSum(string(b), "tmsd_listener_socket_drops_total", nil))
			d["ring_dropped"] = uint64(promSum(string(b), "tmsd_ring_dropped_total", nil))
		}
		if b, err := in.get("/api/v1/exporters"); err == nil {
			var e struct {
				Exporters []struct {
					Flows  uint64            `json:"flows"`
					Errors map[string]uint64 `json:"errors"`
				} `json:"exporters"`
			}
			if json.Unmarshal(b, &e) == nil {
				for _, x := range e.Exporters {
					d["decoded_flows"] += x.Flows
					for _, n := range x.Errors {
						d["decode_errors"] += n
					}
				}
			}
		}
	case in.kind == kGoflow2:
		if b, err := in.get("/metrics"); err == nil {
			d["queue_dropped"] = uint64(promSum(string(b), "goflow2_flow_dropped_packets_total", nil))
			d["decode_errors"] = uint64(promSum(string(b), "goflow2_flow_decoder_error_total", nil))
			if in.format == "v9" || in.format == "ipfix" {
				d["template_not_found"] = uint64(promSum(string(b), "goflow2_flow_process_nf_errors_total", map[string]string{"error": "template_not_found"}))
			}
		}
	}
	return d
}

// promSum sums the samples of metric name whose labels include match.
func promSum(text, name string, match map[string]string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // a longer metric name
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if labelsMatch(labels, match) {
			sum += v
		}
	}
	return sum
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

func labelsMatch(labels string, match map[string]string) bool {
	if len(match) == 0 {
		return true
	}
	got := map[string]string{}
	for _, m := range labelRE.FindAllStringSubmatch(labels, -1) {
		got[m[1]] = m[2]
	}
	for k, v := range match {
		if got[k] != v {
			return false
		}
	}
	return true
}

// stop ends the collector gracefully (SIGTERM; sfacctd SIGINT, which makes
// its print plugin write its cache), bounded by stopWait, then SIGKILL.
func (in *instance) stop() error {
	if !in.alive() {
		return nil
	}
	sig := syscall.SIGTERM
	if in.kind == kSfacctd {
		sig = syscall.SIGINT
	}
	// taskset execs tmsd, so the PID is tmsd's own.
	_ = in.cmd.Process.Signal(sig)
	select {
	case <-in.exited:
		return nil
	case <-time.After(stopWait):
		in.kill()
		return fmt.Errorf("%s did not stop within %s; killed", in.kind, stopWait)
	}
}

// kill SIGKILLs the collector's process tree (only our own processes).
func (in *instance) kill() {
	if in.cmd == nil || in.cmd.Process == nil || !in.alive() {
		return
	}
	for _, p := range tree(in.pid()) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	select {
	case <-in.exited:
	case <-time.After(5 * time.Second):
	}
}

var flowsRE = regexp.MustCompile(`(?m)^Flows: (\d+)\s*$`)

// finalCount counts what a stopped nfcapd/sfcapd stored (nfdump -R DIR -I)
// or a stopped sfacctd wrote (sum of the PACKETS column: flow samples).
func (in *instance) finalCount(ctx context.Context, plugins []int) (uint64, error) {
	switch in.kind {
	case kNfcapd, kSfcapd:
		cctx, cancel := context.WithTimeout(ctx, dumpWait)
		defer cancel()
		out, err := exec.CommandContext(cctx, "nfdump", "-R", filepath.Join(in.dir, "flows"), "-I").CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("nfdump -I: %w: %.300s", err, out)
		}
		m := flowsRE.FindSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("nfdump -I: no Flows line: %.300s", out)
		}
		return strconv.ParseUint(string(m[1]), 10, 64)
	case kSfacctd:
		// The core may exit before its plugin has written the CSV.
		deadline := time.Now().Add(purgeWait)
		for time.Now().Before(deadline) {
			b, _ := os.ReadFile(in.logPath)
			gone := true
			for _, p := range plugins {
				if syscall.Kill(p, 0) == nil {
					gone = false
				}
			}
			if gone && strings.Contains(string(b), "Purging cache - END") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return sumCSVColumn(filepath.Join(in.dir, "out.csv"), "PACKETS")
	}
	return 0, errors.New("no final count")
}

func sumCSVColumn(path, col string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	head, err := r.Read()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	idx := -1
	for i, h := range head {
		if h == col {
			idx = i
		}
	}
	if idx < 0 {
		return 0, fmt.Errorf("%s: no %s column in %q", path, col, head)
	}
	var sum uint64
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return sum, nil
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		n, err := strconv.ParseUint(rec[idx], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		sum += n
	}
}
