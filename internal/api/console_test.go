package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/store"
	"github.com/audex-dev/audex/internal/storetest"
)

// consoleSession is a signed-in console: its cookie and CSRF token.
type consoleSession struct {
	cookie *http.Cookie
	csrf   string
}

// consoleRequest sends a request as the console's page does: with the
// session's cookie and, when csrf is not empty, its token.
func (b *testBundle) consoleRequest(t *testing.T, method, path string, cookie *http.Cookie, csrf, body string) response {
	t.Helper()
	return send(t, b, method, path, body, func(req *http.Request) {
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
	})
}

// signIn signs in to the console with key and requires it to work.
func (b *testBundle) signIn(t *testing.T, key string) consoleSession {
	t.Helper()
	res := b.consoleRequest(t, "POST", "/console/session", nil, "", `{"key":"`+key+`"}`)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	var body struct {
		TenantID  string   `json:"tenant_id"`
		Scopes    []string `json:"scopes"`
		CSRFToken string   `json:"csrf_token"`
	}
	res.decode(t, &body)
	require.Equal(t, b.tenant, body.TenantID)
	require.NotEmpty(t, body.CSRFToken)
	require.NotContains(t, string(res.body), key, "the key is not answered back")
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if c.Name == "audex_console" {
			cookie = c
		}
	}
	require.NotNil(t, cookie, "the session's cookie is set: %v", res.header)
	require.True(t, cookie.HttpOnly, "the page's scripts cannot read the cookie")
	require.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
	require.Equal(t, "/", cookie.Path)
	require.False(t, cookie.Secure, "not Secure over plain HTTP (the test server)")
	require.Positive(t, cookie.MaxAge, "the session expires")
	require.NotContains(t, cookie.Value, key)
	return consoleSession{cookie: &http.Cookie{Name: cookie.Name, Value: cookie.Value}, csrf: body.CSRFToken}
}

