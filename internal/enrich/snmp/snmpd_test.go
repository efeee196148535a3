package snmp

import (
	"net/netip"
	"testing"

	"github.com/tmsd/tmsd/internal/enrich/snmp/snmptest"
)

// The agent is a real snmpd (snmptest).
const (
	v3User     = snmptest.V3User
	v3AuthPass = snmptest.V3AuthPass
	v3PrivPass = snmptest.V3PrivPass
	accessConf = snmptest.AccessConf
)

func tableConf(name517 string) string { return snmptest.TableConf(name517) }

func startSNMPD(t *testing.T, conf string) netip.AddrPort { return snmptest.Start(t, conf) }

func newAgent(t *testing.T, conf string) *snmptest.Agent { return snmptest.NewAgent(t, conf) }
