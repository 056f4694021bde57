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
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

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
	openapi3filter.RegisterBodyDecoder("text/html", textBodyDecoder)
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
		if h.Get(scheme.Name) != "" {
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
	return openapi3filter.ValidateResponse(context.Background(), out)
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
					require.Len(t, *op.Security, 2, "%s takes a bearer key or X-API-Key", name)
				}
			}
		}
		require.Equal(t, routes, documented)
	})

	t.Run("IsServedWithoutAKey", func(t *testing.T) {
		t.Parallel()
		srv := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)})
		ts := httptest.NewServer(checkedAgainstSpec(t, srv))
		t.Cleanup(ts.Close)
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
