// Command build makes tmsd's embedded default GeoIP database: it merges an
// ip-location-db ASN CSV (start,end,asn,org) and country CSV (start,end,cc),
// IPv4 and IPv6, into one MaxMind DB whose records have the GeoLite2 shape
// (country.iso_code, autonomous_system_number, autonomous_system_organization),
// and writes it gzip-compressed. The same inputs give byte-identical output:
// the build time is a flag, the gzip header has no name and no time, and the
// tree is filled in address order. scripts/geoip-default.sh runs it.
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
)

func main() {
	var (
		asn4     = flag.String("asn4", "", "ASN CSV, IPv4 (start,end,asn,org)")
		asn6     = flag.String("asn6", "", "ASN CSV, IPv6")
		country4 = flag.String("country4", "", "country CSV, IPv4 (start,end,cc)")
		country6 = flag.String("country6", "", "country CSV, IPv6")
		epoch    = flag.Int64("epoch", 0, "build time written in the metadata, unix seconds (required: the output must not depend on the clock)")
		desc     = flag.String("description", "", "metadata description (en)")
		out      = flag.String("out", "", "output file (.mmdb.gz)")
		regions  = flag.String("regions", "", "write the Go table of English region names (golang.org/x/text) to this file, and only that")
	)
	flag.Parse()
	if *regions != "" {
		if err := writeRegions(*regions); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			os.Exit(1)
		}
		return
	}
	if *asn4 == "" || *asn6 == "" || *country4 == "" || *country6 == "" || *out == "" || *epoch <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	st, err := build(*asn4, *asn6, *country4, *country6, *epoch, *desc, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	fmt.Printf("rows: asn %d+%d, country %d+%d; overlaps clipped %d; merged ranges %d; networks %d, skipped (aliased) %d; %d bytes, %d gzipped\n",
		st.rows[0], st.rows[1], st.rows[2], st.rows[3], st.clipped, st.ranges, st.networks, st.aliased, st.raw, st.gz)
}

// u128 is an address as a number; IPv4 uses the low 32 bits.
type u128 struct{ hi, lo uint64 }

func (a u128) less(b u128) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func (a u128) add1() u128 {
	lo, c := bits.Add64(a.lo, 1, 0)
	return u128{a.hi + c, lo}
}

func (a u128) sub1() u128 {
	lo, b := bits.Sub64(a.lo, 1, 0)
	return u128{a.hi - b, lo}
}

func fromAddr(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var u u128
	for i := range 8 {
		u.hi = u.hi<<8 | uint64(b[i])
		u.lo = u.lo<<8 | uint64(b[8+i])
	}
	return u
}

