package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/aggregate"
	"github.com/tmsd/tmsd/internal/alerts"
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
	// MemoryLimit caps the process: the Go runtime gets 80% of it as its soft limit (0: none; GOMEMLIMIT wins).
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
	// Enrichment (config_enrich.go): countries and ASes, exporter and interface names.
	GeoIP      GeoIPConfig    `yaml:"geoip"`
	Exporters  ExporterNames  `yaml:"exporters"`
	Interfaces InterfaceNames `yaml:"interfaces"`
	Naming     NamingConfig   `yaml:"naming"`
	SNMP       SNMPConfig     `yaml:"snmp"`
	// Alerts (config_alerts.go): rules and notification targets.
	Alerts AlertsConfig `yaml:"alerts"`
	// Role and Kafka (config_kafka.go): one process, or collectors and
	// aggregators with Kafka between them.
	Role  string      `yaml:"role"`
	Kafka KafkaConfig `yaml:"kafka"`
	Store struct {
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
	c.Alerts.HistoryRetention = Duration(alerts.DefaultConfiguration().HistoryRetention)
	c.Aggregate.MaxAge = Duration(time.Hour)
	c.API = defaultAPIConfig()
	c.Decode = defaultDecodeConfig()
	c.Aggregate.CheckpointInterval = CheckpointInterval(10 * time.Second)
	agg := aggregate.DefaultConfiguration()
	c.Aggregate.ScopeInterface = agg.ScopeInterface
	c.Aggregate.DrillDowns = DrillDowns(agg.DrillDowns)
	c.Store.MinFreeSpace = 512 << 20
	c.GeoIP = defaultGeoIPConfig()
	c.Naming = defaultNamingConfig()
	c.SNMP = defaultSNMPConfig()
	c.Role = roleAll
	c.Kafka = defaultKafkaConfig()
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
		return lineError(n, "want a whole number from 0 (off) to 10000, got %q", n.Value)
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
		return lineError(n, "want 0 (off) or 1s to 1h, got %s", n.Value)
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
		return lineError(n, "%v", err) // ParseRule's error quotes the rule
	}
	r.Rule = rule
	return nil
}

// SamplingRates overrides the sampling rate per exporter address.
type SamplingRates map[netip.Addr]uint32

// UnmarshalYAML reads "ADDRESS: RATE" pairs, with the line of a bad one in the error.
func (s *SamplingRates) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return lineError(n, "want a mapping of exporter addresses to rates, got %s", shown(n))
	}
	out := SamplingRates{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		addr, err := netip.ParseAddr(k.Value)
		if err != nil {
			return lineError(k, "%q is not an exporter IP address", k.Value)
		}
		rate, err := strconv.ParseUint(v.Value, 10, 32)
		if err != nil || rate == 0 {
			return lineError(v, "the rate for %s must be a whole number >= 1, got %q", k.Value, v.Value)
		}
		out[addr.Unmap()] = uint32(rate)
	}
	*s = out
	return nil
}

// configLineError is a bad value at a line of the file. key is the key
// within the node that failed, when the node's unmarshaler knows it (a
// retention tier): decodeValue puts the path of the node in front.
type configLineError struct {
	line     int
	key, msg string
}

