// Package browsertest drives Debian's chromium, headless through chromedp,
// for the dashboard's browser tests, and saves full-page screenshots of
// what the browser showed so that a reviewer can look at them.
//
// Start finds chromium ($UPDRAFT_CHROMIUM, else chromium or
// chromium-browser on PATH; scripts/install-chromium.sh installs it) and
// starts it with a fresh profile and --no-sandbox (CI runs as root). A
// missing chromium skips the test, or fails it under
// UPDRAFT_REQUIRE_SERVICES=1 (see internal/testenv).
//
// Each Tab has its own browser context (its own cookies), so one test can
// sign in several users side by side. Every step runs under a deadline
// (StepTimeout): tests wait on selectors and page conditions, never on
// sleeps. A failed step saves a screenshot and the page's HTML next to the
// other screenshots before it fails the test.
//
// Screenshots go to ScreenshotDir(): $UPDRAFT_TEST_OUTPUT/screenshots when
// that variable is set, else <os.TempDir()>/updraft-screenshots; each test
// writes below a folder named after it, emptied when the test starts. The
// path is printed in the test log.
//
// A Browser is used by one test goroutine at a time; its tabs may be used
// one after the other from that goroutine.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/testenv"
)

// DefaultStepTimeout bounds one step (a navigation, a wait for a selector,
// a click). Generous: CI runs the whole suite under -race on two cores.
const DefaultStepTimeout = 30 * time.Second

// startTimeout bounds starting chromium.
const startTimeout = 60 * time.Second

// Viewport of every tab: a laptop screen.
const (
	ViewportWidth  = 1366
	ViewportHeight = 900
)

// Browser is a running headless chromium.
type Browser struct {
	// StepTimeout bounds each step of a tab [DefaultStepTimeout].
	StepTimeout time.Duration
	*shots

	t       testing.TB
	root    context.Context // the browser's first tab; its parent of the others
	version string
}

// FindChromium returns the path of the chromium binary, or "" when there
// is none.
func FindChromium() string { return findBrowser("UPDRAFT_CHROMIUM", "chromium", "chromium-browser") }

// findBrowser returns the binary the environment variable env names, else
// the first of names on PATH, or "".
func findBrowser(env string, names ...string) string {
	if p := os.Getenv(env); p != "" {
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
		return ""
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// ScreenshotDir is the folder every browser test writes its screenshots
// below.
func ScreenshotDir() string {
	if d := os.Getenv("UPDRAFT_TEST_OUTPUT"); d != "" {
		return filepath.Join(d, "screenshots")
	}
	return filepath.Join(os.TempDir(), "updraft-screenshots")
}

// Start runs chromium for the rest of the test, or skips (fails under
// UPDRAFT_REQUIRE_SERVICES=1) when it is not installed.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := FindChromium()
	if path == "" {
		testenv.Missing(t, "chromium is not installed (scripts/install-chromium.sh installs Debian's package; or set UPDRAFT_CHROMIUM to a Chromium binary)")
	}
	shots := newShots(t)
	var stderr lockedBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,                // CI runs as root
		chromedp.UserDataDir(t.TempDir()), // a fresh profile every time
		chromedp.WindowSize(ViewportWidth, ViewportHeight),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.CombinedOutput(&stderr),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelRoot := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelRoot()
		cancelAlloc()
	})
	if err := attach(root, startTimeout); err != nil {
		t.Fatalf("start chromium %s: %v\n%s", path, err, stderr.String())
	}
	b := &Browser{StepTimeout: DefaultStepTimeout, shots: shots, t: t, root: root}
	if v, err := runStep(root, startTimeout, chromedp.Evaluate[string]("navigator.userAgent")); err == nil {
		b.version = v
	}
	t.Logf("browser: %s (%s)", path, b.version)
	t.Logf("screenshots of %s go to %s", t.Name(), shots.Dir)
	return b
}

// Tab is one browser tab with its own cookies: one signed-in user.
type Tab struct {
	b    *Browser
	t    testing.TB
	ctx  context.Context
	base string
	name string

	mu       sync.Mutex
	problems []string // uncaught exceptions and CSP violations seen
}

// NewTab opens a tab in a new browser context (no cookies) whose relative
// URLs resolve against base (e.g. "http://127.0.0.1:1234"). name labels
// its screenshots and errors (e.g. "admin").
func (b *Browser) NewTab(t testing.TB, base, name string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &Tab{b: b, t: t, ctx: ctx, base: strings.TrimSuffix(base, "/"), name: name}
	if err := attach(ctx, b.StepTimeout); err != nil {
		t.Fatalf("open tab %s: %v", name, err)
	}
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" {
				tab.mu.Lock()
				tab.problems = append(tab.problems, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
				tab.mu.Unlock()
			}
		}
	}()
	return tab
}

