package persist

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmsd/tmsd/internal/decode"
)

// memStore is an in-memory metadata store that counts writes and can fail them.
type memStore struct {
	mu     sync.Mutex
	values map[string][]byte
	puts   int
	err    error
}

func (s *memStore) GetMeta(name string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	return v, ok, nil
}

func (s *memStore) PutMeta(name string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.values == nil {
		s.values = map[string][]byte{}
	}
	s.values[name] = append([]byte(nil), value...)
	s.puts++
	return nil
}

func (s *memStore) state() ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[MetaName], s.puts
}

var exporter = netip.MustParseAddr("192.0.2.1")

// v9Template is a NetFlow v9 datagram announcing template id (IPv4
// addresses and bytes); v9Data is one record of it.
func v9Template(id uint16) []byte {
	p := v9Header()
	p = binary.BigEndian.AppendUint16(p, 0) // template set
	p = binary.BigEndian.AppendUint16(p, 4+4+3*4)
	p = binary.BigEndian.AppendUint16(p, id)
	p = binary.BigEndian.AppendUint16(p, 3)
	for _, f := range [][2]uint16{{8, 4}, {12, 4}, {1, 4}} {
		p = binary.BigEndian.AppendUint16(p, f[0])
		p = binary.BigEndian.AppendUint16(p, f[1])
	}
	return p
}

func v9Data(id uint16) []byte {
	p := v9Header()
	p = binary.BigEndian.AppendUint16(p, id)
	p = binary.BigEndian.AppendUint16(p, 4+12)
	return append(p, 10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0x03, 0xe8)
}

func v9Header() []byte {
	p := binary.BigEndian.AppendUint16(nil, 9)
	p = binary.BigEndian.AppendUint16(p, 1)
	p = binary.BigEndian.AppendUint32(p, 1000)
	p = binary.BigEndian.AppendUint32(p, 1_700_000_000)
	p = binary.BigEndian.AppendUint32(p, 1)
	return binary.BigEndian.AppendUint32(p, 7) // source ID
}

func newDecoder(t *testing.T) *decode.Decoder {
	t.Helper()
	cfg := decode.DefaultConfiguration()
	cfg.HoldDatagrams = -1 // data without a template fails at once
	d, err := decode.New(cfg)
	require.NoError(t, err)
	return d
}

// start starts a persister and stops it at the end of the test.
func start(t *testing.T, d *decode.Decoder, st Store, reg prometheus.Registerer) *Persister {
	t.Helper()
	p, err := New(DefaultConfiguration(), Dependencies{Decoder: d, Store: st, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	t.Cleanup(func() { require.NoError(t, p.Stop()) })
	return p
}

func decodeOK(t *testing.T, d *decode.Decoder, p []byte, flows int) {
	t.Helper()
	got, err := d.Decode(exporter, p, time.Now(), nil)
	require.NoError(t, err)
	require.Len(t, got, flows)
}

func TestSaveOnChangeAtMostEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{}
		d := newDecoder(t)
		p := start(t, d, st, nil)
		interval := DefaultConfiguration().Interval

		decodeOK(t, d, v9Template(256), 0)
		time.Sleep(interval / 2)
		synctest.Wait()
		_, puts := st.state()
		require.Zero(t, puts, "not before the interval")
		time.Sleep(interval / 2)
		synctest.Wait()
		blob, puts := st.state()
		require.Equal(t, 1, puts)
		want, _ := d.State()
		require.Equal(t, want, blob)

		// A refresh of the same template is no change: nothing written.
		decodeOK(t, d, v9Template(256), 0)
		decodeOK(t, d, v9Data(256), 1)
		time.Sleep(3 * interval)
		synctest.Wait()
		_, puts = st.state()
		require.Equal(t, 1, puts)

		// Several changes in one interval: one write.
		decodeOK(t, d, v9Template(257), 0)
		decodeOK(t, d, v9Template(258), 0)
		time.Sleep(interval)
		synctest.Wait()
		_, puts = st.state()
		require.Equal(t, 2, puts)

		// Stop saves what changed since.
		decodeOK(t, d, v9Template(259), 0)
		require.NoError(t, p.Stop())
		blob, puts = st.state()
		require.Equal(t, 3, puts)
		want, _ = d.State()
		require.Equal(t, want, blob)
		require.NoError(t, p.Stop(), "stopping twice is harmless")
	})
}

