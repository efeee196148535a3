package decode

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/flow"
	"github.com/tmsd/tmsd/internal/pcapsrc"
)

type captured struct {
	src     netip.Addr
	at      time.Time
	payload []byte
}

func readCapture(t *testing.T, name string) []captured {
	t.Helper()
	var out []captured
	_, err := pcapsrc.Read(filepath.Join("..", "..", "testdata", "pcaps", name), func(d pcapsrc.Datagram) error {
		out = append(out, captured{d.Src.Addr().Unmap(), d.Time, bytes.Clone(d.Payload)})
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, out, "no datagrams in %s: run make testdata", name)
	return out
}

// dataOnly rewrites a NetFlow v9/IPFIX datagram without its template sets
// and options data sets (as d knows them), as the datagrams between two
// template refreshes are, and counts what it removed.
func dataOnly(t *testing.T, d *Decoder, src netip.Addr, p []byte, removed *int) []byte {
	t.Helper()
	version := binary.BigEndian.Uint16(p)
	headerLength, domain := v9HeaderLength, binary.BigEndian.Uint32(p[16:])
	if version == 10 {
		headerLength, domain = ipfixHeaderLength, binary.BigEndian.Uint32(p[12:])
	}
	out := bytes.Clone(p[:headerLength])
	e := d.exporter(src)
	for body := p[headerLength:]; len(body) >= setHeaderLength; {
		id, length := binary.BigEndian.Uint16(body), int(binary.BigEndian.Uint16(body[2:]))
		require.GreaterOrEqual(t, length, setHeaderLength)
		set := body[:length]
		body = body[length:]
		if id < 256 {
			*removed++
			continue
		}
		tmpl, err := e.templates.lookup(version, domain, id)
		require.NoError(t, err, "data set %d without a restored template", id)
		if tmpl.options {
			*removed++
			continue
		}
		out = append(out, set...)
	}
	if version == 10 {
		binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	}
	return out
}

// A restarted decoder that restored the state of the one before decodes
// the data-only datagrams that follow as if there had been no restart.
func TestStateRestartWithCaptures(t *testing.T) {
	for _, name := range []string{"softflowd-v9.pcap", "softflowd-ipfix.pcap", "pmacct-v9.pcap", "pmacct-ipfix.pcap"} {
		t.Run(name, func(t *testing.T) {
			datagrams := readCapture(t, name)
			// Without a restart.
			reference := newTestDecoder(t, DefaultConfiguration())
			want := make([][]flow.Record, len(datagrams))
			for i, dg := range datagrams {
				var err error
				want[i], err = reference.Decode(dg.src, dg.payload, dg.at, nil)
				require.NoError(t, err)
			}

			// The first datagram carries the templates (and options); then a restart.
			before := newTestDecoder(t, DefaultConfiguration())
			_, err := before.Decode(datagrams[0].src, datagrams[0].payload, datagrams[0].at, nil)
			require.NoError(t, err)
			blob, generation := before.State()
			require.NotZero(t, generation)

			after := newTestDecoder(t, DefaultConfiguration())
			st, err := after.Restore(blob, datagrams[0].at)
			require.NoError(t, err)
			require.Equal(t, statsOf(t, before, datagrams[0].src.String()).Templates, st.Templates)
			require.Zero(t, st.Skipped)
			fresh := newTestDecoder(t, noHold()) // no restart state: what tmsd did before
			removed, flows, unknown := 0, 0, 0
			for i, dg := range datagrams[1:] {
				p := dataOnly(t, after, dg.src, dg.payload, &removed)
				got, err := after.Decode(dg.src, p, dg.at, nil)
				require.NoError(t, err, "datagram %d", i+1)
				require.Equal(t, want[i+1], got, "datagram %d", i+1)
				flows += len(got)
				if _, err := fresh.Decode(dg.src, p, dg.at, nil); err != nil {
					require.ErrorIs(t, err, ErrTemplateUnknown)
					unknown++
				}
			}
			require.Positive(t, removed, "the capture resends templates or options: they must have been removed")
			require.Positive(t, flows)
			require.Equal(t, len(datagrams)-1, unknown, "without the restored state no datagram decodes")
			s := statsOf(t, after, datagrams[0].src.String())
			require.Zero(t, s.Held)
			require.Empty(t, s.Errors)
			t.Logf("%d data-only datagrams (%d template and options sets removed), %d flows, as without a restart",
				len(datagrams)-1, removed, flows)
		})
	}
}

// stateDatagrams make state of every kind, from two exporters and a third
// (NetFlow v5) with none.
func stateDecoder(t *testing.T, cfg Configuration) *Decoder {
	t.Helper()
	d := newTestDecoder(t, cfg)
	options := v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}})
	samplerOptions := v9OptionsTemplateSet(257, []field{{id: 1, length: 4}},
		[]field{{id: fieldSamplerID, length: 1}, {id: fieldSamplerRandomIntvl, length: 4}})
	for _, p := range [][]byte{
		v9(options, set(300, cat(u32(0), u32(512))), v9TemplateSet(templateRecord(256, v9Fields...))),
		v9(samplerOptions, set(257, cat(u32(0), u8(2), u32(1000)))),
		v9Datagram(v9SysUptime, v9UnixSecs, 78, v9TemplateSet(templateRecord(256, v9Fields[:4]...))),
	} {
		_, err := d.Decode(exporterA, p, testReceived, nil)
		require.NoError(t, err)
	}
	ipfixFields := []field{
		{id: fieldIPv4SrcAddr, length: 4}, {id: fieldIPv4DstAddr, length: 4}, {id: 82, length: variableLength},
		{id: 1, length: 4, pen: 9}, {id: fieldFirstSwitched, length: 4}, {id: fieldLastSwitched, length: 4},
	}
	_, err := d.Decode(exporterB, ipfixDatagram(1_700_000_000, 9,
		ipfixOptionsTemplateSet(500, []field{{id: 149, length: 4}}, []field{{id: fieldSystemInitMillis, length: 8}}),
		set(500, cat(u32(1), u64(1_600_000_000_000))),
		ipfixTemplateSet(templateRecord(400, ipfixFields...))), testReceived, nil)
	require.NoError(t, err)
	_, err = d.Decode(exporterS, validDatagrams()["netflow-v5"], testReceived, nil)
	require.NoError(t, err)
	return d
}

