package main

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every real datagram cut at every length, then random bytes, sent to a running
// tmsd: it keeps serving, and the errors show per exporter in /api/v1/exporters.
func TestTruncatedAndRandomDatagramsAreCountedNotFatal(t *testing.T) {
	p := startServe(t, t.TempDir())
	base := "http://" + p.api.Addr().String()
	sent := 0
	for _, pcap := range captures(t) {
		target := p.listeners[0].Addrs()[0].String()
		if strings.Contains(filepath.Base(pcap), "sflow") {
			target = p.listeners[1].Addrs()[0].String()
		}
		conn, err := net.Dial("udp", target)
		require.NoError(t, err)
		first := firstDatagram(t, pcap)
		for n := 1; n < len(first); n++ { // a zero-length UDP datagram is not worth sending
			_, err := conn.Write(first[:n])
			require.NoError(t, err)
			sent++
			if sent%100 == 0 {
				time.Sleep(time.Millisecond) // stay inside the socket buffer
			}
		}
		require.NoError(t, conn.Close())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	conn, err := net.Dial("udp", p.listeners[0].Addrs()[0].String())
	require.NoError(t, err)
	defer conn.Close()
	for i := 0; i < 2000; i++ {
		b := make([]byte, 1+rng.IntN(1500))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 && len(b) >= 2 { // half of them look like v9/IPFIX to get past the version check
			b[0], b[1] = 0, byte(9+i%4/2)
		}
		_, err := conn.Write(b)
		require.NoError(t, err)
		sent++
		if sent%100 == 0 {
			time.Sleep(time.Millisecond)
		}
	}

	type exporters struct {
		Exporters []struct {
			Address   string
			Datagrams uint64
			Errors    map[string]uint64
		}
	}
	var got exporters
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/api/v1/exporters")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got = exporters{}
		if json.NewDecoder(resp.Body).Decode(&got) != nil || len(got.Exporters) != 1 {
			return false
		}
		return got.Exporters[0].Datagrams == uint64(sent)
	}, 30*time.Second, 20*time.Millisecond, "every datagram reaches the decoder")
	e := got.Exporters[0]
	t.Logf("%d datagrams sent and received; errors by reason: %v", sent, e.Errors)
	require.Equal(t, "127.0.0.1", e.Address)
	require.Greater(t, e.Errors["malformed"], uint64(100), "%v", e.Errors)
	require.Greater(t, e.Errors["unknown_version"], uint64(100), "%v", e.Errors)

	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