func TestConsoleSession(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.ingest(t, event("doc.read", "alice"))
	reader := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead)

	t.Run("ThePageAndItsAssetsCarryAStrictPolicy", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/console/", "/console/events?actor_id=alice", "/console/events/e1", "/console/assets/console.js", "/console/assets/console.css", "/console/assets/uplot.iife.min.js"} {
			res := b.consoleRequest(t, "GET", path, nil, "", "")
			require.Equal(t, http.StatusOK, res.status, path)
			csp := res.header.Get("Content-Security-Policy")
			require.Contains(t, csp, "script-src 'self'", path)
			require.Contains(t, csp, "frame-ancestors 'none'", path)
			require.NotContains(t, csp, "unsafe-inline", path)
			require.Equal(t, "nosniff", res.header.Get("X-Content-Type-Options"), path)
		}
		page := b.consoleRequest(t, "GET", "/console/", nil, "", "")
		require.Contains(t, page.header.Get("Content-Type"), "text/html")
		require.NotContains(t, string(page.body), "<script>", "no inline script")
		require.NotContains(t, string(page.body), "style=", "no inline style")
		js := b.consoleRequest(t, "GET", "/console/assets/console.js", nil, "", "")
		require.Contains(t, js.header.Get("Content-Type"), "javascript")
		again, err := http.NewRequestWithContext(t.Context(), "GET", b.url+"/console/assets/console.js", nil)
		require.NoError(t, err)
		again.Header.Set("If-None-Match", js.header.Get("ETag"))
		res, err := http.DefaultClient.Do(again)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusNotModified, res.StatusCode)
		require.Equal(t, http.StatusNotFound, b.consoleRequest(t, "GET", "/console/assets/nothing.js", nil, "", "").status)
	})

	t.Run("TheSessionStandsForTheKeyWithItsCSRFToken", func(t *testing.T) {
		t.Parallel()
		s := b.signIn(t, reader)
		res := b.consoleRequest(t, "GET", "/console/session", s.cookie, "", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Contains(t, string(res.body), s.csrf)

		res = b.consoleRequest(t, "GET", "/v1/audit/events", s.cookie, s.csrf, "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		require.Contains(t, string(res.body), `"alice"`)
		// Without its token, or with another, a request of the session is
		// refused: a page of another site can make the browser send the
		// cookie, never the header.
		for _, csrf := range []string{"", "forged", s.csrf + "x"} {
			res = b.consoleRequest(t, "GET", "/v1/audit/events", s.cookie, csrf, "")
			require.Equal(t, http.StatusForbidden, res.status, "csrf %q", csrf)
			require.Equal(t, "X-CSRF-Token", res.errorBody(t).Field)
		}
		// The session has the key's scopes and no others.
		res = b.consoleRequest(t, "POST", "/v1/audit/events", s.cookie, s.csrf, `{"events":[{"action":"doc.read","actor":{"id":"mallory"}}]}`)
		require.Equal(t, http.StatusForbidden, res.status)
		require.Contains(t, res.errorBody(t).Message, audex.ScopeWrite)
		// Operator routes never take a session.
		res = b.consoleRequest(t, "GET", "/admin/river/", s.cookie, s.csrf, "")
		require.Equal(t, http.StatusUnauthorized, res.status)
	})

	t.Run("SignOutEndsTheSessionOnTheServer", func(t *testing.T) {
		t.Parallel()
		signer := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead)
		s := b.signIn(t, signer)
		require.Equal(t, http.StatusForbidden, b.consoleRequest(t, "DELETE", "/console/session", s.cookie, "", "").status, "sign-out needs the token too")
		res := b.consoleRequest(t, "DELETE", "/console/session", s.cookie, s.csrf, "")
		require.Equal(t, http.StatusNoContent, res.status, "body: %s", res.body)
		require.Contains(t, res.header.Get("Set-Cookie"), "Max-Age=0", "the cookie is cleared")
		for _, path := range []string{"/console/session", "/v1/audit/events"} {
			res = b.consoleRequest(t, "GET", path, s.cookie, s.csrf, "")
			require.Equal(t, http.StatusUnauthorized, res.status, "the old cookie on %s", path)
		}
		// Each sign-in and sign-out is in the tenant's audit trail, by the
		// key, about the key.
		key, err := store.APIKeyByHash(t.Context(), b.pool, audex.HashKey(signer))
		require.NoError(t, err)
		var ins, outs int
		for _, e := range b.listAllWithAudit(t, "action_prefix=audit.console_&actor_id="+key.ID) {
			require.Equal(t, key.ID, *e.Target.ID)
			switch e.Action {
			case "audit.console_signed_in":
				ins++
			case "audit.console_signed_out":
				outs++
			}
		}
		require.Equal(t, [2]int{1, 1}, [2]int{ins, outs}, "one sign-in, one sign-out")
	})

	t.Run("ARevokedKeyOrAnExpiredSessionEndsIt", func(t *testing.T) {
		t.Parallel()
		key := storetest.NewKey(t, b.pool, b.tenant, audex.ScopeRead)
		s := b.signIn(t, key)
		_, err := store.RevokeAPIKey(t.Context(), b.pool, "", audex.HashKey(key))
		require.NoError(t, err)
		res := b.consoleRequest(t, "GET", "/v1/audit/events", s.cookie, s.csrf, "")
		require.Equal(t, http.StatusUnauthorized, res.status)
		require.Equal(t, http.StatusUnauthorized, b.consoleRequest(t, "GET", "/console/session", s.cookie, "", "").status)

		s = b.signIn(t, reader)
		_, err = b.pool.Exec(t.Context(), `UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE csrf_token = $1`, s.csrf)
		require.NoError(t, err)
		require.Equal(t, http.StatusUnauthorized, b.consoleRequest(t, "GET", "/v1/audit/events", s.cookie, s.csrf, "").status)
	})

	t.Run("BadSignInsAreClearErrors", func(t *testing.T) {
		t.Parallel()
		for _, c := range []struct {
			body   string
			status int
			field  string
		}{
			{`{"key":"adx_unknown"}`, http.StatusUnauthorized, ""},
			{`{"key":""}`, http.StatusBadRequest, "key"},
			{`{}`, http.StatusBadRequest, "key"},
			{`{"key":"` + reader + `","extra":1}`, http.StatusBadRequest, "extra"},
			{`[]`, http.StatusBadRequest, ""},
		} {
			res := b.consoleRequest(t, "POST", "/console/session", nil, "", c.body)
			require.Equal(t, c.status, res.status, "%s: %s", c.body, res.body)
			require.Equal(t, c.field, res.errorBody(t).Field, c.body)
			require.Empty(t, res.header.Get("Set-Cookie"), c.body)
		}
		// A sign-in form of another site.
		req, err := http.NewRequestWithContext(t.Context(), "POST", b.url+"/console/session", strings.NewReader(`{"key":"`+reader+`"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://evil.example")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusForbidden, res.StatusCode)
		// No session, or a made-up one.
		require.Equal(t, http.StatusUnauthorized, b.consoleRequest(t, "GET", "/console/session", nil, "", "").status)
		madeUp := &http.Cookie{Name: "audex_console", Value: "made-up"}
		require.Equal(t, http.StatusUnauthorized, b.consoleRequest(t, "GET", "/v1/audit/events", madeUp, "x", "").status)
	})
}