func TestStateRoundTrip(t *testing.T) {
	d := stateDecoder(t, DefaultConfiguration())
	blob, _ := d.State()

	r := newTestDecoder(t, DefaultConfiguration())
	st, err := r.Restore(blob, testReceived)
	require.NoError(t, err)
	require.Equal(t, RestoreStats{Exporters: 2, Templates: 6}, st)
	again, generation := r.State()
	require.Equal(t, blob, again, "what Restore reads, State writes again, byte for byte")
	require.Zero(t, generation, "restoring is no change to save")
	require.Len(t, r.Exporters(), 2, "the exporter with nothing to restore is left out")

	// The restored state decodes: sampling rate from options, sampler IDs,
	// IPFIX times from the options' systemInitTime, enterprise and
	// variable-length fields walked.
	got, err := r.Decode(exporterA, v9(set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))), testReceived, nil)
	require.NoError(t, err)
	require.Equal(t, []flow.Record{v9Want("192.0.2.1", "10.0.0.1", "10.0.0.2", 1000, 10, 512)}, got)
	require.Equal(t, uint32(1000), r.exporter(exporterA).samplers[samplerKey{version: 9, domain: 77, sampler: 2}])
	got, err = r.Decode(exporterB, ipfixDatagram(1_700_000_000, 9,
		set(400, cat(ip("10.0.0.1"), ip("10.0.0.2"), u8(2), []byte("e0"), u32(7), u32(1000), u32(2000)))), testReceived, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, []int64{1_600_000_001_000, 1_600_000_002_000}, []int64{got[0].Start, got[0].End})
}

