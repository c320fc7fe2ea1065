package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// logTail keeps the end of the agent's own log in memory, formatted as
// text, for the log_tail of failure reports.
type logTail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newLogTail(max int) *logTail { return &logTail{max: max} }

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - l.max; over > 0 {
		// Drop whole lines from the front when possible.
		cut := over
		if i := strings.IndexByte(string(l.buf[over:]), '\n'); i >= 0 && i < l.max/4 {
			cut = over + i + 1
		}
		l.buf = append(l.buf[:0], l.buf[cut:]...)
	}
	return len(p), nil
}

func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// handler returns a handler that writes every record to the tail (at
// debug level and above) and then to next.
func (l *logTail) handler(next slog.Handler) slog.Handler {
	return &teeHandler{text: slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}), next: next}
}

type teeHandler struct {
	text slog.Handler
	next slog.Handler
}

func (h *teeHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || h.next.Enabled(ctx, lv)
}

func (h *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelInfo {
		_ = h.text.Handle(ctx, r)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *teeHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &teeHandler{text: h.text.WithAttrs(attrs), next: h.next.WithAttrs(attrs)}
}

func (h *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{text: h.text.WithGroup(name), next: h.next.WithGroup(name)}
}
