package cli

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// progress draws a one-line progress bar on Stderr when Stderr is a
// terminal; otherwise its methods do nothing. set may be called from
// another goroutine (the HTTP transport reads the upload body).
type progress struct {
	e     *Env
	label string
	total int64
	start time.Time

	mu       sync.Mutex
	lastDraw time.Time
	lastN    int64 // bytes shown by the last draw
	drawn    bool
	finished bool
}

// redrawEvery limits how often the bar is redrawn.
const redrawEvery = 100 * time.Millisecond

const barWidth = 24

func (e *Env) newProgress(label string, total int64) *progress {
	if !e.IsTerminal(e.Stderr) {
		return nil
	}
	return &progress{e: e, label: label, total: total, start: e.Clock.Now()}
}

// set records that n bytes are done and redraws if it is time to.
func (p *progress) set(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	now := p.e.Clock.Now()
	if p.drawn && n < p.total && now.Sub(p.lastDraw) < redrawEvery {
		return
	}
	p.draw(n, now)
}

// done ends the bar: a complete bar on success, then a newline either way
// so that what follows starts on its own line.
func (p *progress) done(ok bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	if ok && (!p.drawn || p.lastN != p.total) {
		p.draw(p.total, p.e.Clock.Now())
	}
	p.finished = true
	if p.drawn {
		fmt.Fprintln(p.e.Stderr)
	}
}

func (p *progress) draw(n int64, now time.Time) {
	p.lastDraw, p.lastN, p.drawn = now, n, true
	fmt.Fprintf(p.e.Stderr, "\r%s\x1b[K", renderProgress(p.label, n, p.total, now.Sub(p.start)))
}

// renderProgress formats one state of the bar, e.g.
//
//	upload  42% [##########..............] 12.3 MB / 29.0 MB  5.1 MB/s  ETA 3s
func renderProgress(label string, n, total int64, elapsed time.Duration) string {
	frac := 1.0
	if total > 0 {
		frac = min(float64(n)/float64(total), 1)
	}
	filled := int(frac * barWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled)
	rate, eta := "--/s", "--"
	if secs := elapsed.Seconds(); secs >= 0.001 && n > 0 {
		bps := float64(n) / secs
		rate = fmtBytes(int64(bps)) + "/s"
		left := time.Duration(float64(total-n) / bps * float64(time.Second))
		eta = left.Round(time.Second).String()
	}
	if n >= total {
		eta = "0s"
	}
	return fmt.Sprintf("%-6s %3d%% [%s] %s / %s  %s  ETA %s", label, int(frac*100), bar, fmtBytes(n), fmtBytes(total), rate, eta)
}
