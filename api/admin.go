package api

import (
	"errors"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
)

// limitBody refuses a declared body over MaxBodyBytes at once (413) and caps
// an undeclared (chunked) one, so that no client makes the server buffer more.
func (a *API) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > a.cfg.MaxBodyBytes {
			return c.JSON(http.StatusRequestEntityTooLarge, map[string]string{"error": "request body larger than the limit"})
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(c.Response(), r.Body, a.cfg.MaxBodyBytes)
		}
		return next(c)
	}
}

// config shows the effective configuration (admin): what the flags and the
// file added up to, secrets already redacted by whoever built it.
func (a *API) config(c echo.Context, _ *request) error {
	if a.deps.Config == nil {
		return c.JSON(http.StatusOK, map[string]any{})
	}
	return c.JSON(http.StatusOK, a.deps.Config)
}

// forget drops an exporter's decoder state (admin): templates, sampling
// rates and counters, as when a router is replaced behind the same address.
func (a *API) forget(c echo.Context, _ *request) error {
	s := c.Param("addr")
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return badParam("addr", "not an IP address: %q", s)
	}
	addr = addr.Unmap().WithZone("") // the decoder keys exporters without zones
	if !a.deps.Exporters.Forget(addr) {
		return c.JSON(http.StatusNotFound, map[string]string{"error": "unknown exporter " + addr.String()})
	}
	a.deps.Logger.Info("exporter state forgotten on request", "exporter", addr)
	return c.JSON(http.StatusOK, map[string]string{"forgotten": addr.String()})
}

// ErrNothingToReload is the reload of a tmsd started without a configuration file.
var ErrNothingToReload = errors.New("tmsd was started without --config: there is no file to reload")

// reload re-reads the configuration file's rules and names (admin), as SIGHUP does.
func (a *API) reload(c echo.Context, _ *request) error {
	if a.deps.Reloader == nil {
		return c.JSON(http.StatusNotFound, map[string]string{"error": ErrNothingToReload.Error()})
	}
	res, err := a.deps.Reloader.Reload()
	if errors.Is(err, ErrNothingToReload) {
		return c.JSON(http.StatusNotFound, map[string]string{"error": err.Error()})
	}
	if err != nil {
		return c.JSON(http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	return c.JSON(http.StatusOK, res)
}

type offenderJSON struct {
	Source    string `json:"source"`
	Datagrams uint64 `json:"datagrams"`
	Error     uint64 `json:"error"`
	LastSeen  string `json:"last_seen"`
}

// rejectedResponse is the answer of GET /api/v1/rejected.
type rejectedResponse struct {
	Total   uint64         `json:"total"`
	Sources []offenderJSON `json:"sources"`
}

// rejected lists the sources whose datagrams the allow-list refused, most
// first. Datagrams is an upper bound, at most Error above the truth.
func (a *API) rejected(c echo.Context, _ *request) error {
	resp := rejectedResponse{Sources: []offenderJSON{}}
	if a.deps.Offenders != nil {
		total, top := a.deps.Offenders.Snapshot()
		resp.Total = total
		for _, o := range top {
			resp.Sources = append(resp.Sources, offenderJSON{Source: o.Source.String(), Datagrams: o.Datagrams,
				Error: o.Error, LastSeen: o.LastSeen.UTC().Format(time.RFC3339)})
		}
	}
	return c.JSON(http.StatusOK, resp)
}
