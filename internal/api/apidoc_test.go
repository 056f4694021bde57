package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex/internal/api"
	"github.com/audex-dev/audex/internal/config"
)

// docs/api.md is the API reference that ships with the repository. This
// test keeps it true to the code: every route of the router (with its
// scope), every path of openapi.json, every error code (with its status),
// every configuration key and environment variable, and every audit.*
// action that the code records are in it; and every route it names, in a
// heading, a table row or a sentence, is one the server answers.
//
// The reference names a route as "METHOD /pattern", and a route that
// answers every method (River's UI) as its bare pattern.

// apiDocPath is the reference, relative to this package's folder.
const apiDocPath = "../../docs/api.md"

// httpMethods are the methods a route of the reference may name.
const httpMethods = `GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS`

var (
	// docRouteRow is a table row whose first cell is a route; the second
	// cell is its scope.
	docRouteRow = regexp.MustCompile("^\\|\\s*`(?:(" + httpMethods + ") )?(/[^`\\s]*)`[^|]*\\|\\s*([^|]*?)\\s*\\|")
	// docRouteHeading is a heading that names a route.
	docRouteHeading = regexp.MustCompile("^#{2,6}\\s+`?(?:(" + httpMethods + ")\\s+)?(/[^`\\s]*)`?")
	// docRouteMention is a route named anywhere: a method, then a path.
	docRouteMention = regexp.MustCompile(`\b(` + httpMethods + `) (/[A-Za-z0-9_.{}/-]*)`)
	// docCodeRow is a row of the error table: a code, then its status.
	docCodeRow = regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|\\s*(\\d{3})\\s*\\|")
	// docActionRow is a row of the self-audit table.
	docActionRow = regexp.MustCompile("^\\|\\s*`(audit\\.[a-z_]+)`\\s*\\|")
	// auditActionLiteral is an audit.* action written in Go source.
	auditActionLiteral = regexp.MustCompile(`"(audit\.[a-z_]+)"`)
	// envVarLiteral is an environment variable's name written in Go
	// source: a string literal of capitals, digits and underscores.
	envVarLiteral = regexp.MustCompile(`"([A-Z][A-Z0-9_]*)"`)
)

// docRoute is a route that the reference names; Method is empty for a
// route of every method.
type docRoute struct{ Method, Pattern string }

func (r docRoute) String() string { return strings.TrimSpace(r.Method + " " + r.Pattern) }

// apiDoc is the reference, parsed into what the test checks.
type apiDoc struct {
	text     string
	rows     map[docRoute]string // route table rows: route -> scope cell
	headings []docRoute
	mentions []docRoute
	codes    map[string]int  // error code -> status
	actions  map[string]bool // rows of the self-audit table
}

func loadAPIDoc(t *testing.T) *apiDoc {
	t.Helper()
	data, err := os.ReadFile(apiDocPath)
	require.NoError(t, err, "the API reference lives at docs/api.md")
	d := &apiDoc{text: string(data), rows: map[docRoute]string{}, codes: map[string]int{}, actions: map[string]bool{}}
	inFence := false
	for _, line := range strings.Split(d.text, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue // examples, not the reference's claims
		}
		for _, m := range docRouteMention.FindAllStringSubmatch(line, -1) {
			d.mentions = append(d.mentions, docRoute{m[1], m[2]})
		}
		if m := docRouteRow.FindStringSubmatch(line); m != nil {
			r := docRoute{m[1], m[2]}
			_, dup := d.rows[r]
			require.False(t, dup, "the route table has %s twice", r)
			d.rows[r] = m[3]
		}
		if m := docRouteHeading.FindStringSubmatch(line); m != nil {
			d.headings = append(d.headings, docRoute{m[1], m[2]})
		}
		if m := docCodeRow.FindStringSubmatch(line); m != nil {
			status, _ := strconv.Atoi(m[2])
			d.codes[m[1]] = status
		}
		if m := docActionRow.FindStringSubmatch(line); m != nil {
			d.actions[m[1]] = true
		}
	}
	return d
}

// names reports whether the reference writes name as code (`name`).
func (d *apiDoc) names(name string) bool {
	return strings.Contains(d.text, "`"+name+"`")
}