func TestGeneration(t *testing.T) {
	d := newTestDecoder(t, noHold())
	template := v9TemplateSet(templateRecord(256, v9Fields...))
	options := v9OptionsTemplateSet(300, []field{{id: 1, length: 4}}, []field{{id: fieldSamplingInterval, length: 4}})
	data := set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10))
	ipfixTemplate := ipfixTemplateSet(templateRecord(400, field{id: fieldIPv4SrcAddr, length: 4}))
	f := func(name string, p []byte, at time.Duration, changes bool) {
		t.Helper()
		before := d.Generation()
		_, _ = d.Decode(exporterA, p, testReceived.Add(at), nil)
		if changes {
			require.Greater(t, d.Generation(), before, name)
		} else {
			require.Equal(t, before, d.Generation(), name)
		}
	}
	f("new template", v9(template), 0, true)
	f("same template again", v9(template), 0, false)
	f("data", v9(data), 0, false)
	f("options rate", v9(options, set(300, cat(u32(0), u32(512)))), 0, true)
	f("same options rate", v9(options, set(300, cat(u32(0), u32(512)))), 0, false)
	f("another options rate", v9(set(300, cat(u32(0), u32(64)))), 0, true)
	f("changed template", v9(v9TemplateSet(templateRecord(256, v9Fields[:6]...))), 0, true)
	f("v5", validDatagrams()["netflow-v5"], 0, false)
	f("IPFIX template", ipfixDatagram(0, 1, ipfixTemplate), 0, true)
	f("IPFIX withdrawal", ipfixDatagram(0, 1, ipfixTemplateSet(templateRecord(400))), 0, true)
	f("withdrawal of nothing", ipfixDatagram(0, 1, ipfixTemplateSet(templateRecord(400))), 0, false)
	f("expiry", v9(data), 2*time.Hour, true)

	f("template to forget", v9(template), 2*time.Hour, true)
	before := d.Generation()
	require.False(t, d.Forget(exporterB))
	require.Equal(t, before, d.Generation(), "forgetting an unknown exporter")
	require.True(t, d.Forget(exporterA))
	require.Greater(t, d.Generation(), before, "a forgotten exporter's templates must leave the saved state")
	blob, _ := d.State()
	require.Equal(t, []byte{stateVersion, 0}, blob[:2], "no exporter left")
}

// Restored templates get a full TemplateTimeout from the restore.
func TestRestoreRestartsExpiry(t *testing.T) {
	d := newTestDecoder(t, noHold())
	_, err := d.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, v9Fields...))), testReceived, nil)
	require.NoError(t, err)
	blob, _ := d.State()

	restoredAt := testReceived.Add(50 * time.Minute) // down for 50 minutes
	r := newTestDecoder(t, noHold())
	_, err = r.Restore(blob, restoredAt)
	require.NoError(t, err)
	data := v9(set(256, v9Record("10.0.0.1", "10.0.0.2", 1000, 10)))
	got, err := r.Decode(exporterA, data, restoredAt.Add(time.Hour), nil)
	require.NoError(t, err, "1 h 50 min after it was received, 1 h after the restore")
	require.Len(t, got, 1)
	_, err = r.Decode(exporterA, data, restoredAt.Add(time.Hour+time.Millisecond), nil)
	require.ErrorIs(t, err, ErrTemplateUnknown)
	require.Equal(t, uint64(1), statsOf(t, r, "192.0.2.1").TemplatesExpired)
}

func TestRestoreLimitsAndKnownState(t *testing.T) {
	blob, _ := stateDecoder(t, DefaultConfiguration()).State()

	cfg := DefaultConfiguration()
	cfg.MaxExporters = 1
	cfg.MaxTemplatesPerExporter = 2
	r := newTestDecoder(t, cfg)
	st, err := r.Restore(blob, testReceived)
	require.NoError(t, err)
	// exporterB sorts after exporterA: its 2 templates are skipped with it;
	// exporterA keeps 2 of its 4.
	require.Equal(t, RestoreStats{Exporters: 1, Templates: 2, Skipped: 4}, st)

	cfg = DefaultConfiguration()
	cfg.MaxFieldLength = 3 // IPv4 addresses are 4 bytes
	r = newTestDecoder(t, cfg)
	st, err = r.Restore(blob, testReceived)
	require.NoError(t, err)
	require.Equal(t, 6, st.Skipped)

	// A template received before the restore is newer: it stays.
	r = newTestDecoder(t, DefaultConfiguration())
	_, err = r.Decode(exporterA, v9(v9TemplateSet(templateRecord(256, v9Fields[:2]...))), testReceived, nil)
	require.NoError(t, err)
	st, err = r.Restore(blob, testReceived)
	require.NoError(t, err)
	require.Equal(t, 5, st.Templates)
	tmpl, err := r.exporter(exporterA).templates.lookup(9, 77, 256)
	require.NoError(t, err)
	require.Len(t, tmpl.fields, 2)
}