func (a u128) addr(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{byte(a.lo >> 24), byte(a.lo >> 16), byte(a.lo >> 8), byte(a.lo)})
	}
	var b [16]byte
	for i := range 8 {
		b[i] = byte(a.hi >> (56 - 8*i))
		b[8+i] = byte(a.lo >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

// row is one inclusive range of a CSV and its value.
type row struct {
	start, end u128
	cc         string
	asn        uint32
	org        string
}

// readCSV reads start,end,value... rows of one family, in file order.
func readCSV(path string, v4, isASN bool) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	var rows []row
	for line := 1; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		want := 3
		if isASN {
			want = 4
		}
		if len(rec) != want {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(rec), want)
		}
		s, err1 := netip.ParseAddr(rec[0])
		e, err2 := netip.ParseAddr(rec[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if s.Is4() != v4 || e.Is4() != v4 {
			return nil, fmt.Errorf("%s:%d: wrong address family", path, line)
		}
		x := row{start: fromAddr(s), end: fromAddr(e)}
		if x.end.less(x.start) {
			return nil, fmt.Errorf("%s:%d: range ends before it starts", path, line)
		}
		if isASN {
			n, err := strconv.ParseUint(rec[2], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: AS number: %w", path, line, err)
			}
			x.asn, x.org = uint32(n), strings.TrimSpace(rec[3])
			if x.asn == 0 {
				continue
			}
		} else {
			x.cc = strings.ToUpper(strings.TrimSpace(rec[2]))
			if len(x.cc) != 2 || x.cc[0] < 'A' || x.cc[0] > 'Z' || x.cc[1] < 'A' || x.cc[1] > 'Z' {
				return nil, fmt.Errorf("%s:%d: country %q is not an ISO 3166 alpha-2 code", path, line, rec[2])
			}
		}
		rows = append(rows, x)
	}
}

// disjoint sorts rows by start and clips each that overlaps the next: the
// later range wins the overlap (the inputs are sorted and disjoint but for a
// stray row or two). It returns how many rows were clipped.
func disjoint(rows []row) ([]row, int) {
	slices.SortStableFunc(rows, func(a, b row) int {
		switch {
		case a.start.less(b.start):
			return -1
		case b.start.less(a.start):
			return 1
		}
		return 0
	})
	clipped := 0
	out := rows[:0]
	for _, r := range rows {
		for len(out) > 0 && !out[len(out)-1].end.less(r.start) {
			clipped++
			p := &out[len(out)-1]
			if p.start == r.start {
				out = out[:len(out)-1]
				continue
			}
			p.end = r.start.sub1()
		}
		out = append(out, r)
	}
	return out, clipped
}

// merged is a range with both values; the ranges come in address order.
type merged struct {
	start, end u128
	cc         string
	asn        uint32
	org        string
}

// merge overlays two disjoint sorted lists into disjoint ranges carrying the
// country of one and the AS of the other, joining neighbours of equal value.
func merge(cc, as []row) []merged {
	maxU := u128{^uint64(0), ^uint64(0)}
	// Every point where a value may change: the starts and the ends + 1.
	points := make([]u128, 0, 2*(len(cc)+len(as)))
	for _, l := range [][]row{cc, as} {
		for _, r := range l {
			points = append(points, r.start)
			if r.end != maxU {
				points = append(points, r.end.add1())
			}
		}
	}
	slices.SortFunc(points, func(a, b u128) int {
		switch {
		case a.less(b):
			return -1
		case b.less(a):
			return 1
		}
		return 0
	})
	points = slices.Compact(points)
	var out []merged
	i, j := 0, 0
	for k, p := range points {
		end := maxU
		if k+1 < len(points) {
			end = points[k+1].sub1()
		}
		for i < len(cc) && cc[i].end.less(p) {
			i++
		}
		for j < len(as) && as[j].end.less(p) {
			j++
		}
		m := merged{start: p, end: end}
		if i < len(cc) && !p.less(cc[i].start) {
			m.cc = cc[i].cc
		}
		if j < len(as) && !p.less(as[j].start) {
			m.asn, m.org = as[j].asn, as[j].org
		}
		if m.cc == "" && m.asn == 0 {
			continue
		}
		if n := len(out); n > 0 {
			q := &out[n-1]
			if q.cc == m.cc && q.asn == m.asn && q.org == m.org && q.end.add1() == m.start {
				q.end = m.end
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// prefixes splits an inclusive range into CIDR blocks, in order.
func prefixes(start, end u128, v4 bool) []netip.Prefix {
	width := 128
	if v4 {
		width = 32
	}
	var out []netip.Prefix
	for {
		// The largest block aligned at start that ends at or before end.
		tz := width
		if start.lo != 0 {
			tz = bits.TrailingZeros64(start.lo)
		} else if start.hi != 0 {
			tz = 64 + bits.TrailingZeros64(start.hi)
		}
		tz = min(tz, width)
		k := tz
		for ; k > 0; k-- {
			if !end.less(blockEnd(start, k)) {
				break
			}
		}
		out = append(out, netip.PrefixFrom(start.addr(v4), width-k))
		last := blockEnd(start, k)
		if last == end {
			return out
		}
		start = last.add1()
	}
}

// blockEnd is the last address of the 2^k block starting at s (s aligned).
func blockEnd(s u128, k int) u128 {
	switch {
	case k == 0:
		return s
	case k < 64:
		return u128{s.hi, s.lo | (1<<k - 1)}
	case k == 64:
		return u128{s.hi, ^uint64(0)}
	case k < 128:
		return u128{s.hi | (1<<(k-64) - 1), ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

type stats struct {
	rows                      [4]int
	clipped, ranges, networks int
	aliased                   int
	raw, gz                   int64
}

func build(asn4, asn6, country4, country6 string, epoch int64, desc, out string) (stats, error) {
	var st stats
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		BuildEpoch:   epoch,
		DatabaseType: "tmsd-Country-ASN",
		Description:  map[string]string{"en": desc},
		Languages:    []string{"en"},
		// The sources' data is kept whole: tmsd names the special ranges
		// itself before it looks an address up.
		IncludeReservedNetworks: true,
		RecordSize:              28,
	})
	if err != nil {
		return st, err
	}
	values := map[merged]mmdbtype.Map{}
	for _, fam := range []struct {
		v4        bool
		asn, cc   string
		asnN, ccN *int
	}{{true, asn4, country4, &st.rows[0], &st.rows[2]}, {false, asn6, country6, &st.rows[1], &st.rows[3]}} {
		as, err := readCSV(fam.asn, fam.v4, true)
		if err != nil {
			return st, err
		}
		cc, err := readCSV(fam.cc, fam.v4, false)
		if err != nil {
			return st, err
		}
		*fam.asnN, *fam.ccN = len(as), len(cc)
		as, n1 := disjoint(as)
		cc, n2 := disjoint(cc)
		st.clipped += n1 + n2
		ranges := merge(cc, as)
		st.ranges += len(ranges)
		for _, m := range ranges {
			key := merged{cc: m.cc, asn: m.asn, org: m.org}
			v, ok := values[key]
			if !ok {
				v = mmdbtype.Map{}
				if m.cc != "" {
					v["country"] = mmdbtype.Map{"iso_code": mmdbtype.String(m.cc)}
				}
				if m.asn != 0 {
					v["autonomous_system_number"] = mmdbtype.Uint32(m.asn)
					if m.org != "" {
						v["autonomous_system_organization"] = mmdbtype.String(m.org)
					}
				}
				values[key] = v
			}
			for _, p := range prefixes(m.start, m.end, fam.v4) {
				err := tree.Insert(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, v)
				var alias *mmdbwriter.AliasedNetworkError
				if errors.As(err, &alias) {
					// 2001::/32 and 2002::/16 point at the IPv4 tree, as in
					// MaxMind's databases.
					st.aliased++
					continue
				}
				if err != nil {
					return st, fmt.Errorf("inserting %s: %w", p, err)
				}
				st.networks++
			}
		}
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return st, err
	}
	defer os.Remove(tmp)
	cw := &counter{w: f}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestCompression)
	if err != nil {
		return st, err
	}
	// gzip.Header's zero value: no name, no comment, mtime 0.
	n, err := tree.WriteTo(zw)
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err != nil {
		return st, err
	}
	st.raw, st.gz = n, cw.n
	return st, os.Rename(tmp, out)
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeRegions writes regions.go: the English names golang.org/x/text
// (CLDR) gives the two-letter region codes. Generated once rather than
// linked in: x/text's display tables weigh 2.5 MB in the binary for
// these ~280 names.
func writeRegions(path string) error {
	var b strings.Builder
	b.WriteString("// Code generated by go run ./internal/enrich/geoip/build -regions internal/enrich/geoip/regions.go; DO NOT EDIT.\n\n")
	b.WriteString("package geoip\n\n")
	b.WriteString("// regionTable is the English names of the region codes, from golang.org/x/text/language/display (CLDR).\n")
	b.WriteString("var regionTable = map[[2]byte]string{\n")
	namer := display.English.Regions()
	for a := byte('A'); a <= 'Z'; a++ {
		for c := byte('A'); c <= 'Z'; c++ {
			code := string([]byte{a, c})
			r, err := language.ParseRegion(code)
			if err != nil || code == "ZZ" {
				continue
			}
			if name := namer.Name(r); name != "" {
				fmt.Fprintf(&b, "\t{'%c', '%c'}: %s,\n", a, c, strconv.Quote(name))
			}
		}
	}
	b.WriteString("}\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