func TestAPIDoc(t *testing.T) {
	t.Parallel()
	doc := loadAPIDoc(t)
	routes := api.New(api.Config{Logger: slog.New(slog.DiscardHandler)}).Routes()
	require.NotEmpty(t, routes)

	// isRoute reports whether the server answers r: the same method and
	// pattern, or a pattern of every method when r names no method or a
	// method that such a route also answers.
	isRoute := func(r docRoute) bool {
		return slices.ContainsFunc(routes, func(rt api.Route) bool {
			return rt.Pattern == r.Pattern && (rt.Method == r.Method || rt.Method == "")
		})
	}

	t.Run("ListsEveryRouteWithItsScopeAndASection", func(t *testing.T) {
		t.Parallel()
		for _, rt := range routes {
			r := docRoute{rt.Method, rt.Pattern}
			scope, ok := doc.rows[r]
			require.True(t, ok, "the route table of docs/api.md lacks %s (write it as `%s`)", r, r)
			want := "`" + rt.Scope + "`"
			if rt.Scope == "" {
				want = "none"
			}
			require.Equal(t, want, scope, "the scope of %s in the route table", r)
			require.Contains(t, doc.headings, r, "docs/api.md has no section headed %s", r)
		}
	})

	t.Run("NamesOnlyRoutesTheServerAnswers", func(t *testing.T) {
		t.Parallel()
		for r := range doc.rows {
			require.True(t, slices.ContainsFunc(routes, func(rt api.Route) bool {
				return rt.Method == r.Method && rt.Pattern == r.Pattern
			}), "the route table of docs/api.md lists %s, which the server does not answer", r)
		}
		for _, r := range doc.headings {
			require.True(t, slices.ContainsFunc(routes, func(rt api.Route) bool {
				return rt.Method == r.Method && rt.Pattern == r.Pattern
			}), "docs/api.md has a section headed %s, which the server does not answer", r)
		}
		for _, r := range doc.mentions {
			require.True(t, isRoute(r), "docs/api.md names %s, which the server does not answer", r)
		}
	})

	t.Run("HasThePathsOfTheOpenAPIDocumentAndNoOthers", func(t *testing.T) {
		t.Parallel()
		// The file on disk, not the embedded copy, so that an edit shows.
		spec, err := loadSpec()
		require.NoError(t, err)
		var specPaths, docPaths []string
		for path, item := range spec.doc.Paths.Map() {
			specPaths = append(specPaths, path)
			for method := range item.Operations() {
				r := docRoute{method, path}
				_, exact := doc.rows[r]
				_, every := doc.rows[docRoute{"", path}]
				require.True(t, exact || every, "openapi.json has %s; docs/api.md's route table does not", r)
			}
		}
		for r := range doc.rows {
			docPaths = append(docPaths, r.Pattern)
		}
		slices.Sort(specPaths)
		slices.Sort(docPaths)
		require.Equal(t, specPaths, slices.Compact(docPaths), "the paths of openapi.json and of docs/api.md's route table")
	})

	t.Run("ListsEveryErrorCodeWithItsStatus", func(t *testing.T) {
		t.Parallel()
		codes := errorCodes(t)
		require.NotEmpty(t, codes)
		for _, code := range codes {
			status := (&api.Error{Code: code}).Status()
			require.NotZero(t, status, "error code %s has no status", code)
			got, ok := doc.codes[code]
			require.True(t, ok, "the error table of docs/api.md lacks `%s`", code)
			require.Equal(t, status, got, "the status of `%s` in docs/api.md", code)
		}
		for code := range doc.codes {
			require.Contains(t, codes, code, "docs/api.md's error table lists `%s`, which internal/api/errors.go does not define", code)
		}
	})

	t.Run("ListsEveryConfigurationKey", func(t *testing.T) {
		t.Parallel()
		keys := yamlKeys(reflect.TypeFor[config.Config](), "")
		require.Contains(t, keys, "limits.list_timeout", "the walk reaches nested keys")
		for _, key := range keys {
			require.True(t, doc.names(key), "docs/api.md does not document the configuration key `%s`", key)
		}
	})

	t.Run("ListsEveryEnvironmentVariable", func(t *testing.T) {
		t.Parallel()
		src, err := os.ReadFile("../config/config.go")
		require.NoError(t, err)
		vars := envVarLiteral.FindAllStringSubmatch(string(src), -1)
		require.Contains(t, vars, []string{`"AUDEX_SUMMARY_INTERVAL"`, "AUDEX_SUMMARY_INTERVAL"}, "the scan finds the variables")
		for _, m := range vars {
			require.True(t, doc.names(m[1]), "docs/api.md does not document the environment variable `%s`", m[1])
		}
	})

	t.Run("ListsEverySelfAuditActionTheCodeRecords", func(t *testing.T) {
		t.Parallel()
		recorded := auditActions(t, "../store", ".", "../jobs")
		require.Contains(t, recorded, "audit.event_deleted", "the scan finds the actions")
		for action := range recorded {
			require.True(t, doc.actions[action], "the self-audit table of docs/api.md lacks `%s`", action)
		}
		for action := range doc.actions {
			require.True(t, recorded[action], "docs/api.md's self-audit table lists `%s`, which no code records", action)
		}
	})
}

// errorCodes returns the values of the Code* constants of errors.go, read
// from its source so that a new code cannot be missed.
func errorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	require.NoError(t, err)
	var codes []string
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				code, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				codes = append(codes, code)
			}
		}
	}
	return codes
}

// yamlKeys returns the YAML keys of a configuration struct, nested ones
// as parent.key and those of list items as parent[].key.
func yamlKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for i := range typ.NumField() {
		field := typ.Field(i)
		name, _, _ := strings.Cut(field.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		switch ft := field.Type; {
		case ft.Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft.Elem(), key+"[].")...)
		}
	}
	return keys
}

// auditActions returns the audit.* actions written in the Go source (tests
// apart) of the given folders.
func auditActions(t *testing.T, dirs ...string) map[string]bool {
	t.Helper()
	actions := map[string]bool{}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			src, err := os.ReadFile(file)
			require.NoError(t, err)
			for _, m := range auditActionLiteral.FindAllStringSubmatch(string(src), -1) {
				actions[m[1]] = true
			}
		}
	}
	return actions
}
