// Command golden converts the raw outputs of the independent collectors
// (nfdump 1.7.1 for NetFlow/IPFIX, pmacct's sfacctd 1.7.7 for sFlow), as
// recorded by testdata/pcaps/make.sh in NAME.golden.txt, into NAME.golden.json.
//
//	go run ./testdata/pcaps/golden -txt NAME.golden.txt -json NAME.golden.json [-top 20]
//
// It only re-shapes what the collectors printed; it does not decode flow
// protocols itself. NAME.golden.txt is a sequence of sections, each starting
// with a line "### [TAG] description". Tags understood:
//
//	[source]               body: the JSON "source" string, verbatim
//	[nfdump:total]         `nfdump -I` output (Flows:/Packets:/Bytes: lines)
//	[nfdump:DIM]           `nfdump -s ... -o csv` output, DIM in srcip, dstip,
//	                       ip, srcport, dstport, proto (rows in nfdump's order)
//	[sfacctd:live:DIM]     sfacctd print-plugin CSV, renormalized (bytes, packets)
//	[sfacctd:offline:DIM]  sfacctd print-plugin CSV of the same capture read back
//	                       without renormalization: PACKETS = number of samples
//	[tshark:samples]       body: "flow_samples=N" counted by tshark
//
// All other sections ([info] ...) are ignored. Any inconsistency (summary
// lines that disagree, rows without a match, sample counts that differ)
// is an error.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
)

type row struct {
	Key     string `json:"key"`
	Bytes   int64  `json:"bytes"`
	Packets int64  `json:"packets"`
	Flows   int64  `json:"flows"`
}

type total struct {
	Bytes   int64 `json:"bytes"`
	Packets int64 `json:"packets"`
	Flows   int64 `json:"flows"`
}

type top struct {
	SrcIP   []row `json:"srcip"`
	DstIP   []row `json:"dstip"`
	IP      []row `json:"ip"`
	SrcPort []row `json:"srcport"`
	DstPort []row `json:"dstport"`
	Proto   []row `json:"proto"`
}

type golden struct {
	Source string `json:"source"`
	Total  total  `json:"total"`
	Top    top    `json:"top"`
}

var dims = []string{"srcip", "dstip", "ip", "srcport", "dstport", "proto"}

func (t *top) set(dim string, rows []row) {
	switch dim {
	case "srcip":
		t.SrcIP = rows
	case "dstip":
		t.DstIP = rows
	case "ip":
		t.IP = rows
	case "srcport":
		t.SrcPort = rows
	case "dstport":
		t.DstPort = rows
	case "proto":
		t.Proto = rows
	}
}

