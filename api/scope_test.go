package api

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A scope combination tmsd keeps no table for is a 400 naming the filter, on
// top and series alike, never a number from another table.
func TestScopeFiltersWithoutATableAre400(t *testing.T) {
	h := newTestAPI(t)
	for _, c := range []struct{ query, param, key string }{
		{"by=app&exporter=192.0.2.1&proto=6", "proto", ""},
		{"by=app&exporter=192.0.2.1&if=192.0.2.1:3&dir=in", "if", ""},
		{"by=srcip&app=https&ip=10.0.0.1", "ip", ""},
		{"by=srcip&proto=tcp&app=https", "app", ""},
		{"by=app&if=192.0.2.1:3", "dir", ""},
		{"by=app&dir=in", "dir", ""},
		{"by=app&exporter=192.0.2.1&dir=out", "dir", ""},
		{"by=app&if=192.0.2.1:3&dir=sideways", "dir", ""},
		{"by=app&if=192.0.2.1", "if", ""},
		{"by=app&if=router:3&dir=in", "if", ""},
		{"by=app&if=192.0.2.1:x&dir=in", "if", ""},
		{"by=srcip&app=" + url.QueryEscape("a name longer than twenty-four bytes"), "app", ""},
		{"by=app&ip=10.0.0", "ip", ""},
		// Dimensions the scope keeps no table of.
		{"by=app&app=https", "by", "https"},
		{"by=proto&ip=10.0.0.1", "by", "tcp"},
		{"by=peer", "by", "10.0.0.1"},
		{"by=in_if&if=192.0.2.1:3&dir=in", "by", "192.0.2.1:3"},
	} {
		for _, endpoint := range []string{"top", "series"} {
			q := c.query
			if endpoint == "series" {
				if c.param == "by" {
					q += "&key=" + url.QueryEscape(c.key) // series takes by with a key
				} else {
					q = q[strings.IndexByte(q, '&')+1:] // a series of the scope's total
				}
			}
			var body map[string]string
			code := get(t, h, "/api/v1/"+endpoint+"?"+q, &body)
			require.Equal(t, http.StatusBadRequest, code, "%s?%s: %s", endpoint, q, body)
			require.Equal(t, c.param, body["parameter"], "%s?%s: %s", endpoint, q, body["error"])
		}
	}
}

func TestScopeFilters(t *testing.T) {
	m := now.Add(-5 * time.Minute)
	in3 := rec("10.9.9.9", "10.0.0.2", 40000, 443, 60_000, m)
	in3.InIf, in3.OutIf = 3, 1
	in4 := rec("10.0.0.3", "10.0.0.2", 40001, 5432, 30_000, m)
	in4.InIf, in4.OutIf = 4, 3
	h := newTestAPI(t, in3, in4)
	var top topResponse
	f := func(query string, want map[string]uint64, partial bool) {
		t.Helper()
		top = topResponse{}
		require.Equal(t, http.StatusOK, get(t, h, "/api/v1/top?"+query, &top), query)
		got := map[string]uint64{}
		for _, r := range top.Rows {
			got[r.Key] = r.Bytes
		}
		require.Equal(t, want, got, query)
		require.Equal(t, partial, top.Partial, query)
	}
	f("by=srcip&if=192.0.2.1:3&dir=in", map[string]uint64{"10.9.9.9": 60_000}, false)
	require.Equal(t, "if=192.0.2.1:3 dir=in", top.Scope)
	f("by=srcip&if=192.0.2.1:3&dir=out", map[string]uint64{"10.0.0.3": 30_000}, false)
	f("by=app&if=192.0.2.1:4&dir=in", map[string]uint64{"postgresql": 30_000}, false)
	f("by=srcip&app=https", map[string]uint64{"10.9.9.9": 60_000}, false)
	f("by=peer&ip=10.0.0.2", map[string]uint64{"10.9.9.9": 60_000, "10.0.0.3": 30_000}, false)

	var series seriesResponse
	require.Equal(t, http.StatusOK, get(t, h, "/api/v1/series?app=postgresql&from=-10m", &series))
	require.Equal(t, "app=postgresql", series.Scope)
	var sum uint64
	for _, p := range series.Points {
		sum += p.Bytes
	}
	require.EqualValues(t, 30_000, sum)
}
