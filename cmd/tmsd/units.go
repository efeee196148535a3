package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Human units for the CLI's tables: rates in SI (1 Gbps = 10⁹ bit/s, as
// links are sold), volumes in IEC (1 GiB = 2³⁰ bytes, as disks and tools
// count), each with three significant digits.

var siPrefixes = []string{"", "k", "M", "G", "T", "P", "E"}

// humanRate renders a rate: 1234567890, "bps" → "1.23 Gbps".
func humanRate(v float64, unit string) string {
	return human(v, 1000, siPrefixes, unit)
}

// humanBytes renders a volume: 1610612736 → "1.50 GiB".
func humanBytes(v uint64) string {
	return human(float64(v), 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}, "")
}

func human(v, base float64, prefixes []string, unit string) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	i := 0
	// Up a prefix at 999.5, not at base: 999.6 would round to a four-digit
	// "1000", and 1010 KiB reads better as 0.99 MiB.
	for v >= 999.5 && i < len(prefixes)-1 {
		v /= base
		i++
	}
	s := sig3(v)
	if i == 0 {
		s = fmt.Sprintf("%.0f", v) // whole bits, packets and bytes
	}
	return sign + s + " " + prefixes[i] + unit
}

// sig3 is v with three significant digits (v < 1000).
func sig3(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// String writes the duration as the configuration does, and as short:
// 14d, 90s, 1h6m (not 336h0m0s or 1h6m0s), for errors about it.
func (d Duration) String() string {
	v := time.Duration(d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// humanShare renders a share 0..1 as a percentage.
func humanShare(v float64) string { return fmt.Sprintf("%.1f%%", v*100) }

// humanDelta renders a change in %, signed; nil (from zero) is "new".
func humanDelta(v *float64) string {
	if v == nil {
		return "new"
	}
	if math.Abs(*v) < 0.05 {
		return "0.0%"
	}
	return fmt.Sprintf("%+.1f%%", *v)
}

// alignTable pads columns: the first left-aligned, the others right-aligned.
func alignTable(rows [][]string) string {
	width := map[int]int{}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
