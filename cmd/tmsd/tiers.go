package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/internal/rollup"
	"github.com/tmsd/tmsd/internal/store"
)

// Retention is how long each tier is kept, written `retention: {minute: 14d,
// hour: 400d, day: 1825d}`. The scalar form `retention: 14d`, from before the
// hour and day tiers, sets the minute tier and leaves the others at their defaults.
type Retention struct {
	Minute, Hour, Day Duration
}

func defaultRetention() Retention {
	return Retention{
		Minute: Duration(14 * 24 * time.Hour),
		Hour:   Duration(400 * 24 * time.Hour),
		Day:    Duration(1825 * 24 * time.Hour),
	}
}

// MarshalYAML writes the per-tier form (GET /api/v1/config shows it).
func (r Retention) MarshalYAML() (any, error) {
	return map[string]Duration{"minute": r.Minute, "hour": r.Hour, "day": r.Day}, nil
}

// UnmarshalYAML reads the scalar or the per-tier form, with the line of a bad value in the error.
func (r *Retention) UnmarshalYAML(n *yaml.Node) error {
	set := func(tier string, v *yaml.Node) error {
		var d Duration
		if err := d.UnmarshalYAML(v); err != nil {
			return err
		}
		if d <= 0 {
			return lineError(v, "retention.%s must be positive, got %q", tier, v.Value)
		}
		switch tier {
		case "minute":
			r.Minute = d
		case "hour":
			r.Hour = d
		case "day":
			r.Day = d
		}
		return nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		return set("minute", n)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value != "minute" && k.Value != "hour" && k.Value != "day" {
				return lineError(k, "retention: unknown tier %q (minute, hour or day)", k.Value)
			}
			if err := set(k.Value, n.Content[i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	return lineError(n, "retention must be a duration (the minute tier) or a map of minute, hour and day durations")
}

// ByteSize is a size in bytes, written as a number of bytes or with a unit:
// 500MB, 50GiB, 1.5TB.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func parseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := 1.0
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*mult >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size")
	}
	return ByteSize(f * mult), nil
}

// UnmarshalYAML parses a size, with its line in the error.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseByteSize(n.Value)
	if err != nil {
		return lineError(n, "bad size %q: use bytes or a unit such as 500MB or 50GiB", n.Value)
	}
	*b = v
	return nil
}

// RollupConfig is the `rollup:` section. A key left out (or 0) takes a
// default that follows the aggregator's settings.
type RollupConfig struct {
	HourTopK int      `yaml:"hour_top_k,omitempty"` // default 2 × aggregate.top_k
	DayTopK  int      `yaml:"day_top_k,omitempty"`  // default hour_top_k
	Delay    Duration `yaml:"delay,omitempty"`      // default aggregate.grace + aggregate.max_age + 5m
}

// UnmarshalYAML decodes the section, refusing unknown keys (a custom
// unmarshaler does not inherit the decoder's KnownFields).
func (r *RollupConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return lineError(n, "rollup must be a map of hour_top_k, day_top_k and delay")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "hour_top_k":
			err = v.Decode(&r.HourTopK)
		case "day_top_k":
			err = v.Decode(&r.DayTopK)
		case "delay":
			err = r.Delay.UnmarshalYAML(v)
		default:
			return lineError(k, "field %s not found in rollup (hour_top_k, day_top_k, delay)", k.Value)
		}
		if err != nil {
			if _, ok := err.(*configLineError); ok {
				return err
			}
			return lineError(v, "rollup.%s: %q is not a whole number", k.Value, v.Value)
		}
	}
	return nil
}

// rollupConfiguration is the rollup component's configuration, defaults filled in.
func (c *Config) rollupConfiguration() rollup.Configuration {
	rc := rollup.DefaultConfiguration()
	rc.HourTopK = 2 * c.Aggregate.TopK
	if c.Rollup.HourTopK != 0 {
		rc.HourTopK = c.Rollup.HourTopK
	}
	rc.DayTopK = rc.HourTopK
	if c.Rollup.DayTopK != 0 {
		rc.DayTopK = c.Rollup.DayTopK
	}
	rc.Delay = time.Duration(c.Aggregate.Grace+c.Aggregate.MaxAge) + 5*time.Minute
	if c.Rollup.Delay != 0 {
		rc.Delay = time.Duration(c.Rollup.Delay)
	}
	rc.MaxDisk = int64(c.Store.MaxDisk)
	return rc
}

