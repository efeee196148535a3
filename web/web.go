// Package web owns the dashboard tmsd serves at /: static files built from
// web/src by `make web` (esbuild bundles the ES modules with uPlot) and
// embedded here with go:embed, so a deployment needs no Node and reaches no CDN.
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
