package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The committed bundle must come from the committed sources: build.mjs
// records their hashes in sources.sha256, and this recomputes them without Node.
func TestStaticIsBuiltFromSources(t *testing.T) {
	want, err := os.ReadFile("sources.sha256")
	require.NoError(t, err)
	inputs := []string{"build.mjs", "package-lock.json"}
	require.NoError(t, filepath.WalkDir("src", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && regexp.MustCompile(`\.(js|css|html)$`).MatchString(p) {
			inputs = append(inputs, filepath.ToSlash(p))
		}
		return err
	}))
	sort.Strings(inputs)
	var got strings.Builder
	for _, p := range inputs {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		got.WriteString(hex.EncodeToString(sum[:]) + "  " + p + "\n")
	}
	require.Equal(t, string(want), got.String(), "web/src changed since the last build: run make web and commit web/static and web/sources.sha256")
}

func TestHandlerServesTheDashboard(t *testing.T) {
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(body)
	}
	resp, index := get("/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/html")
	// Everything the page loads is embedded, and nothing comes from elsewhere.
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(index, -1)
	local := 0
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "data:"), strings.HasPrefix(ref, "/api/"):
			continue
		case strings.Contains(ref, "//"):
			t.Errorf("the page loads %s from another host", ref)
			continue
		}
		local++
		resp, body := get("/" + strings.TrimPrefix(ref, "/"))
		require.Equal(t, http.StatusOK, resp.StatusCode, ref)
		require.NotEmpty(t, body, ref)
		want := map[string]string{".js": "javascript", ".css": "text/css"}[filepath.Ext(ref)]
		require.Contains(t, resp.Header.Get("Content-Type"), want, ref)
	}
	require.Equal(t, 2, local, "app.js and app.css")
}
