package main

import (
	"strconv"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tmsd/tmsd/api"
	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/decode/persist"
)

// DecodeConfig is the `decode:` section: the decoder's limits, the hold of
// data that comes before its template, and how often the templates are saved.
// UnmarshalYAML reads it; the tags name the keys when it is marshalled
// (GET /api/v1/config).
type DecodeConfig struct {
	MaxExporters          int      `yaml:"max_exporters"`
	MaxTemplates          int      `yaml:"max_templates"`
	MaxRecordsPerDatagram int      `yaml:"max_records_per_datagram"`
	MaxFieldLength        int      `yaml:"max_field_length"`
	TemplateTimeout       Duration `yaml:"template_timeout"`
	HoldTime              Duration `yaml:"hold_time"`      // 0 disables holding
	HoldDatagrams         int      `yaml:"hold_datagrams"` // 0 disables holding
	HoldBytes             int      `yaml:"hold_bytes"`
	StateInterval         Duration `yaml:"state_interval"`
}

func defaultDecodeConfig() DecodeConfig {
	d := decode.DefaultConfiguration()
	return DecodeConfig{
		MaxExporters:          d.MaxExporters,
		MaxTemplates:          d.MaxTemplatesPerExporter,
		MaxRecordsPerDatagram: d.MaxRecordsPerDatagram,
		MaxFieldLength:        d.MaxFieldLength,
		TemplateTimeout:       Duration(d.TemplateTimeout),
		HoldTime:              Duration(d.HoldTime),
		HoldDatagrams:         d.HoldDatagrams,
		HoldBytes:             d.HoldBytes,
		StateInterval:         Duration(persist.DefaultConfiguration().Interval),
	}
}

// UnmarshalYAML reads the keys given over the defaults, each checked
// against its bounds with its line in the error.
func (c *DecodeConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return lineError(n, "decode must be a mapping of settings")
	}
	integer := func(v *yaml.Node, key string, dst *int, lo, hi int) error {
		i, err := strconv.Atoi(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return lineError(v, "decode.%s: %q is not a whole number", key, v.Value)
		}
		if i < lo || i > hi {
			return lineError(v, "decode.%s must be between %d and %d, got %d", key, lo, hi, i)
		}
		*dst = i
		return nil
	}
	duration := func(v *yaml.Node, key string, dst *Duration, lo time.Duration) error {
		d, err := api.ParseDuration(v.Value)
		if v.Kind != yaml.ScalarNode || err != nil {
			return lineError(v, "decode.%s: bad duration %q: use 90s, 15m, 1h or 14d", key, v.Value)
		}
		if d < lo || d%time.Millisecond != 0 {
			return lineError(v, "decode.%s must be whole milliseconds of at least %s, got %s", key, lo, d)
		}
		*dst = Duration(d)
		return nil
	}
	const maxInt = 1<<31 - 1
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var err error
		switch k.Value {
		case "max_exporters":
			err = integer(v, k.Value, &c.MaxExporters, 1, maxInt)
		case "max_templates":
			err = integer(v, k.Value, &c.MaxTemplates, 1, maxInt)
		case "max_records_per_datagram":
			err = integer(v, k.Value, &c.MaxRecordsPerDatagram, 1, maxInt)
		case "max_field_length":
			err = integer(v, k.Value, &c.MaxFieldLength, 1, 65534) // 65535 marks IPFIX variable-length fields
		case "template_timeout":
			err = duration(v, k.Value, &c.TemplateTimeout, time.Second)
		case "hold_time":
			err = duration(v, k.Value, &c.HoldTime, 0)
		case "hold_datagrams":
			err = integer(v, k.Value, &c.HoldDatagrams, 0, maxInt)
		case "hold_bytes":
			err = integer(v, k.Value, &c.HoldBytes, 1, maxInt)
		case "state_interval":
			err = duration(v, k.Value, &c.StateInterval, time.Second)
		default:
			err = lineError(k, "field %s not found in decode", k.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decoder returns the decoder's configuration.
func (c DecodeConfig) decoder(sampling SamplingRates) decode.Configuration {
	d := decode.DefaultConfiguration()
	d.SamplingOverride = sampling
	d.MaxExporters = c.MaxExporters
	d.MaxTemplatesPerExporter = c.MaxTemplates
	d.MaxRecordsPerDatagram = c.MaxRecordsPerDatagram
	d.MaxFieldLength = c.MaxFieldLength
	d.TemplateTimeout = time.Duration(c.TemplateTimeout)
	d.HoldTime = time.Duration(c.HoldTime)
	d.HoldDatagrams = c.HoldDatagrams
	d.HoldBytes = c.HoldBytes
	if c.HoldTime == 0 || c.HoldDatagrams == 0 {
		d.HoldDatagrams = -1 // the decoder reads zeros as "default"
	}
	return d
}
