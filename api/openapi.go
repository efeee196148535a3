package api

import (
	"encoding"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// The OpenAPI 3.1 document of /api/v1 is built from the route declarations
// (routes.go), the answers' schemas from their Go types by reflection, so that
// neither can drift from what the handlers take and send. It is built once, in
// New, for this server's configuration (max_n, tokens on or off).

func (a *API) openapi(c echo.Context, _ *request) error {
	return c.JSONBlob(http.StatusOK, a.doc)
}

func (a *API) openAPI() map[string]any {
	paths := map[string]any{}
	for i := range a.decl {
		r := &a.decl[i]
		p := "/api/v1" + openAPIPath(r.path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(r.method)] = a.operation(r)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "tmsd API",
			"version": "1",
			"description": "The REST API of tmsd, a NetFlow/IPFIX/sFlow collector: TopN tables, series and capacity reports " +
				"over the stored flows, and the state of the exporters. A bad parameter, an unknown one or one given twice is " +
				"a 400 naming it; times are RFC 3339 UTC in answers.",
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": map[string]any{"Error": errorSchema},
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer",
				"description": "A read token (queries) or an admin token (everything), as made by tmsd token."}},
		},
	}
	if a.auth.enabled() {
		doc["security"] = []any{map[string]any{"bearer": []any{}}}
	}
	return doc
}

var errorSchema = map[string]any{
	"type":     "object",
	"required": []string{"error"},
	"properties": map[string]any{
		"error":     map[string]any{"type": "string"},
		"parameter": map[string]any{"type": "string", "description": "The parameter at fault (400)."},
	},
	"additionalProperties": false,
}

// openAPIPath turns Echo's /exporters/:addr into /exporters/{addr}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// operationID is getTop, deleteExportersAddr…
func operationID(r *route) string {
	id := strings.ToLower(r.method)
	for _, s := range strings.Split(strings.TrimSuffix(r.path, ".json"), "/") {
		s = strings.TrimPrefix(s, ":")
		if s != "" {
			id += strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return id
}

func (a *API) operation(r *route) map[string]any {
	op := map[string]any{"operationId": operationID(r), "summary": r.summary}
	if r.desc != "" {
		op["description"] = r.desc
	}
	if len(r.params) > 0 {
		var ps []any
		for _, p := range r.params {
			ps = append(ps, paramObject(p))
		}
		op["parameters"] = ps
	}
	ok := map[string]any{"description": "The answer.",
		"content": map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.answer))}}}
	if r.csv {
		ok["content"].(map[string]any)["text/csv"] = map[string]any{"schema": map[string]any{"type": "string",
			"description": "One header row, RFC 4180, numbers unformatted, times RFC 3339 UTC."}}
		str := map[string]any{"type": "string"}
		ok["headers"] = map[string]any{
			"X-Tmsd-Tiers":     map[string]any{"description": "The tiers read, finest first.", "schema": str},
			"X-Tmsd-Exact":     map[string]any{"description": "Whether every figure of the answer is exact.", "schema": str},
			"X-Tmsd-Open-Step": map[string]any{"description": "The start of the step still open, when the range holds it.", "schema": str},
		}
	}
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc,
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	}
	if r.body != nil {
		op["requestBody"] = map[string]any{"required": true,
			"content": map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.body))}}}
	}
	status := "200"
	if r.status != 0 {
		status = strconv.Itoa(r.status)
	}
	resps := map[string]any{
		status: ok,
		"400":  errResp("A bad, unknown or repeated parameter, named in parameter."),
		"401":  errResp("No token, or a wrong one (when tokens are configured)."),
	}
	if r.admin {
		resps["403"] = errResp("A read token: this needs an admin token.")
	}
	if r.notFound != "" {
		resps["404"] = errResp(r.notFound)
	}
	op["responses"] = resps
	return op
}

func paramObject(p param) map[string]any {
	in := "query"
	if p.path {
		in = "path"
	}
	value := func(s string) any {
		if p.typ == "integer" {
			if n, err := strconv.Atoi(s); err == nil {
				return n
			}
		}
		return s
	}
	schema := map[string]any{"type": p.typ}
	if p.enum != nil {
		schema["enum"] = p.enum
	}
	if p.def != "" {
		schema["default"] = value(p.def)
	}
	if p.max > 0 {
		schema["minimum"], schema["maximum"] = p.min, p.max
	}
	o := map[string]any{"name": p.name, "in": in, "description": p.desc, "schema": schema}
	if p.required || p.path {
		o["required"] = true
	}
	if p.example != "" {
		o["example"] = value(p.example)
	}
	return o
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// schemaOf is the JSON Schema of what encoding/json makes of a value of type
// t: objects with their exact properties (required unless omitempty),
// embedded structs flattened, pointers without omitempty nullable.
func schemaOf(t reflect.Type) map[string]any {
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Struct && t.Implements(textMarshaler) {
		return map[string]any{"type": "string"} // alerts.Duration: "5m0s"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem())
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props, required := map[string]any{}, []string{}
		addFields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{} // an interface: anything
}

func addFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			addFields(f.Type, props, required)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s := schemaOf(f.Type)
		omit := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		if f.Type.Kind() == reflect.Pointer && !omit {
			if typ, ok := s["type"].(string); ok {
				s["type"] = []string{typ, "null"}
			} else {
				s = map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
			}
		}
		props[name] = s
		if !omit {
			*required = append(*required, name)
		}
	}
}
