package snmp

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// The OIDs polled (SNMPv2-MIB, IF-MIB).
const (
	oidSysName     = ".1.3.6.1.2.1.1.5.0"
	oidIfDescr     = ".1.3.6.1.2.1.2.2.1.2"
	oidIfName      = ".1.3.6.1.2.1.31.1.1.1.1"
	oidIfHighSpeed = ".1.3.6.1.2.1.31.1.1.1.15"
	oidIfAlias     = ".1.3.6.1.2.1.31.1.1.1.18"
)

// maxRepetitions per GetBulk: 25 names fit well under a 1500-byte MTU
// response, so no agent needs to fragment or answer tooBig.
const maxRepetitions = 25

// snmpPoll polls t's agent: sysName, the ifXTable columns, then ifDescr for
// the interfaces without an ifName. Every request must succeed: a partial
// poll would replace good names with holes.
func (p *Poller) snmpPoll(ctx context.Context, t target) (*snapshot, error) {
	g := &gosnmp.GoSNMP{
		Target:         t.agent.Addr().String(),
		Port:           t.agent.Port(),
		Transport:      "udp",
		Context:        ctx,
		Timeout:        p.cfg.Timeout,
		Retries:        p.cfg.Retries,
		MaxOids:        gosnmp.MaxOids,
		MaxRepetitions: maxRepetitions,
		Version:        t.version,
		Community:      t.community,
	}
	if t.version == gosnmp.Version3 {
		g.SecurityModel = gosnmp.UserSecurityModel
		g.MsgFlags = t.flags
		g.SecurityParameters = &gosnmp.UsmSecurityParameters{
			UserName:                 t.user,
			AuthenticationProtocol:   t.authProto,
			AuthenticationPassphrase: t.authPass,
			PrivacyProtocol:          t.privProto,
			PrivacyPassphrase:        t.privPass,
		}
	}
	fail := func(what string, err error) error {
		return fmt.Errorf("%w: %s at %s: %s: %w", ErrPoll, t.exporter, t.agent, what, err)
	}
	if err := g.Connect(); err != nil {
		return nil, fail("connect", err)
	}
	defer g.Conn.Close()

	s := &snapshot{ifaces: map[uint32]Interface{}}
	pkt, err := g.Get([]string{oidSysName})
	if err != nil {
		return nil, fail("sysName", err)
	}
	if pkt.Error != gosnmp.NoError {
		return nil, fail("sysName", fmt.Errorf("agent error %s", pkt.Error))
	}
	for _, v := range pkt.Variables {
		if v.Type == gosnmp.OctetString {
			s.sysName = text(v.Value)
		}
	}

	names, err := walkColumn(g, oidIfName)
	if err != nil {
		return nil, fail("ifName", err)
	}
	aliases, err := walkColumn(g, oidIfAlias)
	if err != nil {
		return nil, fail("ifAlias", err)
	}
	speeds, err := walkColumn(g, oidIfHighSpeed)
	if err != nil {
		return nil, fail("ifHighSpeed", err)
	}
	for idx, v := range names {
		s.ifaces[idx] = Interface{Name: text(v.Value)}
	}
	for idx, v := range aliases {
		i := s.ifaces[idx]
		i.Description = text(v.Value)
		s.ifaces[idx] = i
	}
	for idx, v := range speeds {
		i := s.ifaces[idx]
		if n := gosnmp.ToBigInt(v.Value); n.Sign() > 0 && n.IsUint64() {
			i.SpeedMbps = n.Uint64()
		}
		s.ifaces[idx] = i
	}
	// ifDescr, always: ifName can be empty, and an agent without the ifXTable
	// (old or small ones), or with interfaces in the ifTable only, has none.
	descrs, err := walkColumn(g, oidIfDescr)
	if err != nil {
		return nil, fail("ifDescr", err)
	}
	for idx, v := range descrs {
		if i := s.ifaces[idx]; i.Name == "" {
			i.Name = text(v.Value)
			s.ifaces[idx] = i
		}
	}
	if s.sysName == "" && len(s.ifaces) == 0 {
		return nil, fail("walk", ErrNoData)
	}
	return s, nil
}

// walkColumn walks one table column with GetBulk, by ifIndex.
func walkColumn(g *gosnmp.GoSNMP, column string) (map[uint32]gosnmp.SnmpPDU, error) {
	pdus, err := g.BulkWalkAll(column)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]gosnmp.SnmpPDU, len(pdus))
	for _, v := range pdus {
		switch v.Type {
		case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null:
			continue
		}
		rest, ok := strings.CutPrefix(v.Name, column+".")
		if !ok {
			continue
		}
		idx, err := strconv.ParseUint(rest, 10, 32)
		if err != nil || idx == 0 {
			continue // not an ifIndex row (ifIndex is 1..2147483647)
		}
		out[uint32(idx)] = v
	}
	return out, nil
}

// text is an OctetString's printable value: some agents pad with NULs and
// a few send Latin-1.
func text(v any) string {
	b, ok := v.([]byte)
	if !ok {
		return ""
	}
	b = bytes.TrimRight(b, "\x00")
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.TrimSpace(s)
}