func TestRestoreAtStart(t *testing.T) {
	st := &memStore{}
	d := newDecoder(t)
	p := start(t, d, st, nil)
	decodeOK(t, d, v9Template(256), 0)
	require.NoError(t, p.Stop())
	_, puts := st.state()
	require.Equal(t, 1, puts)

	// The restarted process decodes data at once.
	restarted := newDecoder(t)
	_, err := restarted.Decode(exporter, v9Data(256), time.Now(), nil)
	require.ErrorIs(t, err, decode.ErrTemplateUnknown, "no state, no template")
	restarted = newDecoder(t)
	reg := prometheus.NewRegistry()
	p = start(t, restarted, st, reg)
	decodeOK(t, restarted, v9Data(256), 1)
	require.NoError(t, p.Stop())
	_, puts = st.state()
	require.Equal(t, 1, puts, "restored state is not written back")
	require.Equal(t, map[string]float64{
		"tmsd_decode_state_saves_total":       0,
		"tmsd_decode_state_save_errors_total": 0,
		"tmsd_decode_state_bytes":             float64(len(st.values[MetaName])),
	}, gather(t, reg))
}

func TestBadStateIsLeftAside(t *testing.T) {
	for name, blob := range map[string][]byte{"corrupt": {1, 2, 3, 4, 5, 6}, "newer version": {99, 0, 0, 0, 0, 0}} {
		t.Run(name, func(t *testing.T) {
			st := &memStore{values: map[string][]byte{MetaName: blob}}
			d := newDecoder(t)
			p := start(t, d, st, nil)
			require.Empty(t, d.Exporters())
			require.NoError(t, p.Stop())
			_, puts := st.state()
			require.Zero(t, puts, "nothing changed: the blob stays for a tmsd that can read it")
		})
	}
}

func TestSaveErrorsAreCountedAndRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{err: errors.New("disk full")}
		d := newDecoder(t)
		reg := prometheus.NewRegistry()
		p := start(t, d, st, reg)
		interval := DefaultConfiguration().Interval
		decodeOK(t, d, v9Template(256), 0)
		time.Sleep(2 * interval)
		synctest.Wait()
		require.Equal(t, float64(2), gather(t, reg)["tmsd_decode_state_save_errors_total"])

		st.mu.Lock()
		st.err = nil
		st.mu.Unlock()
		time.Sleep(interval)
		synctest.Wait()
		_, puts := st.state()
		require.Equal(t, 1, puts)
		require.NoError(t, p.Stop())
		m := gather(t, reg)
		require.Equal(t, float64(1), m["tmsd_decode_state_saves_total"])
		require.Equal(t, float64(2), m["tmsd_decode_state_save_errors_total"])
	})
}

func TestNew(t *testing.T) {
	d := newDecoder(t)
	_, err := New(Configuration{}, Dependencies{Decoder: d, Store: &memStore{}})
	require.Error(t, err)
	_, err = New(DefaultConfiguration(), Dependencies{Decoder: d})
	require.Error(t, err)
	reg := prometheus.NewRegistry()
	_, err = New(DefaultConfiguration(), Dependencies{Decoder: d, Store: &memStore{}, Registry: reg})
	require.NoError(t, err)
	_, err = New(DefaultConfiguration(), Dependencies{Decoder: d, Store: &memStore{}, Registry: reg})
	require.Error(t, err, "metrics registered twice")
	p, err := New(DefaultConfiguration(), Dependencies{Decoder: d, Store: &memStore{}})
	require.NoError(t, err)
	require.NoError(t, p.Start())
	require.Error(t, p.Start(), "already started")
	require.NoError(t, p.Stop())
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return got
}
