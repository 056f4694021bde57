package api

import (
	_ "embed"
	"net/http"

	"github.com/audex-dev/audex"
)

// openAPIDocument is the OpenAPI 3.1 document of every route. The API tests
// check each request they make, and its answer, against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the OpenAPI document (GET /openapi.json, no key).
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request, _ audex.APIKey) error {
	if r.URL.RawQuery != "" {
		return invalid("", "this route takes no query parameters")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPIDocument)
	return nil
}
