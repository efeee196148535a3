// Package web owns the browser-facing files tmsd serves at /, embedded in the
// binary with go:embed so a deployment needs no Node and reaches no CDN.
// Until the dashboard lands, the index page lists the API endpoints.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the embedded files.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServer(http.FS(sub))
}
