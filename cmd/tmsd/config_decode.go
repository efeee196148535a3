package main

import (
	"time"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/decode/persist"
)

// DecodeConfig is the `decode:` section: the decoder's limits, the hold of
// data that comes before its template, and how often the templates are saved.
// The tags name the keys; Config.check bounds the values.
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
