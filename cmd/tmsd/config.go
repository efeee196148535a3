package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/apps"
)

// Config is tmsd's configuration file (YAML). Flags override it.
type Config struct {
	NetFlow   []string  `yaml:"netflow"`
	SFlow     []string  `yaml:"sflow"`
	HTTP      string    `yaml:"http"`
	Data      string    `yaml:"data"`
	Retention Retention `yaml:"retention"`
	LogLevel  string    `yaml:"log_level"`
	RingSize  int       `yaml:"ring_size"`
	// MemoryLimit caps the process: the Go runtime gets 85% of it as its soft limit (0: none; GOMEMLIMIT wins).
	MemoryLimit ByteSize      `yaml:"memory_limit"`
	Apps        []AppRule     `yaml:"apps"`
	Sampling    SamplingRates `yaml:"sampling"`
	Rollup      RollupConfig  `yaml:"rollup"`
	Listener    struct {
		Sockets       int `yaml:"sockets"`
		ReceiveBuffer int `yaml:"receive_buffer"`
		BatchSize     int `yaml:"batch_size"`

		Allow []Prefix `yaml:"allow"` // exporters that may send; empty = any
	} `yaml:"listener"`
	Aggregate struct {
		Shards    int      `yaml:"shards"`
		TopK      int      `yaml:"top_k"`
		MaxKeys   int      `yaml:"max_keys"`
		MaxMemory ByteSize `yaml:"max_memory"`
		Grace     Duration `yaml:"grace"`
		MaxAge    Duration `yaml:"max_age"`
		// CheckpointInterval bounds what a crash loses; 0 disables checkpoints.
		CheckpointInterval CheckpointInterval `yaml:"checkpoint_interval"`
		// ScopeInterface keeps tables per exporter interface and direction.
		ScopeInterface bool `yaml:"scope_interface"`
		// DrillDowns: drill-down tables for each minute's top N apps and addresses; 0 = off.
		DrillDowns DrillDowns `yaml:"drill_downs"`
	} `yaml:"aggregate"`
	API    APIConfig    `yaml:"api"`    // tokens, TLS, query caps: security.go
	Decode DecodeConfig `yaml:"decode"` // limits, hold, saved templates: config_decode.go
	Store  struct {
		// MinFreeSpace: below it the store stops writing (minutes wait in memory).
		MinFreeSpace ByteCount `yaml:"min_free_space"`
		// MaxDisk caps the store's size, evicting the oldest rolled-up data; 0: no cap (tiers.go).
		MaxDisk ByteSize `yaml:"max_disk"`
	} `yaml:"store"`
}

func defaultConfig() Config {
	var c Config
	c.NetFlow = []string{":2055"}
	c.SFlow = []string{":6343"}
	c.HTTP = ":8080"
	c.Data = "./data"
	c.Retention = defaultRetention()
	c.LogLevel = "info"
	c.RingSize = 1 << 18 // 262,144 records, 35 MB: a quarter second at 1M flows/s
	c.MemoryLimit = 1 << 30
	c.Listener.ReceiveBuffer = 32 << 20
	c.Listener.BatchSize = 64
	c.Aggregate.TopK = 1000
	c.Aggregate.MaxKeys = 200_000
	c.Aggregate.MaxMemory = 512 << 20
	c.Aggregate.Grace = Duration(time.Minute)
	c.Aggregate.MaxAge = Duration(time.Hour)
	c.API = defaultAPIConfig()
	c.Decode = defaultDecodeConfig()
	c.Aggregate.CheckpointInterval = CheckpointInterval(10 * time.Second)
	c.Aggregate.ScopeInterface = false // opt-in: costly with many interface pairs (aggregate.Configuration.ScopeInterface)
	c.Aggregate.DrillDowns = 0         // opt-in: about 3x the per-flow cost (aggregate.Configuration.DrillDowns)
	c.Store.MinFreeSpace = 512 << 20
	return c
}

// Duration is a time.Duration written as "90s", "15m", "1h" or "14d".
type Duration time.Duration

// UnmarshalYAML parses a duration, with its line in the error.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := api.ParseDuration(n.Value)
	if err != nil {
		return lineError(n, "bad duration %q: use 90s, 15m, 1h or 14d", n.Value)
	}
	*d = Duration(v)
	return nil
}

