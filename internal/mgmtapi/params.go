package mgmtapi

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// listBody is the shape of every paginated list: Next is the cursor for
// the following page, absent on the last one.
type listBody[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func writeList[T any](w http.ResponseWriter, items []T, next string) {
	if items == nil {
		items = []T{}
	}
	apierror.WriteJSON(w, http.StatusOK, listBody[T]{Items: items, Next: next})
}

// page reads limit and after. A limit outside 1..store.MaxPageLimit is
// refused rather than clamped, so a client never silently gets less than
// it asked for.
func page(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: store.DefaultPageLimit, After: q.Get("after")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPageLimit {
			return p, apierror.New(http.StatusBadRequest, "bad_parameter", "limit must be an integer from 1 to %d", store.MaxPageLimit)
		}
		p.Limit = n
	}
	if len(p.After) > 1024 {
		return p, apierror.New(http.StatusBadRequest, "bad_parameter", "after is not a page cursor from this API")
	}
	return p, nil
}

// timeParam parses an optional RFC 3339 query parameter.
func timeParam(r *http.Request, name string) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apierror.New(http.StatusBadRequest, "bad_parameter", "%s must be an RFC 3339 time such as 2026-03-01T12:00:00Z", name)
	}
	return t, nil
}

// decodeBody decodes a required JSON body of at most limit bytes.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	return apierror.DecodeJSON(w, r, limit, v)
}

// decodeOptionalBody decodes a JSON body if there is one; an empty body
// leaves v unchanged. A body that is present is decoded as strictly as a
// required one.
func decodeOptionalBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	br := bufio.NewReaderSize(http.MaxBytesReader(w, r.Body, limit), 512)
	if _, err := br.Peek(1); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return apierror.From(err)
	}
	r.Body = readCloser{br, r.Body}
	return apierror.DecodeJSON(w, r, limit, v)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// tenant is the tenant every path acts on until paths carry one.
func (c *caller) tenant() string { return c.tenantID }

// now is the API's notion of the current time.
func (a *API) now() time.Time { return a.clock.Now().UTC() }

// created writes v with 201 Created.
func created(w http.ResponseWriter, v any) error {
	apierror.WriteJSON(w, http.StatusCreated, v)
	return nil
}

// ok writes v with 200 OK.
func ok(w http.ResponseWriter, v any) error {
	apierror.WriteJSON(w, http.StatusOK, v)
	return nil
}

// noContent writes 204 No Content.
func noContent(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}
