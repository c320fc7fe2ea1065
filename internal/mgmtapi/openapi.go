package mgmtapi

import (
	_ "embed"
	"io"
	"net/http"
	"strconv"
)

// openAPIDoc is the OpenAPI 3.0 description of every route in the route
// table, served at /api/v1/openapi.yaml.
//
//go:embed openapi.yaml
var openAPIDoc string

func (a *API) openAPI(w http.ResponseWriter, r *http.Request, c *caller) error {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDoc)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, openAPIDoc)
	}
	return nil
}
