package main

import (
	"fmt"
	"math"
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
	// key is the tier's key in the error: none in the scalar form.
	set := func(tier, key string, v *yaml.Node) error {
		var d Duration
		if err := d.UnmarshalYAML(v); err != nil {
			return keyError(v, key, "%s", err.(*configLineError).msg)
		}
		if d <= 0 {
			return keyError(v, key, "want a duration > 0, got %q", v.Value)
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
		return set("minute", "", n)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Value != "minute" && k.Value != "hour" && k.Value != "day" {
				return keyError(k, k.Value, "unknown key: retention takes minute, hour, day")
			}
			if err := set(k.Value, k.Value, n.Content[i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	return lineError(n, "want a duration (the minute tier) or a mapping of minute, hour and day durations, got %s", shown(n))
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
// and the flags are read (Config.check). Each error names the key the user
// set among those the rule relates (configSource.pick), so that a default
// derived from another key is never the one blamed. The retentions are
// checked only for serving: `tmsd import` may keep its minutes as briefly as
// it likes (a later serve on the same configuration would refuse it).
func (c *Config) checkTiers(src configSource, serving bool) error {
	rc := c.rollupConfiguration()
	delay, minute, hour := Duration(rc.Delay), c.Retention.Minute, c.Retention.Hour
	delayKeys := []string{"rollup.delay", "aggregate.grace", "aggregate.max_age"}
	switch {
	case rc.HourTopK < c.Aggregate.TopK:
		k := src.pick("rollup.hour_top_k", "aggregate.top_k")
		return src.errorf(k, "%s must be at least %s: an hour keeps at least what a minute keeps",
			about(k, "rollup.hour_top_k", rc.HourTopK), about("", "aggregate.top_k", c.Aggregate.TopK))
	case rc.DayTopK < rc.HourTopK:
		k := src.pick("rollup.day_top_k", "rollup.hour_top_k", "aggregate.top_k")
		return src.errorf(k, "%s must be at least %s: a day keeps at least what an hour keeps",
			about(k, "rollup.day_top_k", rc.DayTopK), about("", "rollup.hour_top_k", rc.HourTopK))
	case rc.Delay < time.Duration(c.Aggregate.Grace):
		k := src.pick("rollup.delay", "aggregate.grace")
		return src.errorf(k, "%s must be at least %s: an hour's last minute is written only after its grace",
			about(k, "rollup.delay", delay), about("", "aggregate.grace", c.Aggregate.Grace))
	case serving && time.Duration(minute) <= time.Hour+rc.Delay:
		k := src.pick(append([]string{"retention.minute"}, delayKeys...)...)
		return src.errorf(k, "%s must be longer than an hour plus %s: minutes must outlive their hour's rollup",
			about(k, "retention.minute", minute), about("", "rollup.delay", delay))
	case serving && time.Duration(hour) <= 24*time.Hour+rc.Delay:
		k := src.pick(append([]string{"retention.hour"}, delayKeys...)...)
		return src.errorf(k, "%s must be longer than a day plus %s: hours must outlive their day's rollup",
			about(k, "retention.hour", hour), about("", "rollup.delay", delay))
	case rc.MaxDisk > 0 && rc.MaxDisk < rollup.MinMaxDisk():
		// In whole MB, rounded up, as the user would write it back.
		smallest := (rollup.MinMaxDisk() + 999_999) / 1_000_000
		return src.errorf("store.max_disk", "%s is too small: Badger's working files (memtable logs, level-0 tables, value log file) may take %s "+
			"however little the store holds, and the cap evicts down to 90%% of itself; the smallest cap that works is %dMB",
			sizeText(rc.MaxDisk), humanBytes(uint64(store.WorkingDisk())), smallest)
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

// locate is the line of the value at keys in a YAML document (0: not there),
// a list's element given by its index, and how many of the keys it followed:
// fewer than all when it met a scalar (retention: 14d holds retention.minute).
func locate(doc *yaml.Node, keys ...string) (line, depth int) {
	if doc == nil {
		return 0, 0
	}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for i, k := range keys {
		var next *yaml.Node
		switch n.Kind {
		case yaml.ScalarNode:
			if i > 0 && n.ShortTag() != "!!null" {
				return n.Line, i
			}
			return 0, 0
		case yaml.MappingNode:
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == k {
					next = n.Content[j+1]
				}
			}
		case yaml.SequenceNode:
			if idx, err := strconv.Atoi(k); err == nil && idx >= 0 && idx < len(n.Content) {
				next = n.Content[idx]
			}
		}
		if next == nil {
			return 0, 0
		}
		n = next
	}
	return n.Line, len(keys)
}
