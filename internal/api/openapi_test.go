package api_test

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/api"
)

// The API tests run every request through checkedAgainstSpec, so that the
// OpenAPI document (openapi.json) cannot drift from what the server does: a
// request the document allows must get an answer the document lists for
// its status, and a request it does not allow must get a listed 4xx in the
// error shape.

// checkedExchanges counts the requests checked against the document.
var checkedExchanges atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	fmt.Printf("openapi.json: %d requests and their answers checked against the document\n", checkedExchanges.Load())
	os.Exit(code)
}

// apiSpec is the loaded document and its router.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

// loadSpec loads and validates openapi.json once per test binary.
var loadSpec = sync.OnceValues(func() (*apiSpec, error) {
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", ndjsonBodyDecoder)
	for _, text := range []string{"text/html", "text/javascript", "text/css"} {
		openapi3filter.RegisterBodyDecoder(text, textBodyDecoder)
	}
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("validate openapi.json: %w", err)
	}
	// The document's server is the default listen address; the tests'
	// servers listen on other ports, so routes match on the path alone.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route openapi.json: %w", err)
	}
	return &apiSpec{doc: doc, router: router}, nil
})

// ndjsonBodyDecoder decodes newline-delimited JSON into the array of its
// lines, which is how the document describes such a body.
func ndjsonBodyDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	lines := []any{}
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(lines)+1, err)
		}
		lines = append(lines, v)
	}
	return lines, sc.Err()
}

// textBodyDecoder decodes a text body (River's UI page) into a string.
func textBodyDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	return string(data), err
}

// checkedAgainstSpec wraps h so that every request and its answer are
// checked against the document; a mismatch fails t.
func checkedAgainstSpec(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	spec, err := loadSpec()
	require.NoError(t, err)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/river/") && r.URL.Path != "/admin/river/" {
			// River's UI assets and JSON API are River's, not this document's.
			h.ServeHTTP(w, r)
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, "/console/"); ok && rest != "" && rest != "session" && !strings.HasPrefix(rest, "assets/") {
			// The console's own paths are its page (GET /console/), which
			// routes itself.
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// The client stopped sending: nothing whole to check.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), iotest.ErrReader(err)))
			h.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		in, reqErr := spec.checkRequest(r, body)
		rec := &recordingWriter{ResponseWriter: w}
		// A handler that aborts the answer panics through here unchecked.
		h.ServeHTTP(rec, r)
		// The answer's check below may outlast the last write deadline
		// the handler set (a download's, by its minimum rate), which
		// also bounds the flush net/http makes after the handler: the
		// check's time is not the client's.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		if r.Context().Err() != nil {
			return // the client hung up: the answer may be cut short
		}
		if err := spec.checkAnswer(in, reqErr, rec); err != nil {
			t.Errorf("openapi.json disagrees with %s %s -> %d: %v", r.Method, r.URL.RequestURI(), rec.statusCode(), err)
		}
		checkedExchanges.Add(1)
	})
}

// checkRequest finds the request's operation and checks the request
// against it. in is nil when no operation matches.
func (s *apiSpec) checkRequest(r *http.Request, body []byte) (in *openapi3filter.RequestValidationInput, err error) {
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return nil, err
	}
	in = &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: presentedKey, SkipSettingDefaults: true}}
	if err := checkQuery(route, req.URL.RawQuery); err != nil {
		return in, err
	}
	return in, openapi3filter.ValidateRequest(context.Background(), in)
}

// checkQuery refuses what the contract refuses in a query string and
// openapi3filter lets through: a malformed one, a parameter the operation
// does not declare, and a parameter that is not an array given twice.
func checkQuery(route *routers.Route, rawQuery string) error {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return err
	}
	declared := map[string]*openapi3.Parameter{}
	for _, p := range slices.Concat(route.PathItem.Parameters, route.Operation.Parameters) {
		if p.Value.In == openapi3.ParameterInQuery {
			declared[p.Value.Name] = p.Value
		}
	}
	for name, vals := range values {
		p, ok := declared[name]
		switch {
		case !ok:
			return fmt.Errorf("query parameter %q is not declared", name)
		case len(vals) > 1 && !p.Schema.Value.Type.Is(openapi3.TypeArray):
			return fmt.Errorf("query parameter %q is given %d times", name, len(vals))
		}
	}
	return nil
}

// presentedKey passes a security scheme when the request presents a key in
// the scheme's form; whether the key is known and has the scope is the
// server's to say (401, 403).
func presentedKey(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch scheme := in.SecurityScheme; scheme.Type {
	case "http":
		name, key, _ := strings.Cut(h.Get("Authorization"), " ")
		if strings.EqualFold(name, scheme.Scheme) && strings.TrimSpace(key) != "" {
			return nil
		}
	case "apiKey":
		if scheme.In == "cookie" {
			if _, err := in.RequestValidationInput.Request.Cookie(scheme.Name); err == nil {
				return nil
			}
		} else if h.Get(scheme.Name) != "" {
			return nil
		}
	}
	return fmt.Errorf("no key in the form of %s", in.SecuritySchemeName)
}

