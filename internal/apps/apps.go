// Package apps owns application classification: the "app" TopN dimension's key for a flow.
// Config rules (addresses, ports, protocols, exporters, interfaces, DSCPs → name, and
// the name's group) are tried first, then an IANA port table committed as generated
// code and expanded at init into flat per-port arrays, so Classify never allocates.
package apps

//go:generate go run ./gen -in /etc/services -extra gen/extra.services -o services_gen.go

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/topn"
)

// Other is the application of a flow that neither a rule nor the table names.
const Other = "other"

// Classifier maps flows to application keys. It is immutable after New and safe
// for concurrent use; a nil *Classifier classifies by the table alone.
type Classifier struct {
	rules ruleSet
	// ruleKeys are the keys of the rules' ids past the table's (a rule may reuse a
	// table name, and then its id).
	ruleKeys []topn.Key
	// groups are the rules' groups, sorted; groupOf, by ClassifyID's value, is 1 +
	// the index in groups of that application's group, 0 for none (nil: no groups).
	groups  []string
	groupOf []uint16
}

// New compiles rules, which Classify tries in order before the port table.
func New(rules []Rule) (*Classifier, error) {
	c := &Classifier{}
	c.rules.list = make([]compiled, 0, len(rules))
	type named struct {
		group string
		rule  int
	}
	groupOf := map[uint16]named{}
	for i := range rules {
		r := &rules[i]
		key := topn.AppKey(strings.ToLower(r.Name))
		id, ok := ids[key.App()]
		if !ok {
			for j, k := range c.ruleKeys {
				if k == key {
					id, ok = uint16(len(keys)+j), true
				}
			}
		}
		if !ok {
			if len(keys)+len(c.ruleKeys) >= 1<<16-1 {
				return nil, fmt.Errorf("app rule %d (%q): too many application names", i+1, r.Name)
			}
			id = uint16(len(keys) + len(c.ruleKeys))
			c.ruleKeys = append(c.ruleKeys, key)
		}
		if err := c.rules.compile(r, id); err != nil {
			return nil, fmt.Errorf("app rule %d (%q): %w", i+1, r.Name, err)
		}
		if r.Group == "" {
			continue
		}
		g := strings.ToLower(r.Group)
		if prev, ok := groupOf[id]; ok && prev.group != g {
			return nil, fmt.Errorf("app rule %d (%q): group %q, but rule %d gives application %q group %q: an application has one group",
				i+1, r.Name, g, prev.rule+1, key.App(), prev.group)
		}
		groupOf[id] = named{g, i}
		if !slices.Contains(c.groups, g) {
			c.groups = append(c.groups, g)
		}
	}
	c.rules.index()
	if len(c.groups) > 0 {
		slices.Sort(c.groups)
		c.groupOf = make([]uint16, len(keys)+len(c.ruleKeys)+1)
		for id, n := range groupOf {
			c.groupOf[id+1] = uint16(slices.Index(c.groups, n.group) + 1)
		}
	}
	return c, nil
}

// ClassifyID is Classify as a small number, for the aggregator's tables: the
// application's id plus one (0 stays "not classified"). AppKey turns it back.
func (c *Classifier) ClassifyID(r *flow.Record) uint16 {
	if c != nil && len(c.rules.list) > 0 {
		if i := c.rules.first(r); i >= 0 {
			return c.rules.list[i].id + 1
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

// Apps is how many application ids there are: AppKey names 1..Apps().
func (c *Classifier) Apps() int {
	if c == nil {
		return len(keys)
	}
	return len(keys) + len(c.ruleKeys)
}

// Classify returns the application's key for the flow: the first matching rule's
// name (see Rule), else the table's name for the flow's protocol and server port (see
// ServerPort for which port that is), else Other.
// It is on the per-flow hot path: no allocation, no string hashing.
func (c *Classifier) Classify(r *flow.Record) topn.Key {
	if c != nil && len(c.rules.list) > 0 {
		if i := c.rules.first(r); i >= 0 {
			k, _ := c.AppKey(c.rules.list[i].id + 1)
			return k
		}
	}
	return keys[tableIndex(r.Proto, r.SrcPort, r.DstPort)]
}

// Group returns the group of an application, by the id ClassifyID returns (as
// AppKey takes): the group its rules give it, ok false for none. The port table
// gives no groups, but a rule naming a table application (https = … group=web)
// gives that application, and so the flows the table names so, its group.
func (c *Classifier) Group(id uint16) (string, bool) {
	if c == nil || int(id) >= len(c.groupOf) || c.groupOf[id] == 0 {
		return "", false
	}
	return c.groups[c.groupOf[id]-1], true
}

// Groups returns the groups the rules name, sorted, lower-case; nil for none.
func (c *Classifier) Groups() []string {
	if c == nil {
		return nil
	}
	return slices.Clone(c.groups)
}

// Name is Classify(r).App(), for tests and logs; it allocates.
func (c *Classifier) Name(r *flow.Record) string { return c.Classify(r).App() }

// PortName returns the table's name for a port of proto (tcp, udp or sctp), with
// aliases applied, e.g. for labels like "443/tcp https".
func (c *Classifier) PortName(proto uint8, port uint16) (string, bool) {
	i := portIndex(proto, port)
	return names[i], i != 0
}
