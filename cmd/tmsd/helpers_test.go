package main

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/pcapsrc"
)

// replayPcap sends every datagram of the capture at path to target over UDP,
// pausing a millisecond every 100 to stay inside the socket buffer, and
// returns how many it sent.
func replayPcap(t *testing.T, target, path string) uint64 {
	t.Helper()
	conn, err := net.Dial("udp", target)
	require.NoError(t, err)
	defer conn.Close()
	var sent uint64
	_, err = pcapsrc.Read(path, func(d pcapsrc.Datagram) error {
		_, err := conn.Write(d.Payload)
		if sent++; sent%100 == 0 {
			time.Sleep(time.Millisecond)
		}
		return err
	})
	require.NoError(t, err)
	return sent
}

// waitDecoded waits until the decoder has had sent datagrams from all its
// exporters, then until the shards have counted their flows.
func waitDecoded(t *testing.T, p *pipeline, sent uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n uint64
		for _, e := range p.decoder.Exporters() {
			n += e.Datagrams
		}
		return n == sent
	}, 30*time.Second, 10*time.Millisecond, "datagrams received")
	require.NoError(t, p.agg.Sync(30*time.Second))
}

// firstDatagram returns the payload of the capture's first datagram.
func firstDatagram(t *testing.T, path string) []byte {
	t.Helper()
	var first []byte
	_, err := pcapsrc.Read(path, func(d pcapsrc.Datagram) error {
		if first == nil {
			first = bytes.Clone(d.Payload)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotNil(t, first, "%s has no datagram", path)
	return first
}