// checkAnswer checks the answer to a request: the documented answer for
// its status when the request is valid; a documented 4xx in the error
// shape when it is not (404 or 405 when no operation matches).
func (s *apiSpec) checkAnswer(in *openapi3filter.RequestValidationInput, reqErr error, rec *recordingWriter) error {
	status, header, body := rec.statusCode(), rec.Header().Clone(), rec.body.Bytes()
	if header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("gzip body: %w", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			return fmt.Errorf("gzip body: %w", err)
		}
	}
	if reqErr != nil && (status < 400 || status > 499) {
		return fmt.Errorf("the document does not allow the request (%v), yet it was answered %d", reqErr, status)
	}
	if in == nil {
		return s.checkUnrouted(reqErr, status, header, body)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return err
	}
	return checkErrorCode(in.Route.Operation, status, body)
}

// checkErrorCode checks that an error answer carries the code its
// response names in x-error-code: every error response shares the one
// ErrorResponse schema, which allows every code.
func checkErrorCode(op *openapi3.Operation, status int, body []byte) error {
	ref := op.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return nil
	}
	want, ok := ref.Value.Extensions["x-error-code"].(string)
	if !ok {
		return nil
	}
	var got struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		return fmt.Errorf("error body: %w", err)
	}
	if got.Error.Code != want {
		return fmt.Errorf("answered %d with code %q; the document says %q", status, got.Error.Code, want)
	}
	return nil
}

// checkUnrouted checks the answer to a request that no operation matches:
// 404, or 405 with Allow for a documented path, in the error shape.
func (s *apiSpec) checkUnrouted(reqErr error, status int, header http.Header, body []byte) error {
	want := http.StatusNotFound
	if errors.Is(reqErr, routers.ErrMethodNotAllowed) {
		want = http.StatusMethodNotAllowed
		if header.Get("Allow") == "" {
			return errors.New("405 without Allow")
		}
	}
	if status != want {
		return fmt.Errorf("no operation matches (%v), yet it was answered %d rather than %d", reqErr, status, want)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("error answered as %q", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("error body: %w", err)
	}
	return s.doc.Components.Schemas["ErrorResponse"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// recordingWriter passes an answer through as it is written (a download
// still streams) and keeps a copy to check.
type recordingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (the download
// extends its write deadline).
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *recordingWriter) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()

	t.Run("IsAValidOpenAPI31Document", func(t *testing.T) {
		t.Parallel()
		spec, err := loadSpec()
		require.NoError(t, err)
		require.Equal(t, "3.1.0", spec.doc.OpenAPI)
	})

	t.Run("DocumentsEveryRouteWithItsScopeAndNoOther", func(t *testing.T) {
		t.Parallel()
		spec, err := loadSpec()
		require.NoError(t, err)
		routes := map[string]string{} // "METHOD /path" -> scope
		for _, rt := range (&api.Server{}).Routes() {
			path := strings.NewReplacer("...}", "}", "{$}", "").Replace(rt.Pattern)
			routes[cmp.Or(rt.Method, "GET")+" "+path] = rt.Scope // a route of every method is documented as GET
		}
		documented := map[string]string{}
		for path, item := range spec.doc.Paths.Map() {
			for method, op := range item.Operations() {
				name := method + " " + path
				scope, _ := op.Extensions["x-required-scope"].(string)
				documented[name] = scope
				require.NotNil(t, op.Security, "%s states its security", name)
				for _, req := range *op.Security {
					for scheme, scopes := range req {
						require.Equal(t, []string{scope}, scopes, "%s: scopes of %s", name, scheme)
					}
				}
				if scope == "" {
					require.Empty(t, *op.Security, "%s needs no key", name)
				} else if scope == audex.ScopeOperator {
					require.Len(t, *op.Security, 3, "%s takes a bearer key, X-API-Key or HTTP Basic", name)
				} else {
					require.Len(t, *op.Security, 3, "%s takes a bearer key, X-API-Key or the console's session", name)
				}
			}
		}
		require.Equal(t, routes, documented)
	})

	t.Run("EveryErrorResponseIsTheErrorShapeWithItsCode", func(t *testing.T) {
		t.Parallel()
		spec, err := loadSpec()
		require.NoError(t, err)
		codes := []string{api.CodeInvalidArgument, api.CodeUnauthenticated, api.CodePermissionDenied, api.CodeNotFound,
			api.CodeMethodNotAllowed, api.CodeConflict, api.CodePayloadTooLarge, api.CodeRateLimited, api.CodeInternal, api.CodeUnavailable}
		var enum []string
		for _, v := range spec.doc.Components.Schemas["Error"].Value.Properties["code"].Value.Enum {
			enum = append(enum, v.(string))
		}
		require.ElementsMatch(t, codes, enum, "Error.code lists the server's codes")
		for path, item := range spec.doc.Paths.Map() {
			for method, op := range item.Operations() {
				for status, ref := range op.Responses.Map() {
					if n, _ := strconv.Atoi(status); n < 400 {
						continue
					}
					name := fmt.Sprintf("%s %s %s", method, path, status)
					// One schema for every error, not an allOf that
					// generators merge into an object without message and
					// field.
					media := ref.Value.Content.Get("application/json")
					require.NotNil(t, media, name)
					require.Equal(t, "#/components/schemas/ErrorResponse", media.Schema.Ref, name)
					code, _ := ref.Value.Extensions["x-error-code"].(string)
					require.Equal(t, status, strconv.Itoa((&api.Error{Code: code}).Status()), "%s: x-error-code %q", name, code)
					require.Contains(t, *ref.Value.Description, "`"+code+"`", "%s: the description names the code", name)
				}
			}
		}
	})

	t.Run("IsServedWithoutAKey", func(t *testing.T) {
		t.Parallel()
		srv := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)})
		ts := serve(t, srv, slog.New(slog.DiscardHandler))
		b := &testBundle{url: ts.URL, server: srv}
		want, err := os.ReadFile("openapi.json")
		require.NoError(t, err)

		res := b.do(t, "GET", "/openapi.json", "", nil)
		require.Equal(t, http.StatusOK, res.status)
		require.Equal(t, "application/json", res.header.Get("Content-Type"))
		require.Equal(t, want, res.body)

		res = b.do(t, "GET", "/openapi.json?format=yaml", "", nil)
		require.Equal(t, http.StatusBadRequest, res.status)
		require.Equal(t, api.CodeInvalidArgument, res.errorBody(t).Code)
	})
}