// attach runs the first action on a chromedp context, which starts the
// browser or opens the tab and ties its life to ctx: it must run on ctx
// itself, not on a context with a deadline, so a hang is caught by a timer
// that cancels ctx instead.
func attach(ctx context.Context, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	timer := clock.Real{}.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C():
		_ = chromedp.Cancel(ctx)
		return fmt.Errorf("no answer within %v", timeout)
	}
}

// runStep runs one action under a deadline derived from the tab's context
// (the tab and browser outlive a step that times out).
func runStep[T any](ctx context.Context, timeout time.Duration, a chromedp.Action[T]) (T, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("gave up after %v: %w", timeout, err)
	}
	return v, err
}

// Run runs one action that returns a value, failing the test (with a
// screenshot of the page) when it fails or exceeds the step timeout.
func Run[T any](tab *Tab, what string, a chromedp.Action[T]) T {
	tab.t.Helper()
	v, err := runStep(tab.ctx, tab.b.StepTimeout, a)
	if err != nil {
		tab.fail(what, err)
	}
	return v
}

// Do runs steps in order, each under the step timeout; what says what they
// do, for the failure message.
func (tab *Tab) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	for i, s := range steps {
		if _, err := runStep(tab.ctx, tab.b.StepTimeout, s); err != nil {
			tab.fail(fmt.Sprintf("%s (step %d of %d)", what, i+1, len(steps)), err)
		}
	}
}

// URL resolves a path against the tab's base.
func (tab *Tab) URL(path string) string { return tab.base + path }

// Open navigates to path and waits for the page's main element.
func (tab *Tab) Open(path string) {
	tab.t.Helper()
	tab.Do("open "+path, chromedp.Navigate(tab.URL(path)), chromedp.WaitReady(chromedp.CSS("main")))
}

// Location is the tab's current URL without the base.
func (tab *Tab) Location() string {
	tab.t.Helper()
	return strings.TrimPrefix(Run(tab, "read location", chromedp.Location()), tab.base)
}

// Text is the visible text of the first element matching the CSS selector,
// once it is visible. The element is looked up and read in one script:
// live updates replace whole sections (outerHTML), and a node found by one
// protocol call may be gone by the next, which reads as an empty text.
func (tab *Tab) Text(css string) string {
	tab.t.Helper()
	sel, err := json.Marshal(css)
	if err != nil {
		tab.t.Fatalf("selector %q: %v", css, err)
	}
	find := `document.querySelector(` + string(sel) + `)`
	tab.WaitFor("wait for "+css, `(() => { const e = `+find+`; return !!e && e.getClientRects().length > 0; })()`)
	return Run(tab, "read "+css, chromedp.Evaluate[string](`(() => { const e = `+find+`; return e ? e.innerText : ""; })()`))
}

// WaitFor waits until the JavaScript expression is true (polled on every
// animation frame and DOM change).
func (tab *Tab) WaitFor(what, expr string) {
	tab.t.Helper()
	// The step's deadline bounds the wait, not the poll's own timeout.
	Run(tab, what, chromedp.Poll[bool](expr, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
}

// Screenshot saves a full-page PNG named NN-tab-name.png and returns its path.
func (tab *Tab) Screenshot(name string) string {
	tab.t.Helper()
	png := Run(tab, "screenshot "+name, chromedp.FullScreenshot(100))
	return tab.save(name, ".png", png)
}

func (tab *Tab) save(name, ext string, data []byte) string {
	return tab.b.save(tab.t, tab.name, name, ext, data)
}

// CheckConsole fails the test if the tab saw an uncaught script exception
// or a Content-Security-Policy violation.
func (tab *Tab) CheckConsole() {
	tab.t.Helper()
	// A round trip to the page flushes console events sent before it.
	Run(tab, "flush console", chromedp.Evaluate[int]("1"))
	tab.mu.Lock()
	defer tab.mu.Unlock()
	if len(tab.problems) > 0 {
		tab.t.Fatalf("tab %s: the page reported errors:\n  %s", tab.name, strings.Join(tab.problems, "\n  "))
	}
}

// fail records what the page looked like and fails the test.
func (tab *Tab) fail(what string, err error) {
	tab.t.Helper()
	loc := ""
	// A fresh deadline: the failed step's may have run out.
	if l, lerr := runStep(tab.ctx, 5*time.Second, chromedp.Location()); lerr == nil {
		loc = l
	}
	var saved []string
	if png, serr := runStep(tab.ctx, 10*time.Second, chromedp.FullScreenshot(100)); serr == nil {
		saved = append(saved, tab.save("FAILED", ".png", png))
	}
	if html, herr := runStep(tab.ctx, 5*time.Second, chromedp.OuterHTML(chromedp.CSS("html"))); herr == nil {
		saved = append(saved, tab.save("FAILED", ".html", []byte(html)))
	}
	tab.t.Fatalf("tab %s: %s: %v\n  at %s\n  saved: %s", tab.name, what, err, loc, strings.Join(saved, ", "))
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func safeName(s string) string { return strings.Trim(unsafeChars.ReplaceAllString(s, "_"), "_") }

// lockedBuffer collects chromium's output for a failed start.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
