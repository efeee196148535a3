package flowgen

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/decoders/netflow"
	"github.com/netsampler/goflow2/v2/decoders/netflowlegacy"
	"github.com/netsampler/goflow2/v2/decoders/sflow"
	"github.com/stretchr/testify/require"
)

// TestGoflow2Parses checks the datagrams against a second, independent
// decoder (goflow2, strict about set and sample structure): every datagram
// parses and carries the flows the truth says, with the sampling announced.
func TestGoflow2Parses(t *testing.T) {
	for _, format := range []string{FormatV5, FormatV9, FormatIPFIX, FormatSFlow} {
		t.Run(format, func(t *testing.T) {
			r := newReceiver(t)
			truth, err := Run(context.Background(), Config{
				Format: format, Target: r.addr(), Rate: 200_000, Count: 5_000, Duration: time.Minute,
				Exporters: 2, Sampling: 8,
			})
			require.NoError(t, err)
			templates := map[netip.Addr]netflow.NetFlowTemplateSystem{}
			var flows, options uint64
			for _, p := range r.wait(t, truth.Sent.Datagrams) {
				buf := bytes.NewBuffer(p.payload)
				switch format {
				case FormatV5:
					var pkt netflowlegacy.PacketNetFlowV5
					require.NoError(t, netflowlegacy.DecodeMessageVersion(buf, &pkt))
					require.Equal(t, uint16(0x4000|8), pkt.SamplingInterval)
					flows += uint64(len(pkt.Records))
				case FormatV9, FormatIPFIX:
					ts := templates[p.src]
					if ts == nil {
						ts = netflow.CreateTemplateSystem()
						templates[p.src] = ts
					}
					var v9 netflow.NFv9Packet
					var ipfix netflow.IPFIXPacket
					require.NoError(t, netflow.DecodeMessageVersion(buf, ts, &v9, &ipfix))
					sets := v9.FlowSets
					if format == FormatIPFIX {
						sets = ipfix.FlowSets
					}
					for _, set := range sets {
						switch set := set.(type) {
						case netflow.DataFlowSet:
							flows += uint64(len(set.Records))
						case netflow.OptionsDataFlowSet:
							options += uint64(len(set.Records))
						}
					}
				case FormatSFlow:
					var pkt sflow.Packet
					require.NoError(t, sflow.DecodeMessageVersion(buf, &pkt))
					for _, s := range pkt.Samples {
						fs, ok := s.(sflow.FlowSample)
						require.True(t, ok)
						require.Equal(t, uint32(8), fs.SamplingRate)
						flows++
					}
				}
			}
			require.Equal(t, truth.Sent.Flows, flows)
			require.Equal(t, truth.Sent.TemplateDatagrams, options, "one sampling options record per template datagram")
		})
	}
}
