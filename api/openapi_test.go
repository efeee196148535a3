package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/stretchr/testify/require"
)

// openAPIDoc is the document a served; it must be a valid OpenAPI 3.1 one,
// by the OpenAPI Initiative's JSON Schema (libopenapi-validator's copy).
func openAPIDoc(t *testing.T, h http.Handler) (map[string]any, validator.Validator) {
	t.Helper()
	rr := do(h, http.MethodGet, "/api/v1/openapi.json", "")
	require.Equal(t, http.StatusOK, rr.Code, rr.Body.String())
	require.Equal(t, "application/json", rr.Header().Get("Content-Type")[:16])
	var doc map[string]any
	require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &doc))
	require.Equal(t, "3.1.0", doc["openapi"])
	d, err := libopenapi.NewDocument(rr.Body.Bytes())
	require.NoError(t, err)
	ok, errs := schema_validation.ValidateOpenAPIDocument(d)
	require.True(t, ok, "%v", errs)
	v, verrs := validator.NewValidator(d)
	require.Empty(t, verrs)
	ok, errs = v.ValidateDocument()
	require.True(t, ok, "%v", errs)
	return doc, v
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	openAPIDoc(t, newTestAPI(t))
	// With tokens, the document says so, and needs a read token like the rest of /api/v1.
	h := newTestAPIWith(t, lockedConfig(), nil).Handler()
	require.Equal(t, http.StatusUnauthorized, do(h, http.MethodGet, "/api/v1/openapi.json", "").Code)
	rr := do(h, http.MethodGet, "/api/v1/openapi.json", "Bearer "+readToken)
	require.Equal(t, http.StatusOK, rr.Code)
	require.Contains(t, rr.Body.String(), `"security":[{"bearer":[]}]`)
}

// Every route Echo serves under /api/v1 is in the document, and every
// operation of the document is a route: a route added outside the
// declarations (routes.go) fails here.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	cfg := DefaultConfiguration()
	cfg.Static = http.NotFoundHandler()
	a := newTestAPIWith(t, cfg, nil)
	doc, _ := openAPIDoc(t, a.Handler())
	paths := doc["paths"].(map[string]any)
	// Outside the document, on purpose: not part of /api/v1.
	outside := []string{"GET /healthz", "GET /metrics", "GET /debug/pprof/*", "GET /*"}
	served := map[string]bool{}
	for _, r := range a.echo.Routes() {
		if r.Method == "echo_route_not_found" {
			continue // the group's catch-alls: 404, or 405 (noRoute)
		}
		name := r.Method + " " + r.Path
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			require.Contains(t, outside, name, "route %s is neither in /api/v1 nor listed as outside it", name)
			continue
		}
		op, _ := paths[openAPIPath(r.Path)].(map[string]any)
		require.Contains(t, op, strings.ToLower(r.Method), "route %s is not in the OpenAPI document", name)
		served[strings.ToLower(r.Method)+" "+openAPIPath(r.Path)] = true
	}
	n := 0
	for p, item := range paths {
		for m := range item.(map[string]any) {
			require.True(t, served[m+" "+p], "the document has %s %s, which Echo does not serve", m, p)
			n++
		}
	}
	require.Equal(t, len(served), n)
	require.GreaterOrEqual(t, n, 9)
}

// paramCase is how to exercise a documented parameter: a value the handler
// must take (200), one it must refuse naming the parameter (400), and the
// other parameters it needs alongside. The routes with a body or a path
// naming an alert rule or silence are exercised in alerts_test.go.
type paramCase struct {
	good, bad string
	with      map[string]string
}

var paramCases = map[string]paramCase{
	"by":       {"app", "nope", map[string]string{"n": "3"}},
	"n":        {"3", "0", map[string]string{"by": "app"}},
	"key":      {"10.0.0.2", "not-an-ip", map[string]string{"by": "dstip"}},
	"metric":   {"packets", "octets", nil},
	"step":     {"1h", "7s", nil},
	"from":     {"-2h", "yesterday", nil},
	"to":       {"now", "tomorrow", nil},
	"compare":  {"1d", "2w", nil},
	"format":   {"csv", "xlsx", nil},
	"exporter": {"192.0.2.1", "router1", nil},
	"proto":    {"tcp", "foo", nil},
	"if":       {"192.0.2.1:3", "nope", map[string]string{"dir": "in"}},
	"dir":      {"in", "sideways", map[string]string{"if": "192.0.2.1:3"}},
	"app":      {"https", strings.Repeat("a", 100), map[string]string{"by": "srcip", "n": "3"}},
	"ip":       {"10.0.0.2", "nope", map[string]string{"by": "app", "n": "3"}},
	"addr":     {"192.0.2.1", "nope", nil},
	"state":    {"firing", "burning", nil},
	"rule":     {"some-rule", "", nil}, // any name filters: none is bad
}

