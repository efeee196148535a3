package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tmsd/tmsd/internal/query"
)

// span is a range of data as JSON shows it: RFC 3339 edges, [from, to), to
// pass as they are to the from= and to= of any query.
type span struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func newSpan(s query.Span) span {
	return span{From: s.From.UTC().Format(time.RFC3339), To: s.To.UTC().Format(time.RFC3339)}
}

// dataResponse is GET /api/v1/data: where the data is. From and To are null
// on an empty store; a tier without data, and "open" without open minutes,
// are left out.
type dataResponse struct {
	From  *string         `json:"from"`
	To    *string         `json:"to"`
	Tiers map[string]span `json:"tiers"`
	// Open are the minutes still counting in memory, not yet stored.
	Open *span `json:"open,omitempty"`
}

// data answers where the store and the open minutes hold traffic, so that a
// client whose range is empty (a capture imported from last week) can say
// when there is some and go there.
func (a *API) data(c echo.Context) error {
	b, err := a.deps.Engine.Bounds()
	if err != nil {
		return err
	}
	resp := dataResponse{Tiers: map[string]span{}}
	for t, s := range b.Tiers {
		resp.Tiers[t.String()] = newSpan(s)
	}
	if b.Open != nil {
		o := newSpan(*b.Open)
		resp.Open = &o
	}
	if !b.All.From.IsZero() {
		all := newSpan(b.All)
		resp.From, resp.To = &all.From, &all.To
	}
	return c.JSON(http.StatusOK, resp)
}