// DrillDowns is how many of each minute's top applications and addresses get
// drill-down tables: 0 (off) to 10000. Each is a scope of a few tables a minute,
// so the bound keeps a typo from writing a million scopes a minute.
type DrillDowns int

// UnmarshalYAML parses and bounds the count, with its line in the error.
func (d *DrillDowns) UnmarshalYAML(n *yaml.Node) error {
	var v int
	if err := n.Decode(&v); err != nil || v < 0 || v > 10000 {
		return lineError(n, "drill_downs %s: use a whole number from 0 (off) to 10000", n.Value)
	}
	*d = DrillDowns(v)
	return nil
}

// CheckpointInterval is a Duration of 0 (checkpoints off) or 1s to 1h: more
// often would rewrite the open minutes for little gain, less often is not a bound.
type CheckpointInterval Duration

// UnmarshalYAML parses and bounds the interval, with its line in the error.
func (c *CheckpointInterval) UnmarshalYAML(n *yaml.Node) error {
	var d Duration
	if err := d.UnmarshalYAML(n); err != nil {
		return err
	}
	if d != 0 && (time.Duration(d) < time.Second || time.Duration(d) > time.Hour) {
		return lineError(n, "checkpoint_interval %s: use 0 (off) or 1s to 1h", n.Value)
	}
	*c = CheckpointInterval(d)
	return nil
}

// MarshalYAML writes the interval as the file takes it (GET /api/v1/config).
func (c CheckpointInterval) MarshalYAML() (any, error) { return Duration(c).MarshalYAML() }

// ByteCount is a number of bytes, never negative.
type ByteCount int64

// UnmarshalYAML parses the count, with its line in the error.
func (b *ByteCount) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil || v < 0 {
		return lineError(n, "%q is not a number of bytes >= 0", n.Value)
	}
	*b = ByteCount(v)
	return nil
}

// AppRule is one user application rule, "NAME = CIDR… PROTO/PORT…".
type AppRule struct{ apps.Rule }

// UnmarshalYAML parses and validates the rule, with its line in the error.
func (r *AppRule) UnmarshalYAML(n *yaml.Node) error {
	rule, err := apps.ParseRule(n.Value)
	if err != nil {
		return lineError(n, "app rule %q: %v", n.Value, err)
	}
	r.Rule = rule
	return nil
}

// SamplingRates overrides the sampling rate per exporter address.
type SamplingRates map[netip.Addr]uint32

// UnmarshalYAML reads "ADDRESS: RATE" pairs, with the line of a bad one in the error.
func (s *SamplingRates) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return lineError(n, "sampling must map exporter addresses to rates")
	}
	out := SamplingRates{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		addr, err := netip.ParseAddr(k.Value)
		if err != nil {
			return lineError(k, "sampling: %q is not an exporter IP address", k.Value)
		}
		rate, err := strconv.ParseUint(v.Value, 10, 32)
		if err != nil || rate == 0 {
			return lineError(v, "sampling: rate for %s must be a whole number >= 1, got %q", k.Value, v.Value)
		}
		out[addr.Unmap()] = uint32(rate)
	}
	*s = out
	return nil
}

type configLineError struct {
	line int
	msg  string
}

func (e *configLineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

func lineError(n *yaml.Node, format string, args ...any) error {
	return &configLineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// loadConfig reads the YAML file over the defaults. Every error names the file
// and, where there is one, the line: "tmsd.yaml:7: field foo not found".
func loadConfig(path string, cfg *Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(cfg)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var le *configLineError
	if errors.As(err, &le) {
		return fmt.Errorf("%s:%d: %s", path, le.line, le.msg)
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, 0, len(te.Errors))
		for _, m := range te.Errors {
			if g := yamlLine.FindStringSubmatch(m); g != nil {
				m = path + ":" + g[1] + ": " + strings.Replace(g[2], " in type main.Config", "", 1)
			} else {
				m = path + ": " + m
			}
			msgs = append(msgs, m)
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	if g := yamlLine.FindStringSubmatch(err.Error()); g != nil {
		return fmt.Errorf("%s:%s: %s", path, g[1], g[2])
	}
	return fmt.Errorf("%s: %w", path, err)
}
