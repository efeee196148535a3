package decode

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
)

// errTemplateLimit refuses a template past MaxTemplatesPerExporter. It is
// counted ("template_limit") but not returned: the datagram decoded, and the
// data that needs the template will show up as ErrTemplateUnknown.
var errTemplateLimit = errors.New("too many templates for this exporter")

// templateField is one field of a template. Enterprise-specific fields keep
// their length (to be skipped) but are never interpreted.
type templateField struct {
	id         uint16
	length     uint16 // variableLength for IPFIX variable-length fields
	enterprise bool
}

const variableLength = 0xffff

// template is a parsed (options) template, ready to walk data records.
type template struct {
	fields []templateField
	// scopes is the number of leading scope fields; > 0 only for options templates.
	scopes  int
	options bool
	// minLength is the fewest bytes a record can take (1 per variable-length
	// field); always > 0 for stored templates, which bounds the data loop.
	minLength int
	// refreshed is when the template was last announced (unix ms, receive
	// time), or restored; it expires limits.templateTimeout later.
	refreshed int64
}

func newTemplate(fields []templateField, scopes int, options bool, refreshed int64) *template {
	t := &template{fields: slices.Clone(fields), scopes: scopes, options: options, refreshed: refreshed}
	for _, f := range fields {
		if f.length == variableLength {
			t.minLength++
		} else {
			t.minLength += int(f.length)
		}
	}
	return t
}

// maxFixedLength is the length of the longest fixed-length field.
func (t *template) maxFixedLength() int {
	n := 0
	for _, f := range t.fields {
		if f.length != variableLength {
			n = max(n, int(f.length))
		}
	}
	return n
}

func (t *template) equal(fields []templateField, scopes int, options bool) bool {
	return t.options == options && t.scopes == scopes && slices.Equal(t.fields, fields)
}

// templateSystem holds the templates of one exporter, keyed by version,
// observation domain (v9 source ID) and template ID. It implements goflow2's
// interface so goflow2 tooling can inspect it; values are *template. It has no
// lock of its own: the exporter's mutex guards it.
type templateSystem struct {
	max       int
	templates netflow.FlowBaseTemplateSet
}

var _ netflow.NetFlowTemplateSystem = (*templateSystem)(nil)

func newTemplateSystem(max int) *templateSystem {
	return &templateSystem{max: max, templates: make(netflow.FlowBaseTemplateSet)}
}

// templateKey has the layout goflow2 uses.
func templateKey(version uint16, domain uint32, id uint16) uint64 {
	return uint64(version)<<48 | uint64(domain)<<16 | uint64(id)
}

func (ts *templateSystem) len() int { return len(ts.templates) }

// AddTemplate stores or replaces a template; a new one past the bound is
// refused with errTemplateLimit.
func (ts *templateSystem) AddTemplate(version uint16, domain uint32, id uint16, t interface{}) error {
	k := templateKey(version, domain, id)
	if _, ok := ts.templates[k]; !ok && len(ts.templates) >= ts.max {
		return errTemplateLimit
	}
	ts.templates[k] = t
	return nil
}

// GetTemplate returns the template or an error wrapping netflow.ErrorTemplateNotFound.
func (ts *templateSystem) GetTemplate(version uint16, domain uint32, id uint16) (interface{}, error) {
	if t, ok := ts.templates[templateKey(version, domain, id)]; ok {
		return t, nil
	}
	return nil, netflow.ErrorTemplateNotFound
}

// RemoveTemplate withdraws a template.
func (ts *templateSystem) RemoveTemplate(version uint16, domain uint32, id uint16) (interface{}, error) {
	k := templateKey(version, domain, id)
	t, ok := ts.templates[k]
	if !ok {
		return nil, netflow.ErrorTemplateNotFound
	}
	delete(ts.templates, k)
	return t, nil
}

// GetTemplates returns a copy of all templates.
func (ts *templateSystem) GetTemplates() netflow.FlowBaseTemplateSet {
	return maps.Clone(ts.templates)
}

// removeAll withdraws every data (or options) template of a domain, as an
// IPFIX "all templates" withdrawal asks, and returns how many it removed.
func (ts *templateSystem) removeAll(version uint16, domain uint32, options bool) int {
	n := 0
	for k, t := range ts.templates {
		if k>>16 == templateKey(version, domain, 0)>>16 && t.(*template).options == options {
			delete(ts.templates, k)
			n++
		}
	}
	return n
}

// sweepInterval is how often, in receive time, an exporter's templates are
// checked for expiry. Data sets check their own template at each use, so
// the sweep only frees (and counts) templates no data uses any more.
const sweepInterval = time.Minute

// expired reports whether t outlived the template timeout at now (unix ms).
func (e *exporter) expired(t *template, now int64) bool {
	return now-t.refreshed > e.limits.templateTimeout
}

// sweepTemplates forgets the templates not announced again within the
// template timeout, at most once per sweepInterval of receive time.
func (e *exporter) sweepTemplates(now int64) {
	if now < e.nextSweep {
		return
	}
	e.nextSweep = now + min(e.limits.templateTimeout, sweepInterval.Milliseconds())
	n := 0
	for k, v := range e.templates.templates {
		if t, ok := v.(*template); ok && e.expired(t, now) {
			delete(e.templates.templates, k)
			n++
		}
	}
	if n > 0 {
		e.templatesExpired += uint64(n)
		e.changed()
	}
}

// lookup returns the parsed template, or netflow.ErrorTemplateNotFound.
func (ts *templateSystem) lookup(version uint16, domain uint32, id uint16) (*template, error) {
	t, err := ts.GetTemplate(version, domain, id)
	if err != nil {
		return nil, err
	}
	return t.(*template), nil
}
