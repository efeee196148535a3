// Package apps owns application classification: the "app" TopN dimension's key for a flow.
// Config rules (address/port → name) are tried first, then an IANA port table committed
// as generated code and expanded at init into flat per-port arrays, so Classify never allocates.
package apps

//go:generate go run ./gen -in /etc/services -extra gen/extra.services -o services_gen.go

import (
	"encoding/binary"
	"fmt"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// Other is the application of a flow that neither a rule nor the table names.
const Other = "other"

// Classifier maps flows to application keys. It is immutable after New and safe
// for concurrent use; a nil *Classifier classifies by the table alone.
type Classifier struct {
	rules []compiled
	// ruleIDs are the rules' application ids; ruleKeys the keys of the ids
	// past the table's (a rule may reuse a table name, and then its id).
	ruleIDs  []uint16
	ruleKeys []topn.Key
}

// New compiles rules, which Classify tries in order before the port table.
func New(rules []Rule) (*Classifier, error) {
	c := &Classifier{rules: make([]compiled, 0, len(rules))}
	for i, r := range rules {
		cr, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("app rule %d (%q): %w", i+1, r.Name, err)
		}
		c.rules = append(c.rules, cr)
		id, ok := ids[cr.key.App()]
		if !ok {
			for j, k := range c.ruleKeys {
				if k == cr.key {
					id, ok = uint16(len(keys)+j), true
				}
			}
		}
		if !ok {
			if len(keys)+len(c.ruleKeys) >= 1<<16-1 {
				return nil, fmt.Errorf("app rule %d (%q): too many application names", i+1, r.Name)
			}
			id = uint16(len(keys) + len(c.ruleKeys))
			c.ruleKeys = append(c.ruleKeys, cr.key)
		}
		c.ruleIDs = append(c.ruleIDs, id)
	}
	return c, nil
}

// ClassifyID is Classify as a small number, for the aggregator's tables: the
// application's id plus one (0 stays "not classified"). AppKey turns it back.
func (c *Classifier) ClassifyID(r *flow.Record) uint16 {
	if c != nil && len(c.rules) > 0 {
		sh, sl := binary.BigEndian.Uint64(r.SrcAddr[:8]), binary.BigEndian.Uint64(r.SrcAddr[8:])
		dh, dl := binary.BigEndian.Uint64(r.DstAddr[:8]), binary.BigEndian.Uint64(r.DstAddr[8:])
		for i := range c.rules {
			if cr := &c.rules[i]; cr.match(r.Proto, sh, sl, r.SrcPort, dh, dl, r.DstPort) {
				return c.ruleIDs[i] + 1
			}
		}
	}
	return tableIndex(r.Proto, r.SrcPort, r.DstPort) + 1
}

// AppKey is the key of an id ClassifyID returned; ok false for any other.
func (c *Classifier) AppKey(id uint16) (topn.Key, bool) {
	switch i := int(id) - 1; {
	case i < 0:
		return topn.Key{}, false
	case i < len(keys):
		return keys[i], true
	case c != nil && i-len(keys) < len(c.ruleKeys):
		return c.ruleKeys[i-len(keys)], true
	}
	return topn.Key{}, false
}

// Classify returns the application's key for the flow: the first matching rule's
// name, else the table's name for the flow's protocol and server port (see
// ServerPort for which port that is), else Other.
// It is on the per-flow hot path: no allocation, no string hashing.
func (c *Classifier) Classify(r *flow.Record) topn.Key {
	if c != nil && len(c.rules) > 0 {
		sh, sl := binary.BigEndian.Uint64(r.SrcAddr[:8]), binary.BigEndian.Uint64(r.SrcAddr[8:])
		dh, dl := binary.BigEndian.Uint64(r.DstAddr[:8]), binary.BigEndian.Uint64(r.DstAddr[8:])
		for i := range c.rules {
			if cr := &c.rules[i]; cr.match(r.Proto, sh, sl, r.SrcPort, dh, dl, r.DstPort) {
				return cr.key
			}
		}
	}
	return keys[tableIndex(r.Proto, r.SrcPort, r.DstPort)]
}

// Name is Classify(r).App(), for tests and logs; it allocates.
func (c *Classifier) Name(r *flow.Record) string { return c.Classify(r).App() }

// PortName returns the table's name for a port of proto (tcp, udp or sctp), with
// aliases applied, e.g. for labels like "443/tcp https".
func (c *Classifier) PortName(proto uint8, port uint16) (string, bool) {
	i := portIndex(proto, port)
	return names[i], i != 0
}