// Every documented parameter is taken by its handler: a good value answers
// 200 (request and answer valid by the document), a bad one 400 naming it.
// Every answer without parameters is valid by the document too.
func TestOpenAPIParametersAreAccepted(t *testing.T) {
	m := now.Add(-5 * 60e9)
	h := newTestAPI(t, rec("10.0.0.1", "10.0.0.2", 40000, 443, 60_000, m), rec("10.0.0.3", "10.0.0.2", 40001, 22, 30_000, m))
	doc, v := openAPIDoc(t, h)
	send := func(method, path string, q url.Values) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path+"?"+q.Encode(), nil)
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, req)
		if rr.Code == http.StatusOK {
			ok, errs := v.ValidateHttpRequestResponse(req, rr.Result())
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error()+": "+e.Reason+fmt.Sprint(e.SchemaValidationErrors))
			}
			require.True(t, ok, "%s %s?%s: %s", method, path, q.Encode(), strings.Join(msgs, "; "))
		}
		return rr
	}
	checked := 0
	for p, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			method = strings.ToUpper(method)
			if _, body := op.(map[string]any)["requestBody"]; body || strings.HasPrefix(p, "/api/v1/alerts/") && strings.Contains(p, "{") {
				continue
			}
			ps, _ := op.(map[string]any)["parameters"].([]any)
			base := url.Values{}
			for _, x := range ps {
				x := x.(map[string]any)
				if x["in"] == "query" && x["required"] == true {
					base.Set(x["name"].(string), fmt.Sprint(x["example"]))
				}
			}
			if len(ps) == 0 {
				rr := send(method, p, nil)
				require.Equal(t, http.StatusOK, rr.Code, "%s %s: %s", method, p, rr.Body)
				checked++
			}
			for _, x := range ps {
				x := x.(map[string]any)
				name := x["name"].(string)
				c, ok := paramCases[name]
				require.True(t, ok, "parameter %s of %s %s has no case in paramCases", name, method, p)
				run := func(val string) *httptest.ResponseRecorder {
					q := cloneValues(base)
					for k, v := range c.with {
						if declared(ps, k) {
							q.Set(k, v)
						}
					}
					if x["in"] == "path" {
						return send(method, strings.Replace(p, "{"+name+"}", val, 1), q)
					}
					q.Set(name, val)
					return send(method, p, q)
				}
				rr := run(c.good)
				require.Equal(t, http.StatusOK, rr.Code, "%s %s with %s=%s: %s", method, p, name, c.good, rr.Body)
				if c.bad == "" {
					checked++
					continue
				}
				rr = run(c.bad)
				require.Equal(t, http.StatusBadRequest, rr.Code, "%s %s with %s=%s: %s", method, p, name, c.bad, rr.Body)
				var body map[string]string
				require.NoError(t, json.Unmarshal(rr.Body.Bytes(), &body))
				require.Equal(t, name, body["parameter"], "%s %s with %s=%s", method, p, name, c.bad)
				checked++
			}
		}
	}
	require.Greater(t, checked, 40)
}

// declared reports whether an operation's parameters have name.
func declared(ps []any, name string) bool {
	for _, x := range ps {
		if x.(map[string]any)["name"] == name {
			return true
		}
	}
	return false
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, vs := range q {
		out[k] = slices.Clone(vs)
	}
	return out
}

// The by= description names every dimension its enum takes.
func TestByDescriptionNamesEveryDimension(t *testing.T) {
	for _, required := range []bool{true, false} {
		p := pBy(required)
		words := strings.FieldsFunc(p.desc, func(r rune) bool { return r == ',' || r == ' ' || r == '(' || r == ')' || r == '.' })
		for _, d := range p.enum {
			require.Contains(t, words, d, "by's description omits %s", d)
		}
	}
}
