package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// v9Sets returns the set IDs of a NetFlow v9 datagram.
func v9Sets(t *testing.T, p []byte) []uint16 {
	t.Helper()
	require.Equal(t, uint16(9), binary.BigEndian.Uint16(p))
	var ids []uint16
	for body := p[20:]; len(body) >= 4; {
		length := int(binary.BigEndian.Uint16(body[2:]))
		require.GreaterOrEqual(t, length, 4)
		ids = append(ids, binary.BigEndian.Uint16(body))
		body = body[length:]
	}
	return ids
}

// sendAndWait sends datagrams to the NetFlow listener of p and waits until
// the decoder has seen them all.
func sendAndWait(t *testing.T, p *pipeline, datagrams [][]byte) {
	t.Helper()
	conn, err := net.Dial("udp", p.listeners[0].Addrs()[0].String())
	require.NoError(t, err)
	defer conn.Close()
	before := decodedDatagrams(p)
	for _, d := range datagrams {
		_, err := conn.Write(d)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return decodedDatagrams(p) == before+uint64(len(datagrams)) },
		30*time.Second, 10*time.Millisecond, "datagrams received")
}

func decodedDatagrams(p *pipeline) uint64 {
	var n uint64
	for _, e := range p.decoder.Exporters() {
		n += e.Datagrams
	}
	return n
}

// After a restart, data datagrams decode at once with the templates the
// previous run saved: they count in the API totals, none is lost to
// template_unknown while waiting for the exporter's next template refresh.
func TestTemplatesSurviveRestart(t *testing.T) {
	// softflowd sends its templates in the first datagram and every 16th:
	// the 15 in between carry data only.
	var datagrams [][]byte
	_, err := pcapsrc.Read(filepath.Join("..", "..", "testdata", "pcaps", "softflowd-v9.pcap"), func(d pcapsrc.Datagram) error {
		if len(datagrams) < 16 {
			datagrams = append(datagrams, bytes.Clone(d.Payload))
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, datagrams, 16)
	require.Contains(t, v9Sets(t, datagrams[0]), uint16(0), "the first datagram has the templates")
	for i, d := range datagrams[1:] {
		for _, id := range v9Sets(t, d) {
			require.GreaterOrEqual(t, id, uint16(256), "datagram %d has a template or options template set", i+1)
		}
	}
	// What the datagrams hold, decoded in one go.
	reference, err := decode.New(decode.DefaultConfiguration())
	require.NoError(t, err)
	var firstFlows, laterFlows uint64
	for i, d := range datagrams {
		recs, err := reference.Decode(netip.MustParseAddr("127.0.0.1"), d, time.Now(), nil)
		require.NoError(t, err)
		if i == 0 {
			firstFlows = uint64(len(recs))
		} else {
			laterFlows += uint64(len(recs))
		}
	}
	require.Positive(t, laterFlows)

	data := t.TempDir()
	start := time.Now()
	p := startServe(t, data)
	sendAndWait(t, p, datagrams[:1])
	require.NoError(t, p.stop())

	p = startServe(t, data)
	sendAndWait(t, p, datagrams[1:])
	require.NoError(t, p.agg.Sync(30*time.Second))
	exporters := p.decoder.Exporters()
	require.Len(t, exporters, 1)
	require.Empty(t, exporters[0].Errors, "no data without its template")
	require.Equal(t, laterFlows, exporters[0].Flows)
	require.Zero(t, exporters[0].Held)

	got := queryTop(t, "http://"+p.api.Addr().String(), "srcip", start.Add(-time.Minute), time.Now().Add(2*time.Minute))
	require.Equal(t, firstFlows+laterFlows, got.Total.Flows, "both runs' flows are in the store")
	t.Logf("run 1: %d flows from the template datagram; run 2: %d flows from %d data-only datagrams", firstFlows, laterFlows, len(datagrams)-1)

	// The API shows the templates the second run never received.
	resp, err := http.Get("http://" + p.api.Addr().String() + "/api/v1/exporters")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Exporters []struct{ Templates int } }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Exporters, 1)
	require.Equal(t, 5, body.Exporters[0].Templates, "4 data templates and the options template, restored")
}
