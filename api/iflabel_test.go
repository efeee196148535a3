package api

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An interface key with ifIndex 0 is the exporter's unknown interface (pmacct
// sends it for every flow, NetFlow exporters without SNMP indexes too): the
// label says so, other interfaces keep their key.
func TestUnknownInterfaceIsLabelledUnknown(t *testing.T) {
	m := now.Add(-5 * time.Minute)
	known := rec("10.0.0.1", "10.0.0.2", 40000, 443, 3000, m)
	known.InIf, known.OutIf = 3, 0
	unknown := rec("10.0.0.3", "10.0.0.4", 40001, 22, 1000, m)
	h := newTestAPI(t, known, unknown)
	f := func(by string, want map[string]string) {
		t.Helper()
		var top topResponse
		q := url.Values{"by": {by}, "from": {m.Format(time.RFC3339)}, "to": {m.Add(time.Minute).Format(time.RFC3339)}}
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+q.Encode(), &top))
		got := map[string]string{}
		for _, r := range top.Rows {
			got[r.Key] = r.Label
		}
		require.Equal(t, want, got, by)
	}
	f("in_if", map[string]string{"192.0.2.1:3": "192.0.2.1:3", "192.0.2.1:0": "192.0.2.1 unknown interface"})
	f("out_if", map[string]string{"192.0.2.1:0": "192.0.2.1 unknown interface"})
}