// TestOpenAPIAgreesWithServer holds the server to the document where the
// two once disagreed: maxLength counts characters, not bytes (300 "é" are
// 300 characters), and an integer is any number whose fraction is zero
// (JSON Schema's integer: 200.0 is 200).
func TestOpenAPIAgreesWithServer(t *testing.T) {
	t.Parallel()
	b := setup(t)
	spec, err := loadSpec()
	require.NoError(t, err)

	// byteBounds are the limits in bytes that the server keeps beside a
	// field's maxLength, which the field's description states.
	byteBounds := map[string]int{"resource": 2400}

	t.Run("TextLimitsCountCharacters", func(t *testing.T) {
		t.Parallel()
		input := spec.doc.Components.Schemas["EventInput"].Value
		type limit struct {
			path      []string // actor.name is {"actor", "name"}
			maxLength int
		}
		var limits []limit
		for name, prop := range input.Properties {
			if prop.Value.MaxLength != nil {
				limits = append(limits, limit{[]string{name}, int(*prop.Value.MaxLength)})
			}
			for sub, subProp := range prop.Value.Properties {
				if subProp.Value.MaxLength != nil {
					limits = append(limits, limit{[]string{name, sub}, int(*subProp.Value.MaxLength)})
				}
			}
		}
		require.GreaterOrEqual(t, len(limits), 11, "EventInput's text fields")
		for name, bound := range byteBounds {
			require.Contains(t, input.Properties[name].Value.Description, fmt.Sprintf("%d bytes", bound), "%s states its byte bound", name)
		}
		for _, l := range limits {
			field := strings.Join(l.path, ".")
			t.Run(field, func(t *testing.T) {
				t.Parallel()
				with := func(v string) map[string]any {
					e := event("user.login", "alice")
					if len(l.path) == 1 {
						e[l.path[0]] = v
					} else {
						party := map[string]any{"id": "alice"}
						party[l.path[1]] = v
						e[l.path[0]] = party
					}
					return e
				}
				// maxLength characters, as many of them "é" (2 bytes) as
				// any byte bound allows: accepted and stored as given.
				wide := l.maxLength
				if bound, ok := byteBounds[field]; ok {
					wide = min(wide, bound-l.maxLength)
				}
				v := strings.Repeat("é", wide) + strings.Repeat("a", l.maxLength-wide)
				res := b.do(t, "POST", "/v1/audit/events", b.key, map[string]any{"events": []any{with(v)}})
				require.Equal(t, http.StatusCreated, res.status, "%d characters, %d bytes: %s", l.maxLength, len(v), res.body)
				var answer ingestAnswer
				res.decode(t, &answer)
				var stored map[string]any
				b.do(t, "GET", "/v1/audit/events/"+answer.IDs[0], b.key, nil).decode(t, &stored)
				got := stored[l.path[0]]
				if len(l.path) == 2 {
					got = got.(map[string]any)[l.path[1]]
				}
				require.Equal(t, v, got)

				// One character more is refused, naming the field.
				res = b.do(t, "POST", "/v1/audit/events", b.key, map[string]any{"events": []any{with(v + "é")}})
				require.Equal(t, http.StatusBadRequest, res.status, "body: %s", res.body)
				require.Equal(t, "events[0]."+field, res.errorBody(t).Field)
			})
		}
	})

	t.Run("ThreeHundredAccentsAreThreeHundredCharacters", func(t *testing.T) {
		t.Parallel()
		e := event("user.login", "alice")
		e["actor"] = map[string]any{"id": "alice", "name": strings.Repeat("é", 300)}
		b.ingest(t, e)
	})

	t.Run("ResourceKeepsItsByteBound", func(t *testing.T) {
		t.Parallel()
		e := event("user.login", "alice")
		e["resource"] = strings.Repeat("é", 2048) // 2048 characters, 4096 bytes
		res := b.do(t, "POST", "/v1/audit/events", b.key, map[string]any{"events": []any{e}})
		require.Equal(t, http.StatusBadRequest, res.status, "body: %s", res.body)
		require.Equal(t, "events[0].resource", res.errorBody(t).Field)
	})

	t.Run("FiltersCountCharacters", func(t *testing.T) {
		t.Parallel()
		res := b.do(t, "GET", "/v1/audit/events?actor_id="+url.QueryEscape(strings.Repeat("é", 1024)), b.key, nil)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		res = b.do(t, "GET", "/v1/audit/events?actor_id="+url.QueryEscape(strings.Repeat("é", 1025)), b.key, nil)
		require.Equal(t, http.StatusBadRequest, res.status, "body: %s", res.body)
		require.Equal(t, "actor_id", res.errorBody(t).Field)
	})

	t.Run("IntegersMayHaveAZeroFraction", func(t *testing.T) {
		t.Parallel()
		accepted := []struct{ statusCode, durationMS string }{
			{"200.0", "0.0"}, {"2e2", "-0.0"}, {"2E+2", "1.5e1"}, {"20.0e1", "150e-1"},
			{"2000e-1", "0e-99999999999999999999"}, {"0.404e3", "9223372036854775807.0"}, {"599.000000", "12"},
		}
		want := []struct {
			statusCode int
			durationMS int64
		}{{200, 0}, {200, 0}, {200, 15}, {200, 15}, {200, 0}, {404, 9223372036854775807}, {599, 12}}
		events := make([]string, len(accepted))
		for i, a := range accepted {
			events[i] = fmt.Sprintf(`{"action":"user.login","actor":{"id":"alice"},"status_code":%s,"duration_ms":%s}`, a.statusCode, a.durationMS)
		}
		res := b.do(t, "POST", "/v1/audit/events", b.key, `{"events":[`+strings.Join(events, ",")+`]}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		var answer ingestAnswer
		res.decode(t, &answer)
		for i, id := range answer.IDs {
			var stored audex.Event
			b.do(t, "GET", "/v1/audit/events/"+id, b.key, nil).decode(t, &stored)
			require.Equal(t, want[i].statusCode, *stored.StatusCode, "status_code %s", accepted[i].statusCode)
			require.Equal(t, want[i].durationMS, *stored.DurationMS, "duration_ms %s", accepted[i].durationMS)
		}

		res = b.do(t, "PUT", "/v1/audit/retention", b.key, `{"retain_days": 30.0}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.JSONEq(t, `{"retain_days": 30}`, string(res.body))
	})

	t.Run("FractionsAreRefusedNamingTheField", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ field, value string }{
			{"status_code", "200.5"}, {"status_code", "2001e-1"}, {"status_code", "1e30"}, {"status_code", "1e999999999999999999999"},
			{"status_code", `"200"`}, {"duration_ms", "-0.5"}, {"duration_ms", "1e-400"}, {"duration_ms", "9223372036854775808.0"},
			{"duration_ms", "1e19"},
		} {
			body := fmt.Sprintf(`{"events":[{"action":"user.login","actor":{"id":"alice"},%q:%s}]}`, tc.field, tc.value)
			res := b.do(t, "POST", "/v1/audit/events", b.key, body)
			require.Equal(t, http.StatusBadRequest, res.status, "%s %s: %s", tc.field, tc.value, res.body)
			require.Equal(t, "events[0]."+tc.field, res.errorBody(t).Field, "%s %s", tc.field, tc.value)
		}
		res := b.do(t, "PUT", "/v1/audit/retention", b.key, `{"retain_days": 30.5}`)
		require.Equal(t, http.StatusBadRequest, res.status, "body: %s", res.body)
		require.Equal(t, "retain_days", res.errorBody(t).Field)
	})
}