// withCRC recomputes the checksum of a blob edited by a test.
func withCRC(b []byte) []byte {
	body := b[:len(b)-4]
	return binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

func TestRestoreRefusesBadBlobs(t *testing.T) {
	blob, _ := stateDecoder(t, DefaultConfiguration()).State()
	f := func(name string, b []byte, want error) {
		t.Helper()
		r := newTestDecoder(t, DefaultConfiguration())
		st, err := r.Restore(b, testReceived)
		require.ErrorIs(t, err, want, name)
		require.Zero(t, st, name)
		require.Empty(t, r.Exporters(), "%s: nothing restored", name)
	}
	f("empty", nil, ErrStateCorrupt)
	f("version 2", append([]byte{2}, blob[1:]...), ErrStateVersion)
	f("version 0", withCRC(append([]byte{0}, blob[1:]...)), ErrStateVersion)
	for n := 1; n < len(blob); n++ {
		f("truncated", blob[:n], ErrStateCorrupt)
	}
	for i := 1; i < len(blob); i++ { // the version byte changes the error
		b := bytes.Clone(blob)
		b[i] ^= 0x10
		f("bit flipped", b, ErrStateCorrupt)
	}
	// A valid checksum over inconsistent content.
	f("huge exporter count", withCRC(cat([]byte{1}, binary.AppendUvarint(nil, 1<<62), make([]byte, 4))), ErrStateCorrupt)
	f("trailing bytes", withCRC(cat(blob[:len(blob)-4], []byte{0}, make([]byte, 4))), ErrStateCorrupt)
	exporter := func(templates ...[]byte) []byte {
		return withCRC(cat([]byte{1, 1, 4}, ip("192.0.2.1"), binary.AppendUvarint(nil, uint64(len(templates))), cat(templates...),
			[]byte{0, 0}, make([]byte, 4)))
	}
	tmpl := func(version uint8, id uint16, flags uint8, scopes uint8, fields ...field) []byte {
		return cat(u8(version), u32(1), u16(id), u8(flags), u8(scopes), u8(uint8(len(fields))), fieldSpecs(fields))
	}
	ipv4 := field{id: fieldIPv4SrcAddr, length: 4}
	r := newTestDecoder(t, DefaultConfiguration())
	_, err := r.Restore(exporter(tmpl(9, 256, 0, 0, ipv4)), testReceived)
	require.NoError(t, err, "the hand-made blob is valid as a base")
	f("template version 5", exporter(tmpl(5, 256, 0, 0, ipv4)), ErrStateCorrupt)
	f("template ID 255", exporter(tmpl(9, 255, 0, 0, ipv4)), ErrStateCorrupt)
	f("unknown flag", exporter(tmpl(9, 256, 2, 0, ipv4)), ErrStateCorrupt)
	f("no fields", exporter(tmpl(9, 256, 0, 0)), ErrStateCorrupt)
	f("more scopes than fields", exporter(tmpl(9, 256, 1, 2, ipv4)), ErrStateCorrupt)
	f("scopes in a data template", exporter(tmpl(9, 256, 0, 1, ipv4)), ErrStateCorrupt)
	f("zero-length fields only", exporter(tmpl(9, 256, 0, 0, field{id: 1, length: 0})), ErrStateCorrupt)
	f("field count beyond the blob", exporter(cat(u8(9), u32(1), u16(256), u8(0), u8(0), u8(100), fieldSpecs([]field{ipv4}))), ErrStateCorrupt)
	f("IPv4-mapped address", withCRC(cat([]byte{1, 1, 16}, netip.MustParseAddr("::ffff:192.0.2.1").AsSlice(), []byte{0, 0, 0}, make([]byte, 4))), ErrStateCorrupt)
	f("address of 5 bytes", withCRC(cat([]byte{1, 1, 5}, make([]byte, 5), []byte{0, 0, 0}, make([]byte, 4))), ErrStateCorrupt)

	// Random edits under a valid checksum reach the parser: it refuses or
	// restores, never panics.
	rng := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		b := bytes.Clone(blob)
		for range 1 + rng.IntN(3) {
			b[1+rng.IntN(len(b)-5)] = byte(rng.Uint32())
		}
		r := newTestDecoder(t, DefaultConfiguration())
		if _, err := r.Restore(withCRC(b), testReceived); err != nil {
			require.ErrorIs(t, err, ErrStateCorrupt)
			require.Empty(t, r.Exporters())
		}
	}
}