// checkTiers checks what the tiers need of the other settings, once the file
// and the flags are read. A value from the file is named by FILE:LINE, one
// from a flag (retentionFlag: --retention was given) or a default by its name.
// The retentions are checked only for serving: `tmsd import` may keep its
// minutes as briefly as it likes (a later serve on the same configuration
// would refuse it).
func (c *Config) checkTiers(path string, serving, retentionFlag bool) error {
	var doc yaml.Node
	if path != "" {
		if data, err := os.ReadFile(path); err == nil {
			_ = yaml.Unmarshal(data, &doc) // it decoded once already
		}
	}
	where := func(name string, keys ...string) string {
		if l := lineOf(&doc, keys...); l > 0 {
			return fmt.Sprintf("%s:%d: %s", path, l, name)
		}
		return name
	}
	rc := c.rollupConfiguration()
	switch {
	case rc.HourTopK < c.Aggregate.TopK:
		return fmt.Errorf("%s (%d) must be at least aggregate.top_k (%d): an hour keeps at least what a minute keeps",
			where("rollup.hour_top_k", "rollup", "hour_top_k"), rc.HourTopK, c.Aggregate.TopK)
	case rc.DayTopK < rc.HourTopK:
		return fmt.Errorf("%s (%d) must be at least rollup.hour_top_k (%d): a day keeps at least what an hour keeps",
			where("rollup.day_top_k", "rollup", "day_top_k"), rc.DayTopK, rc.HourTopK)
	case rc.Delay < time.Duration(c.Aggregate.Grace):
		return fmt.Errorf("%s (%s) must be at least aggregate.grace (%s): an hour's last minute is written only after its grace",
			where("rollup.delay", "rollup", "delay"), rc.Delay, time.Duration(c.Aggregate.Grace))
	case serving && time.Duration(c.Retention.Minute) <= time.Hour+rc.Delay:
		return fmt.Errorf("%s (%s) must be longer than an hour plus rollup.delay (%s): minutes must outlive their hour's rollup",
			c.retentionWhere(where, "minute", retentionFlag), time.Duration(c.Retention.Minute), time.Hour+rc.Delay)
	case serving && time.Duration(c.Retention.Hour) <= 24*time.Hour+rc.Delay:
		return fmt.Errorf("%s (%s) must be longer than a day plus rollup.delay (%s): hours must outlive their day's rollup",
			c.retentionWhere(where, "hour", false), time.Duration(c.Retention.Hour), 24*time.Hour+rc.Delay)
	case rc.MaxDisk > 0 && rc.MaxDisk < rollup.MinMaxDisk():
		// In whole MB, rounded up, as the user would write it back.
		smallest := (rollup.MinMaxDisk() + 999_999) / 1_000_000
		return fmt.Errorf("%s (%s) is too small: Badger's working files (memtable logs, level-0 tables, value log file) may take %s "+
			"however little the store holds, and the cap evicts down to 90%% of itself; the smallest cap that works is %dMB",
			where("store.max_disk", "store", "max_disk"), sizeText(rc.MaxDisk), humanBytes(uint64(store.WorkingDisk())), smallest)
	}
	return nil
}

// sizeText writes a configured size back in the unit it was most likely
// given in: 100MB, 64MiB, else bytes.
func sizeText(b int64) string {
	switch {
	case b%1_000_000 == 0:
		return fmt.Sprintf("%dMB", b/1_000_000)
	case b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b%1000 == 0:
		return fmt.Sprintf("%dKB", b/1000)
	}
	return fmt.Sprintf("%d bytes", b)
}

// retentionWhere names a tier's retention for an error: the flag when it set
// it, the file's line when it did (in the scalar form for the minute tier),
// else the key.
func (c *Config) retentionWhere(where func(name string, keys ...string) string, tier string, flag bool) string {
	name := "retention." + tier
	if flag {
		return "--retention"
	}
	if w := where(name, "retention", tier); w != name {
		return w
	}
	if tier == "minute" {
		return where(name, "retention")
	}
	return name
}

// lineOf is the line of the value at keys in a YAML document (0: not there).
// The checks across sections use it, so that the Config stays a plain value.
func lineOf(doc *yaml.Node, keys ...string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, k := range keys {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return n.Line
}