func (e *configLineError) Error() string {
	if e.key == "" {
		return fmt.Sprintf("line %d: %s", e.line, e.msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.line, e.key, e.msg)
}

func lineError(n *yaml.Node, format string, args ...any) error {
	return &configLineError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

// keyError is a lineError about the key sub of the node.
func keyError(n *yaml.Node, sub, format string, args ...any) error {
	return &configLineError{line: n.Line, key: sub, msg: fmt.Sprintf(format, args...)}
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	if key == "" {
		return path
	}
	return path + "." + key
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// loadConfig reads the YAML file over the defaults and returns its document,
// for Config.check to name the line of a value. Every error is
// "FILE:LINE: KEY: reason", KEY as the file writes it ("aggregate.top_k").
func loadConfig(path string, cfg *Config) (*yaml.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		if g := yamlLine.FindStringSubmatch(err.Error()); g != nil {
			return nil, fmt.Errorf("%s:%s: %s", path, g[1], g[2])
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return &doc, nil // an empty file: the defaults
	}
	if err := decodeValue(doc.Content[0], reflect.ValueOf(cfg).Elem(), ""); err != nil {
		var le *configLineError
		if errors.As(err, &le) {
			if le.key == "" {
				return nil, fmt.Errorf("%s:%d: %s", path, le.line, le.msg)
			}
			return nil, fmt.Errorf("%s:%d: %s: %s", path, le.line, le.key, le.msg)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &doc, nil
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	secretType      = reflect.TypeFor[interface{ secret() }]()
)

// decodeValue decodes n into v, the value of the key path. It walks the
// structs and lists itself, so that every error names the key of the value
// that failed (yaml's own say "cannot unmarshal !!str into int" and name a
// field's Go type) and a key the Config does not have is refused at every
// level (Node.Decode does not apply the decoder's KnownFields). The values
// themselves are decoded by yaml and the types' UnmarshalYAML.
func decodeValue(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	custom := v.Addr().Type().Implements(unmarshalerType)
	switch {
	case !custom && v.Kind() == reflect.Struct:
		return decodeStruct(n, v, path)
	case !custom && v.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decodeValue(e, out.Index(i), path); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case !custom && v.Kind() == reflect.Slice && n.ShortTag() != "!!null":
		if reflect.PointerTo(v.Type().Elem()).Implements(secretType) {
			return keyError(n, path, "want a list (the value is not shown here: it may be a secret)")
		}
		return keyError(n, path, "want a list, got %s", shown(n))
	}
	err := n.Decode(v.Addr().Interface())
	var le *configLineError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le):
		return &configLineError{line: le.line, key: joinKey(path, le.key), msg: le.msg}
	}
	return keyError(n, path, "want %s, got %s", describe(v.Type()), shown(n))
}

// decodeStruct decodes a mapping into the struct v, over the values it holds.
func decodeStruct(n *yaml.Node, v reflect.Value, path string) error {
	if n.ShortTag() == "!!null" {
		return nil // "aggregate:" with nothing under it: the defaults
	}
	fields := map[string][]int{} // key → field index path (an inline struct's fields are its own)
	var names []string
	var walk func(t reflect.Type, at []int)
	walk = func(t reflect.Type, at []int) {
		for i := range t.NumField() {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
			path := append(append([]int(nil), at...), i)
			if len(tag) > 1 && tag[1] == "inline" && t.Field(i).Type.Kind() == reflect.Struct {
				walk(t.Field(i).Type, path)
			} else if name := tag[0]; name != "" && name != "-" {
				fields[name] = path
				names = append(names, name)
			}
		}
	}
	walk(v.Type(), nil)
	what := "the configuration"
	if path != "" {
		what = path
	}
	if n.Kind != yaml.MappingNode {
		return keyError(n, path, "want a mapping of %s, got %s", strings.Join(names, ", "), shown(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := joinKey(path, k.Value)
		f, ok := fields[k.Value]
		if !ok {
			return keyError(k, key, "unknown key: %s takes %s", what, strings.Join(names, ", "))
		}
		if line, dup := seen[k.Value]; dup {
			return keyError(k, key, "given twice (first on line %d)", line)
		}
		seen[k.Value] = k.Line
		if err := decodeValue(val, v.FieldByIndex(f), key); err != nil {
			return err
		}
	}
	return nil
}

// describe names what a Go type takes, for "want …" in an error.
func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number >= 0"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	}
	return "a " + strings.ToLower(t.Name())
}

// shown is a node as an error shows it: a scalar quoted, else its kind.
func shown(n *yaml.Node) string {
	switch n.Kind {
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return "nothing"
}

// configSource says where each value of the configuration came from, to name
// it in an error: the flag that set it, else its line in the file, else its
// key (a default, or a value derived from others).
type configSource struct {
	cmd   string            // the command, for a flag's usageError
	path  string            // the file, "" without one
	doc   *yaml.Node        // its document, nil without one
	flags map[string]string // key → the flag given for it ("retention.minute" → "--retention")
}

// where names the value at key for an error: "--flag", "FILE:LINE: key" or
// "key". A list's element is "netflow.1": its line, named by the list.
// A key under a scalar the file wrote ("retention: 14d" for
// retention.minute) is named by that scalar's key.
func (s configSource) where(key string) (name string, byFlag bool) {
	parts := strings.Split(key, ".")
	name = key
	if _, err := strconv.Atoi(parts[len(parts)-1]); err == nil && len(parts) > 1 {
		name = strings.Join(parts[:len(parts)-1], ".")
	}
	if f, ok := s.flags[name]; ok {
		return f, true
	}
	line, depth := locate(s.doc, parts...)
	if line == 0 {
		return name, false
	}
	if depth < len(parts) {
		name = strings.Join(parts[:depth], ".")
	}
	return fmt.Sprintf("%s:%d: %s", s.path, line, name), false
}

// given says whether the file or a flag set key.
func (s configSource) given(key string) bool {
	_, byFlag := s.where(key)
	line, _ := locate(s.doc, strings.Split(key, ".")...)
	return byFlag || line > 0
}

// pick is the first of keys the user set, else the first: an error about
// values that depend on each other names the one the user wrote.
func (s configSource) pick(keys ...string) string {
	for _, k := range keys {
		if s.given(k) {
			return k
		}
	}
	return keys[0]
}

// errorf is the error "WHERE: reason" about key. A value a flag gave is a
// usageError, as the command line was at fault.
func (s configSource) errorf(key, format string, args ...any) error {
	name, byFlag := s.where(key)
	err := fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	if byFlag {
		return &usageError{cmd: s.cmd, err: err}
	}
	return err
}

// check refuses the values out of their bounds, once the file and the flags
// are read, naming each as the user wrote it (configSource.where): the bounds
// of every key are here, so that no component's New, which has no line to
// give, refuses a value later. serving adds what only `tmsd serve` uses.
func (c *Config) check(src configSource, serving bool) error {
	type bound struct {
		key  string
		bad  bool
		want string
		got  any
	}
	out := func(v, lo, hi int) bool { return v < lo || v > hi }
	const maxInt = 1<<31 - 1
	d := c.Decode
	var level slog.Level
	bounds := []bound{
		{"http", listenAddrProblem(c.HTTP) != "", "a listen address HOST:PORT, such as :8080 or 127.0.0.1:8080", strconv.Quote(c.HTTP)},
		{"data", c.Data == "", "a directory", `""`},
		{"log_level", level.UnmarshalText([]byte(c.LogLevel)) != nil, "debug, info, warn or error", strconv.Quote(c.LogLevel)},
		{"ring_size", out(c.RingSize, 1<<10, 1<<24), "1024 to 16777216 records (rounded up to a power of two)", c.RingSize},
		{"memory_limit", c.MemoryLimit != 0 && c.MemoryLimit < 64<<20, "0 (none) or at least 64MiB", int64(c.MemoryLimit)},
		{"listener.sockets", out(c.Listener.Sockets, 0, 1024), "0 (one per CPU) to 1024", c.Listener.Sockets},
		{"listener.receive_buffer", out(c.Listener.ReceiveBuffer, 0, 1<<30), "0 (the system's default) to 1073741824 bytes", c.Listener.ReceiveBuffer},
		{"listener.batch_size", out(c.Listener.BatchSize, 1, 1024), "1 to 1024 datagrams", c.Listener.BatchSize},
		{"aggregate.shards", out(c.Aggregate.Shards, 0, 1024), "0 (one per CPU) to 1024", c.Aggregate.Shards},
		{"aggregate.top_k", out(c.Aggregate.TopK, 1, maxInt), "a whole number >= 1", c.Aggregate.TopK},
		{"aggregate.max_keys", out(c.Aggregate.MaxKeys, 1, maxInt), "a whole number >= 1", c.Aggregate.MaxKeys},
		{"aggregate.max_memory", c.Aggregate.MaxMemory < 1<<20, "at least 1MiB", int64(c.Aggregate.MaxMemory)},
		{"aggregate.max_age", c.Aggregate.MaxAge <= 0, "a duration > 0", c.Aggregate.MaxAge},
		{"api.max_n", out(c.API.MaxN, 1, maxInt), "a whole number >= 1", c.API.MaxN},
		{"api.max_range", c.API.MaxRange <= 0, "a duration > 0", c.API.MaxRange},
		{"rollup.hour_top_k", out(c.Rollup.HourTopK, 0, maxInt), "0 (2 × aggregate.top_k) or more", c.Rollup.HourTopK},
		{"rollup.day_top_k", out(c.Rollup.DayTopK, 0, maxInt), "0 (rollup.hour_top_k) or more", c.Rollup.DayTopK},
		{"decode.max_exporters", out(d.MaxExporters, 1, maxInt), "a whole number >= 1", d.MaxExporters},
		{"decode.max_templates", out(d.MaxTemplates, 1, maxInt), "a whole number >= 1", d.MaxTemplates},
		{"decode.max_records_per_datagram", out(d.MaxRecordsPerDatagram, 1, maxInt), "a whole number >= 1", d.MaxRecordsPerDatagram},
		// 65535 marks IPFIX variable-length fields
		{"decode.max_field_length", out(d.MaxFieldLength, 1, 65534), "1 to 65534 bytes", d.MaxFieldLength},
		{"decode.template_timeout", badMillis(d.TemplateTimeout, time.Second), "whole milliseconds of at least 1s", d.TemplateTimeout},
		{"decode.hold_time", badMillis(d.HoldTime, 0), "whole milliseconds (0: no hold)", d.HoldTime},
		{"decode.hold_datagrams", out(d.HoldDatagrams, 0, maxInt), "a whole number >= 0 (0: no hold)", d.HoldDatagrams},
		{"decode.hold_bytes", out(d.HoldBytes, 1, maxInt), "a whole number >= 1", d.HoldBytes},
		{"decode.state_interval", badMillis(d.StateInterval, time.Second), "whole milliseconds of at least 1s", d.StateInterval},
	}
	for _, b := range bounds {
		if b.bad {
			return src.errorf(b.key, "want %s, got %v", b.want, b.got)
		}
	}
	for _, l := range []struct {
		key   string
		addrs []string
	}{{"netflow", c.NetFlow}, {"sflow", c.SFlow}} {
		for i, a := range l.addrs {
			if p := listenAddrProblem(a); p != "" {
				return src.errorf(l.key+"."+strconv.Itoa(i), "%q is not a listen address HOST:PORT, such as :2055 or 192.0.2.1:2055: %s", a, p)
			}
		}
	}
	if c.Aggregate.MaxKeys < 2*c.Aggregate.TopK {
		k := src.pick("aggregate.max_keys", "aggregate.top_k")
		if k == "aggregate.top_k" {
			return src.errorf(k, "%d is more than half of aggregate.max_keys (%d): a table keeps top_k of twice as many keys",
				c.Aggregate.TopK, c.Aggregate.MaxKeys)
		}
		return src.errorf(k, "%d must be at least twice aggregate.top_k (%d): a table keeps top_k of twice as many keys",
			c.Aggregate.MaxKeys, c.Aggregate.TopK)
	}
	if (c.API.TLSCert == "") != (c.API.TLSKey == "") {
		set, missing := "api.tls_cert", "api.tls_key"
		if c.API.TLSCert == "" {
			set, missing = missing, set
		}
		other := missing // named as the one given was: by its flag, or its key
		if _, byFlag := src.where(set); byFlag {
			for _, f := range configFlags {
				if f.key == missing {
					other = "--" + f.name
				}
			}
		}
		return src.errorf(set, "given without %s: give both or neither", other)
	}
	if serving && c.API.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.API.TLSCert, c.API.TLSKey); err != nil {
			return src.errorf(src.pick("api.tls_cert", "api.tls_key"), "cannot load the TLS certificate and key: %v", err)
		}
	}
	if err := c.checkEnrich(src); err != nil {
		return err
	}
	if err := c.checkAlerts(src); err != nil {
		return err
	}
	if err := c.checkKafka(src); err != nil {
		return err
	}
	return c.checkTiers(src, serving)
}

// about is a value in an error about values that depend on each other: the
// value alone for the key the error is named by (named), else the key and the value.
func about(named, key string, v any) string {
	if named == key {
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%s (%v)", key, v)
}

// listenAddrProblem is why a listen address is not one ("" when it is).
func listenAddrProblem(a string) string {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return strings.TrimPrefix(err.Error(), "address "+a+": ")
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("port %q is not a number from 0 to 65535", port)
	}
	return ""
}

// badMillis says whether d is below lo or not whole milliseconds (the decoder's clock).
func badMillis(d Duration, lo time.Duration) bool {
	return time.Duration(d) < lo || time.Duration(d)%time.Millisecond != 0
}
