package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Fragment is one part of a page that a live view replaces: the element
// with id ID gets HTML as its new outer HTML.
type Fragment struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// liveMaxDuration ends a server-sent event stream after a while; the
// browser reconnects on its own, which re-checks the session.
const liveMaxDuration = 10 * time.Minute

// serveLive answers an EventSource request: every LiveInterval it calls
// frames and sends the fragments whose HTML changed since the last send,
// as "replace" events. It returns when the client goes away, the stream
// has run liveMaxDuration, or frames fails (logged; the browser reconnects).
func (u *UI) serveLive(w http.ResponseWriter, r *http.Request, frames func(ctx context.Context) ([]Fragment, error)) error {
	// The controller reaches the connection through wrappers that only
	// implement Unwrap (the server's metrics recorder).
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a live view outlasts the server's write timeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Retry after 3 s when the stream ends.
	fmt.Fprint(w, "retry: 3000\n\n")
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("web: live views need a flushing response writer: %w", err)
	}
	ctx := r.Context()
	sent := map[string]string{}
	deadline := u.cfg.Ticker.NewTimer(liveMaxDuration)
	defer deadline.Stop()
	for {
		fs, err := frames(ctx)
		if err != nil {
			// The stream has started: an error page cannot follow.
			if ctx.Err() == nil {
				u.log.Warn("live view update failed", "path", r.URL.Path, "err", err)
			}
			return nil
		}
		for _, f := range fs {
			if sent[f.ID] == f.HTML {
				continue
			}
			sent[f.ID] = f.HTML
			b, err := json.Marshal(f)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: replace\ndata: %s\n\n", b); err != nil {
				return nil // client gone
			}
		}
		_ = rc.Flush()
		t := u.cfg.Ticker.NewTimer(u.cfg.LiveInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-deadline.C():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}
