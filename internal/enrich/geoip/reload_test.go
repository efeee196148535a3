package geoip

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644)) // in place: same inode
}

// TestReload replaces the configured files under a running GeoIP, in fake
// time: each check is a tick of the ticker.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "country.mmdb")
		first := fixture(t, "country ipvAll", map[string]mmdbtype.Map{"2.125.160.0/24": {"country_code": S("FR")}})
		copyFile(t, first, path)
		cfg := files(path, asnTest)
		cfg.ReloadInterval = 30 * time.Second
		reg := prometheus.NewRegistry()
		g, err := New(cfg, Dependencies{Registry: reg, Logger: quiet})
		require.NoError(t, err)
		require.NoError(t, g.Start())
		defer func() { require.NoError(t, g.Stop()) }()

		country := func() string {
			c, _ := g.Lookup(netip.MustParseAddr("2.125.160.216"))
			return string(c[:])
		}
		counts := func() [2]float64 {
			return [2]float64{testutil.ToFloat64(g.reloads.WithLabelValues("country")),
				testutil.ToFloat64(g.reloadErrors.WithLabelValues("country"))}
		}
		tick := func() {
			time.Sleep(cfg.ReloadInterval)
			synctest.Wait()
		}
		require.Equal(t, "FR", country())

		tick() // unchanged: nothing
		require.Equal(t, [2]float64{0, 0}, counts())

		copyFile(t, countryTest, path) // replaced by another database
		tick()
		require.Equal(t, "GB", country())
		require.Equal(t, [2]float64{1, 0}, counts())
		require.Equal(t, "GeoIP2-Country", g.Info()[0].Type)
		_, as := g.Lookup(netip.MustParseAddr("1.128.0.1"))
		require.Equal(t, uint32(1221), as, "the ASN database stays")

		require.NoError(t, os.WriteFile(path, []byte("garbage, not a database"), 0o644))
		tick()
		require.Equal(t, "GB", country(), "the database loaded before stays")
		require.Equal(t, [2]float64{1, 1}, counts())
		tick()
		tick()
		require.Equal(t, [2]float64{1, 1}, counts(), "the same bad file is counted once")

		require.NoError(t, os.Remove(path)) // gone
		tick()
		tick()
		require.Equal(t, "GB", country())
		require.Equal(t, [2]float64{1, 2}, counts())

		// Back, replaced by rename (a new inode), as updaters do.
		tmp := filepath.Join(dir, "new.mmdb")
		copyFile(t, first, tmp)
		require.NoError(t, os.Rename(tmp, path))
		tick()
		require.Equal(t, "FR", country())
		require.Equal(t, [2]float64{2, 2}, counts())

		// An ASN database where the country one should be: refused.
		copyFile(t, asnTest, path)
		tick()
		require.Equal(t, "FR", country())
		require.Equal(t, [2]float64{2, 3}, counts())
	})
}

// TestStopWithoutReload: Stop returns when nothing watches the files too.
func TestStopWithoutReload(t *testing.T) {
	cfg := files(countryTest, "")
	cfg.ReloadInterval = 0
	g, err := New(cfg, Dependencies{Logger: quiet})
	require.NoError(t, err)
	require.NoError(t, g.Start())
	require.Error(t, g.Start())
	require.NoError(t, g.Stop())
	require.NoError(t, g.Stop())
}
