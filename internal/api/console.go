package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/audex-dev/audex"
	"github.com/audex-dev/audex/internal/console"
	"github.com/audex-dev/audex/internal/store"
)

const (
	// consoleCookie is the name of the console session's cookie.
	consoleCookie = "audex_console"
	// consoleCSRFHeader carries the session's CSRF token on every request
	// the console makes with its session.
	consoleCSRFHeader = "X-CSRF-Token"
	// consoleSessionTTL is how long a console session lasts from its
	// sign-in: a working day.
	consoleSessionTTL = 8 * time.Hour
)

// consoleCSP is the Content-Security-Policy of every console response:
// the page's own script, style and API calls, nothing inline, no frames.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// consoleHeaders sets the headers every console response carries.
func consoleHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", consoleCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// handleConsolePage answers every console path that is no asset with the
// console's page, which routes itself.
func (s *Server) handleConsolePage(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	serveConsoleAsset(w, r, console.Page)
	return nil
}

// handleConsoleAsset serves the console's script, style and chart files.
func (s *Server) handleConsoleAsset(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	a, ok := console.Assets[r.PathValue("name")]
	if !ok {
		consoleHeaders(w)
		return &Error{Code: CodeNotFound, Message: "no console asset " + r.PathValue("name")}
	}
	serveConsoleAsset(w, r, a)
	return nil
}

func serveConsoleAsset(w http.ResponseWriter, r *http.Request, a console.Asset) {
	consoleHeaders(w)
	w.Header().Set("Content-Type", a.ContentType)
	w.Header().Set("ETag", a.ETag)
	if r.Header.Get("If-None-Match") == a.ETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.Body)
}

// consoleSessionBody is the answer of the session routes: who the console
// is signed in as, and the token its requests carry.
type consoleSessionBody struct {
	TenantID  string    `json:"tenant_id"`
	KeyID     string    `json:"key_id"`
	KeyName   string    `json:"key_name"`
	Scopes    []string  `json:"scopes"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func sessionBody(s store.ConsoleSession) consoleSessionBody {
	return consoleSessionBody{TenantID: s.Key.TenantID, KeyID: s.Key.ID, KeyName: s.Key.Name, Scopes: s.Key.Scopes,
		CSRFToken: s.CSRFToken, ExpiresAt: s.ExpiresAt}
}

// handleConsoleSignIn starts a session with the API key in the body
// ({"key": "adx_..."}) and sets its cookie. Failed sign-ins count against
// the address's authentication budget, as failed API keys do.
func (s *Server) handleConsoleSignIn(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	consoleHeaders(w)
	if err := sameOrigin(r); err != nil {
		return err
	}
	var in struct {
		Key string `json:"key"`
	}
	if err := decodeBody(w, r, &in); err != nil {
		return err
	}
	if in.Key == "" {
		return invalid("key", "key is required: the API key to sign in with")
	}
	key, err := s.authenticateWith(r, func() (audex.APIKey, error) { return s.keyOf(r, in.Key, "") })
	if err != nil {
		return err
	}
	token, csrf := randomToken(), randomToken()
	session := store.ConsoleSession{Key: key, CSRFToken: csrf, ExpiresAt: time.Now().Add(consoleSessionTTL).UTC().Truncate(time.Second)}
	if err := store.CreateConsoleSession(r.Context(), s.pool, tokenHash(token), key, csrf, session.ExpiresAt); err != nil {
		return err
	}
	setConsoleCookie(w, r, token, int(consoleSessionTTL.Seconds()))
	s.writeJSON(w, http.StatusCreated, sessionBody(session))
	return nil
}

// handleConsoleSession answers the session of the request's cookie: who it
// is and its CSRF token (a page of another site cannot read the answer).
func (s *Server) handleConsoleSession(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	consoleHeaders(w)
	session, _, err := s.consoleSession(r, false)
	if err != nil {
		return err
	}
	if _, err := s.checkKey(r, session.Key, ""); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, sessionBody(session))
	return nil
}

// handleConsoleSignOut ends the request's session on the server and
// clears its cookie.
func (s *Server) handleConsoleSignOut(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	consoleHeaders(w)
	session, token, err := s.consoleSession(r, true)
	if err != nil {
		return err
	}
	if err := store.DeleteConsoleSession(r.Context(), s.pool, tokenHash(token), session.Key); err != nil {
		return err
	}
	setConsoleCookie(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setConsoleCookie sets the session's cookie to token for maxAge seconds
// (-1: clears it): HttpOnly, SameSite=Strict, Secure over TLS.
func setConsoleCookie(w http.ResponseWriter, r *http.Request, token string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: token, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

var errNoConsoleSession = &Error{Code: CodeUnauthenticated, Message: "not signed in to the console: sign in with an API key"}

// consoleSession returns the unexpired session of the request's cookie,
// and the cookie's token; withCSRF requires the request to carry the
// session's CSRF token in its header. errNoConsoleSession when the request
// has no such cookie.
func (s *Server) consoleSession(r *http.Request, withCSRF bool) (store.ConsoleSession, string, error) {
	token, ok := consoleToken(r)
	if !ok {
		return store.ConsoleSession{}, "", errNoConsoleSession
	}
	session, err := store.ConsoleSessionByHash(r.Context(), s.pool, tokenHash(token))
	if errors.Is(err, store.ErrNotFound) {
		return session, token, &Error{Code: CodeUnauthenticated, Message: "the console session has ended or is unknown: sign in again"}
	}
	if err != nil {
		return session, token, err
	}
	if withCSRF && subtle.ConstantTimeCompare([]byte(r.Header.Get(consoleCSRFHeader)), []byte(session.CSRFToken)) != 1 {
		return session, token, &Error{Code: CodePermissionDenied, Field: consoleCSRFHeader,
			Message: "a request with the console's session must carry its CSRF token in " + consoleCSRFHeader}
	}
	return session, token, nil
}

// consoleToken returns the console session's token of the request's
// cookie, if it has one.
func consoleToken(r *http.Request) (string, bool) {
	c, err := r.Cookie(consoleCookie)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// hasKeyHeader reports whether the request presents an API key itself.
func hasKeyHeader(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get("X-API-Key") != ""
}

// sameOrigin refuses a request whose Origin header names another site
// than the one it was sent to (a sign-in form of another site).
func sameOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host != r.Host {
		return &Error{Code: CodePermissionDenied, Field: "Origin", Message: "the console signs in from its own pages only"}
	}
	return nil
}

// randomToken returns 256 random bits, base64url-encoded.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenHash is what the database keeps of a session's token.
func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