func main() {
	txt := flag.String("txt", "", "NAME.golden.txt written by make.sh")
	out := flag.String("json", "", "NAME.golden.json to write")
	n := flag.Int("top", 20, "rows per list")
	flag.Parse()
	if *txt == "" || *out == "" {
		log.Fatal("usage: golden -txt NAME.golden.txt -json NAME.golden.json")
	}
	secs, err := readSections(*txt)
	if err != nil {
		log.Fatal(err)
	}
	var g golden
	src, ok := secs["source"]
	if !ok {
		log.Fatalf("%s: no [source] section", *txt)
	}
	g.Source = strings.TrimSpace(src)
	if g.Source == "" {
		log.Fatalf("%s: empty [source] section", *txt)
	}
	if _, ok := secs["nfdump:total"]; ok {
		err = fromNfdump(&g, secs, *n)
	} else {
		err = fromSfacctd(&g, secs, *n)
	}
	if err != nil {
		log.Fatalf("%s: %v", *txt, err)
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}

func readSections(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	secs := map[string]string{}
	var tag string
	var body strings.Builder
	flush := func() {
		if tag != "" {
			secs[tag] = body.String()
		}
		body.Reset()
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "### [") {
			flush()
			end := strings.Index(line, "]")
			tag = line[5:end]
			if _, dup := secs[tag]; dup && tag != "info" {
				return nil, fmt.Errorf("duplicate section [%s]", tag)
			}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	flush()
	return secs, sc.Err()
}

func canonIP(s string) (string, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return "", err
	}
	return a.Unmap().String(), nil
}

func protoName(p string) string {
	switch strings.ToUpper(strings.TrimSpace(p)) {
	case "6", "TCP":
		return "tcp"
	case "17", "UDP":
		return "udp"
	case "1", "ICMP":
		return "icmp"
	case "58", "ICMP6", "IPV6-ICMP":
		return "ipv6-icmp"
	}
	return strings.TrimSpace(p)
}

func atoi(s string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }

// ---- nfdump ----

func fromNfdump(g *golden, secs map[string]string, n int) error {
	for _, line := range strings.Split(secs["nfdump:total"], "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		x, err := atoi(v)
		switch strings.TrimSpace(k) {
		case "Flows":
			g.Total.Flows = x
		case "Packets":
			g.Total.Packets = x
		case "Bytes":
			g.Total.Bytes = x
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("nfdump -I: %q: %v", line, err)
		}
	}
	if g.Total.Flows == 0 || g.Total.Packets == 0 || g.Total.Bytes == 0 {
		return fmt.Errorf("nfdump -I: missing totals")
	}
	for _, dim := range dims {
		body, ok := secs["nfdump:"+dim]
		if !ok {
			return fmt.Errorf("no [nfdump:%s] section", dim)
		}
		rows, sum, err := parseNfdumpCSV(dim, body)
		if err != nil {
			return fmt.Errorf("[nfdump:%s]: %v", dim, err)
		}
		if sum != g.Total {
			return fmt.Errorf("[nfdump:%s]: summary %+v != nfdump -I %+v", dim, sum, g.Total)
		}
		if len(rows) > n {
			rows = rows[:n]
		}
		g.Top.set(dim, rows)
	}
	return nil
}

// parseNfdumpCSV parses `nfdump -s STAT -o csv` output: a header
// "ts,te,td,pr,val,fl,flP,pkt,pktP,byt,bytP,pps,bps,bpp", rows, a blank line,
// "Summary", "flows,bytes,packets,...", and the summary values.
func parseNfdumpCSV(dim, body string) ([]row, total, error) {
	var rows []row
	var sum total
	var col map[string]int
	lines := strings.Split(body, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if f[0] == "ts" {
			col = map[string]int{}
			for j, h := range f {
				col[h] = j
			}
			continue
		}
		if line == "Summary" {
			if i+2 >= len(lines) {
				return nil, sum, fmt.Errorf("truncated summary")
			}
			h := strings.Split(strings.TrimSpace(lines[i+1]), ",")
			v := strings.Split(strings.TrimSpace(lines[i+2]), ",")
			for j := range h {
				if j >= len(v) {
					break
				}
				x, err := atoi(v[j])
				if err != nil {
					continue
				}
				switch h[j] {
				case "flows":
					sum.Flows = x
				case "bytes":
					sum.Bytes = x
				case "packets":
					sum.Packets = x
				}
			}
			break
		}
		if col == nil {
			return nil, sum, fmt.Errorf("row before header: %q", line)
		}
		get := func(name string) string { return strings.TrimSpace(f[col[name]]) }
		var r row
		var err error
		if r.Flows, err = atoi(get("fl")); err != nil {
			return nil, sum, fmt.Errorf("%q: %v", line, err)
		}
		if r.Packets, err = atoi(get("pkt")); err != nil {
			return nil, sum, fmt.Errorf("%q: %v", line, err)
		}
		if r.Bytes, err = atoi(get("byt")); err != nil {
			return nil, sum, fmt.Errorf("%q: %v", line, err)
		}
		val := get("val")
		switch dim {
		case "srcip", "dstip", "ip":
			if r.Key, err = canonIP(val); err != nil {
				return nil, sum, fmt.Errorf("%q: %v", line, err)
			}
		case "srcport", "dstport":
			if _, err := atoi(val); err != nil {
				return nil, sum, fmt.Errorf("%q: port %v", line, err)
			}
			r.Key = val + "/" + protoName(get("pr"))
		case "proto":
			if _, err := atoi(val); err != nil {
				return nil, sum, fmt.Errorf("%q: proto %v", line, err)
			}
			r.Key = val
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, sum, fmt.Errorf("no rows")
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].Bytes > rows[i-1].Bytes {
			return nil, sum, fmt.Errorf("rows not sorted by bytes at %d", i)
		}
	}
	return rows, sum, nil
}

// ---- sfacctd ----

// parseSfacctdCSV parses a pmacct print-plugin CSV ("SRC_IP,PACKETS,BYTES",
// "DST_PORT,PROTOCOL,PACKETS,BYTES", "PROTOCOL,PACKETS,BYTES", ...) into
// key -> row (flows unset).
func parseSfacctdCSV(dim, body string) (map[string]*row, error) {
	m := map[string]*row{}
	var col map[string]int
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if col == nil {
			col = map[string]int{}
			for j, h := range f {
				col[strings.TrimSpace(h)] = j
			}
			continue
		}
		get := func(name string) (string, error) {
			j, ok := col[name]
			if !ok || j >= len(f) {
				return "", fmt.Errorf("no column %s in %q", name, line)
			}
			return strings.TrimSpace(f[j]), nil
		}
		var key string
		var err error
		switch dim {
		case "srcip", "dstip":
			name := "SRC_IP"
			if dim == "dstip" {
				name = "DST_IP"
			}
			v, err := get(name)
			if err != nil {
				return nil, err
			}
			if key, err = canonIP(v); err != nil {
				return nil, fmt.Errorf("%q: %v", line, err)
			}
		case "srcport", "dstport":
			name := "SRC_PORT"
			if dim == "dstport" {
				name = "DST_PORT"
			}
			p, err := get(name)
			if err != nil {
				return nil, err
			}
			pr, err := get("PROTOCOL")
			if err != nil {
				return nil, err
			}
			key = p + "/" + protoName(pr)
		case "proto":
			if key, err = get("PROTOCOL"); err != nil {
				return nil, err
			}
			if _, err := atoi(key); err != nil {
				return nil, fmt.Errorf("%q: protocol not numeric (print_num_protos?)", line)
			}
		}
		ps, err := get("PACKETS")
		if err != nil {
			return nil, err
		}
		bs, err := get("BYTES")
		if err != nil {
			return nil, err
		}
		p, err1 := atoi(ps)
		b, err2 := atoi(bs)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: bad counters", line)
		}
		r := m[key]
		if r == nil {
			r = &row{Key: key}
			m[key] = r
		}
		r.Packets += p
		r.Bytes += b
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("no rows")
	}
	return m, nil
}

func fromSfacctd(g *golden, secs map[string]string, n int) error {
	samples := int64(-1)
	if body, ok := secs["tshark:samples"]; ok {
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "flow_samples="); ok {
				x, err := atoi(v)
				if err != nil {
					return fmt.Errorf("[tshark:samples]: %v", err)
				}
				samples = x
			}
		}
	}
	if samples < 0 {
		return fmt.Errorf("no [tshark:samples] flow_samples=N")
	}
	live := map[string]map[string]*row{}
	off := map[string]map[string]*row{}
	for _, dim := range []string{"srcip", "dstip", "srcport", "dstport", "proto"} {
		for _, mode := range []string{"live", "offline"} {
			body, ok := secs["sfacctd:"+mode+":"+dim]
			if !ok {
				return fmt.Errorf("no [sfacctd:%s:%s] section", mode, dim)
			}
			m, err := parseSfacctdCSV(dim, body)
			if err != nil {
				return fmt.Errorf("[sfacctd:%s:%s]: %v", mode, dim, err)
			}
			if mode == "live" {
				live[dim] = m
			} else {
				off[dim] = m
			}
		}
	}
	// The live tables must be renormalized uniformly: one integer factor
	// (the sampling rate) between live and offline counters for every key.
	var rate int64
	for dim, m := range live {
		for k, r := range m {
			o := off[dim][k]
			if o == nil || o.Packets == 0 {
				return fmt.Errorf("%s: key %s missing offline", dim, k)
			}
			if rate == 0 {
				rate = r.Packets / o.Packets
			}
			if r.Packets != rate*o.Packets || r.Bytes != rate*o.Bytes {
				return fmt.Errorf("%s: key %s: live %d pkts %d bytes is not %d x offline %d pkts %d bytes (non-uniform renormalization)",
					dim, k, r.Packets, r.Bytes, rate, o.Packets, o.Bytes)
			}
		}
	}
	// flows = number of flow samples per key = offline (not renormalized)
	// packet count for the same key.
	for dim, m := range live {
		if len(m) != len(off[dim]) {
			return fmt.Errorf("%s: live has %d keys, offline %d", dim, len(m), len(off[dim]))
		}
		for k, r := range m {
			o := off[dim][k]
			if o == nil {
				return fmt.Errorf("%s: key %s missing offline", dim, k)
			}
			r.Flows = o.Packets
		}
	}
	// ip = every sample counted under its source and its destination
	// address (nfdump's -s ip semantics), from the srcip and dstip tables.
	ip := map[string]*row{}
	for _, dim := range []string{"srcip", "dstip"} {
		for k, r := range live[dim] {
			x := ip[k]
			if x == nil {
				x = &row{Key: k}
				ip[k] = x
			}
			x.Bytes += r.Bytes
			x.Packets += r.Packets
			x.Flows += r.Flows
		}
	}
	live["ip"] = ip
	for _, r := range live["proto"] {
		g.Total.Bytes += r.Bytes
		g.Total.Packets += r.Packets
		g.Total.Flows += r.Flows
	}
	if g.Total.Flows != samples {
		return fmt.Errorf("sfacctd offline counted %d samples, tshark %d", g.Total.Flows, samples)
	}
	for _, dim := range []string{"srcip", "dstip", "srcport", "dstport"} {
		var s total
		for _, r := range live[dim] {
			s.Bytes += r.Bytes
			s.Packets += r.Packets
			s.Flows += r.Flows
		}
		if s != g.Total {
			return fmt.Errorf("%s: sum %+v != proto total %+v", dim, s, g.Total)
		}
	}
	for _, dim := range dims {
		var rows []row
		for _, r := range live[dim] {
			rows = append(rows, *r)
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a.Bytes != b.Bytes {
				return a.Bytes > b.Bytes
			}
			if a.Packets != b.Packets {
				return a.Packets > b.Packets
			}
			return a.Key < b.Key
		})
		if len(rows) > n {
			rows = rows[:n]
		}
		g.Top.set(dim, rows)
	}
	return nil
}
