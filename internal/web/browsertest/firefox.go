//go:build unix

package browsertest

// Firefox, driven over WebDriver BiDi, its native remote protocol: the
// dashboard must work in Firefox as well as in Chromium.
//
// StartFirefox finds firefox ($UPDRAFT_FIREFOX, else firefox-esr or
// firefox on PATH; scripts/install-firefox.sh installs Debian's
// firefox-esr), starts it headless in its own process group with a fresh
// profile and --remote-debugging-port=0, reads the WebSocket address it
// prints on stderr ("WebDriver BiDi listening on ws://…") and opens a BiDi
// session on ws://…/session. A missing firefox skips the test, or fails it
// under UPDRAFT_REQUIRE_SERVICES=1. Cleanup kills the process group and
// removes the profile.
//
// The client is deliberately small: the commands the dashboard's test
// needs, over a minimal RFC 6455 client: go.mod has no WebSocket library,
// and chromedp's is internal to its module (its remote.Conn reads only
// Chrome DevTools messages). What the client does and does not do:
//   - Each FirefoxTab is a window in its own user context (its own
//     cookies), so one test can sign in several users side by side.
//   - Clicks are element.click() run in the page, after the script has
//     waited for the element to be rendered and enabled: a click on a
//     submit button submits its form as a mouse click would, but no
//     pointer events are synthesized and hit testing is not checked.
//   - Typing and the Tab key go through input.performActions, i.e.
//     Firefox's own keyboard input to the focused element.
//   - Every log.entryAdded event is watched: an uncaught script error, or
//     any message about the Content-Security-Policy, is kept against its
//     tab and fails the test in CheckConsole, as the chromium helper does.
//
// Every step runs under StepTimeout and fails naming the step. Waits poll
// a page condition in the page (a MutationObserver and a short in-page
// timer), not a fixed sleep; only while the tab is between two documents
// (the script's realm gone) is a round retried after 50 ms. A failed step
// saves a screenshot and the page's HTML next to the other screenshots
// (see ScreenshotDir) before it fails.
//
// HoldRequests uses network interception to hold a page's requests, so
// that a test can fail one, or let something happen while it is in flight,
// deterministically.
//
// A Firefox is used by one test goroutine at a time; its tabs may be used
// one after the other from that goroutine.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/testenv"
)

// Firefox is a running headless Firefox with a WebDriver BiDi session.
type Firefox struct {
	// StepTimeout bounds each step of a tab [DefaultStepTimeout].
	StepTimeout time.Duration
	*shots
	// Version is the browser's name and version as the session reports
	// it, e.g. "firefox 153.8.0esr".
	Version string

	t    testing.TB
	conn *bidiConn

	mu       sync.Mutex
	tabs     map[string]*FirefoxTab // by browsing context id
	orphaned []string               // problems from contexts of no tab
	holds    map[string]*Hold       // by intercept id
}

// FindFirefox returns the path of the firefox binary, or "" when there is
// none.
func FindFirefox() string { return findBrowser("UPDRAFT_FIREFOX", "firefox-esr", "firefox") }

// firefoxPrefs go into the fresh profile's user.js. Firefox's remote agent
// sets its own recommended preferences for automation; these only keep the
// browser from reaching out to Mozilla's services during a test.
const firefoxPrefs = `user_pref("app.update.disabledForTesting", true);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("services.settings.server", "data:,");
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
`

var bidiListening = regexp.MustCompile(`WebDriver BiDi listening on (ws://[^\s]+)`)

// StartFirefox runs Firefox for the rest of the test, or skips (fails
// under UPDRAFT_REQUIRE_SERVICES=1) when it is not installed.
func StartFirefox(t testing.TB) *Firefox {
	t.Helper()
	path := FindFirefox()
	if path == "" {
		testenv.Missing(t, "firefox is not installed (scripts/install-firefox.sh installs Debian's firefox-esr; or set UPDRAFT_FIREFOX to a Firefox binary)")
	}
	shots := newShots(t)
	profile, err := os.MkdirTemp("", "updraft-firefox-")
	if err != nil {
		t.Fatalf("firefox profile: %v", err)
	}
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxPrefs), 0o644); err != nil {
		os.RemoveAll(profile)
		t.Fatalf("firefox profile: %v", err)
	}

	out := &addrWatcher{found: make(chan string, 1)}
	cmd := exec.Command(path, "--headless", "--remote-debugging-port=0", "--profile", profile, "--no-remote")
	cmd.Env = append(os.Environ(), "MOZ_CRASHREPORTER_DISABLE=1")
	cmd.Stdout = out
	cmd.Stderr = out
	// Its own process group, so cleanup ends the content processes too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait returns although a straggler still holds stderr open.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		t.Fatalf("start firefox %s: %v", path, err)
	}
	f := &Firefox{StepTimeout: DefaultStepTimeout, shots: shots, t: t, tabs: map[string]*FirefoxTab{}, holds: map[string]*Hold{}}
	t.Cleanup(func() {
		if f.conn != nil {
			f.conn.close()
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove firefox profile: %v", err)
		}
	})

	var addr string
	timer := clock.Real{}.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case addr = <-out.found:
	case <-timer.C():
		t.Fatalf("start firefox %s: no WebDriver BiDi address on its output within %v:\n%s", path, startTimeout, out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	ws, err := dialWebSocket(ctx, addr+"/session")
	if err != nil {
		t.Fatalf("connect to firefox at %s: %v\n%s", addr, err, out.String())
	}
	f.conn = newBiDiConn(ws, f.event)
	var session struct {
		Capabilities struct {
			BrowserName    string `json:"browserName"`
			BrowserVersion string `json:"browserVersion"`
			UserAgent      string `json:"userAgent"`
		} `json:"capabilities"`
	}
	if err := f.conn.call(ctx, "session.new", map[string]any{"capabilities": map[string]any{}}, &session); err != nil {
		t.Fatalf("firefox session.new: %v\n%s", err, out.String())
	}
	if err := f.conn.call(ctx, "session.subscribe", map[string]any{"events": []string{"log.entryAdded"}}, nil); err != nil {
		t.Fatalf("firefox session.subscribe: %v", err)
	}
	c := session.Capabilities
	f.Version = c.BrowserName + " " + c.BrowserVersion
	t.Logf("browser: %s (%s; %s)", path, f.Version, c.UserAgent)
	t.Logf("screenshots of %s go to %s", t.Name(), shots.Dir)
	return f
}

// addrWatcher collects Firefox's output (for a failed start) and hands
// over the WebDriver BiDi address once it has been printed.
type addrWatcher struct {
	found chan string
	lockedBuffer
	sent bool
}

func (w *addrWatcher) Write(p []byte) (int, error) {
	n, err := w.lockedBuffer.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent {
		if m := bidiListening.FindStringSubmatch(w.b.String()); m != nil {
			w.sent = true
			w.found <- m[1]
		}
	}
	return n, err
}

// logEntry is the part of a log.entryAdded event the tests look at.
type logEntry struct {
	Type   string `json:"type"` // "console" or "javascript"
	Level  string `json:"level"`
	Text   string `json:"text"`
	Source struct {
		Context string `json:"context"`
	} `json:"source"`
	StackTrace struct {
		CallFrames []struct {
			URL        string `json:"url"`
			LineNumber int    `json:"lineNumber"`
		} `json:"callFrames"`
	} `json:"stackTrace"`
}

// problem says whether a log entry must fail the test: an uncaught script
// error, or anything the browser says about the Content-Security-Policy.
func (e logEntry) problem() bool {
	if e.Type == "javascript" && e.Level == "error" {
		return true
	}
	return strings.Contains(e.Text, "Content-Security-Policy") || strings.Contains(e.Text, "Content Security Policy")
}

// event receives every BiDi event, on the connection's reader goroutine.
func (f *Firefox) event(method string, params json.RawMessage) {
	switch method {
	case "log.entryAdded":
		f.logEntry(params)
	case "network.beforeRequestSent":
		f.requestSent(params)
	}
}

func (f *Firefox) logEntry(params json.RawMessage) {
	var e logEntry
	if err := json.Unmarshal(params, &e); err != nil {
		e.Type, e.Level, e.Text = "javascript", "error", fmt.Sprintf("unreadable log entry %s: %v", params, err)
	}
	if !e.problem() {
		return
	}
	msg := fmt.Sprintf("%s %s: %s", e.Type, e.Level, e.Text)
	if fr := e.StackTrace.CallFrames; len(fr) > 0 {
		msg += fmt.Sprintf(" (%s:%d)", fr[0].URL, fr[0].LineNumber+1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if tab := f.tabs[e.Source.Context]; tab != nil {
		tab.problems = append(tab.problems, msg)
		return
	}
	f.orphaned = append(f.orphaned, msg)
}

// step gives a context bounded by the step timeout.
func (f *Firefox) step() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), f.StepTimeout)
}

// FirefoxTab is one Firefox window with its own cookies: one signed-in
// user.
type FirefoxTab struct {
	f    *Firefox
	t    testing.TB
	id   string // browsing context
	base string
	name string

	problems []string // guarded by f.mu
}

// NewTab opens a window in a new user context (no cookies) whose relative
// URLs resolve against base (e.g. "http://127.0.0.1:1234"). name labels its
// screenshots and errors (e.g. "admin"). A window, not a tab of a shared
// window: every page is in the foreground, so its timers are not
// throttled.
func (f *Firefox) NewTab(t testing.TB, base, name string) *FirefoxTab {
	t.Helper()
	ctx, cancel := f.step()
	defer cancel()
	var uc struct {
		UserContext string `json:"userContext"`
	}
	if err := f.conn.call(ctx, "browser.createUserContext", map[string]any{}, &uc); err != nil {
		t.Fatalf("open tab %s: create user context: %v", name, err)
	}
	var bc struct {
		Context string `json:"context"`
	}
	if err := f.conn.call(ctx, "browsingContext.create", map[string]any{"type": "window", "userContext": uc.UserContext}, &bc); err != nil {
		t.Fatalf("open tab %s: create window: %v", name, err)
	}
	tab := &FirefoxTab{f: f, t: t, id: bc.Context, base: strings.TrimSuffix(base, "/"), name: name}
	f.mu.Lock()
	f.tabs[tab.id] = tab
	f.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := f.step()
		defer cancel()
		// Errors here only mean the browser is already gone.
		_ = f.conn.call(ctx, "browsingContext.close", map[string]any{"context": tab.id}, nil)
		_ = f.conn.call(ctx, "browser.removeUserContext", map[string]any{"userContext": uc.UserContext}, nil)
	})
	if err := f.conn.call(ctx, "browsingContext.setViewport", map[string]any{"context": tab.id,
		"viewport": map[string]int{"width": ViewportWidth, "height": ViewportHeight}}, nil); err != nil {
		t.Fatalf("open tab %s: set viewport: %v", name, err)
	}
	return tab
}

// URL resolves a path against the tab's base.
func (tab *FirefoxTab) URL(path string) string { return tab.base + path }

// call sends one command for what, under the step timeout, failing the
// test when it fails.
func (tab *FirefoxTab) call(what, method string, params, out any) {
	tab.t.Helper()
	ctx, cancel := tab.f.step()
	defer cancel()
	if err := tab.f.conn.call(ctx, method, params, out); err != nil {
		tab.fail(what, err)
	}
}

// Open navigates to path, waits for the load to complete and for the
// page's main element.
func (tab *FirefoxTab) Open(path string) {
	tab.t.Helper()
	tab.call("open "+path, "browsingContext.navigate", map[string]any{"context": tab.id, "url": tab.URL(path), "wait": "complete"}, nil)
	tab.WaitFor("open "+path+": its main element", `!!document.querySelector("main")`)
}

// Location is the tab's current URL without the base.
func (tab *FirefoxTab) Location() string {
	tab.t.Helper()
	var href string
	tab.Eval("read location", "location.href", &href)
	return strings.TrimPrefix(href, tab.base)
}

// Eval evaluates a JavaScript expression in the page, awaiting it if it is
// a promise, and decodes its value (passed through JSON.stringify) into
// out, which may be nil.
func (tab *FirefoxTab) Eval(what, expr string, out any) {
	tab.t.Helper()
	ctx, cancel := tab.f.step()
	defer cancel()
	if err := tab.eval(ctx, expr, out); err != nil {
		tab.fail(what, err)
	}
}

// scriptResult is the answer of script.evaluate and script.callFunction.
type scriptResult struct {
	Type   string `json:"type"` // "success" or "exception"
	Result struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"result"`
	ExceptionDetails struct {
		Text       string `json:"text"`
		LineNumber int    `json:"lineNumber"`
	} `json:"exceptionDetails"`
}

// eval runs expr in the page and decodes its JSON-serialized value.
func (tab *FirefoxTab) eval(ctx context.Context, expr string, out any) error {
	var r scriptResult
	err := tab.f.conn.call(ctx, "script.evaluate", map[string]any{
		"expression":   "(async () => JSON.stringify(await (" + expr + "\n)))()",
		"target":       map[string]any{"context": tab.id},
		"awaitPromise": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.Type != "success" {
		return fmt.Errorf("script threw: %s", r.ExceptionDetails.Text)
	}
	if out == nil || r.Result.Type != "string" {
		return nil
	}
	var s string
	if err := json.Unmarshal(r.Result.Value, &s); err != nil {
		return fmt.Errorf("script result %s: %w", r.Result.Value, err)
	}
	return json.Unmarshal([]byte(s), out)
}

// WaitFor waits until the JavaScript expression is true. The page checks it
// on every DOM change and every 100 ms for up to a second per round trip;
// rounds repeat until the step timeout. An expression that throws counts
// as false (the page may still be loading); the last error is reported if
// the wait gives up.
func (tab *FirefoxTab) WaitFor(what, expr string) {
	tab.t.Helper()
	if err := tab.waitFor(expr); err != nil {
		tab.fail(what, err)
	}
}

// waitScript resolves with {ok, err} when the condition %s holds or a
// second has passed.
const waitScript = `new Promise(resolve => {
	let last = "";
	const check = () => { try { return !!(%s
	); } catch (e) { last = String(e); return false; } };
	if (check()) { resolve({ok: true}); return; }
	let obs, tick, stop;
	const done = ok => { obs.disconnect(); clearInterval(tick); clearTimeout(stop); resolve({ok, err: last}); };
	obs = new MutationObserver(() => { if (check()) done(true); });
	obs.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
	tick = setInterval(() => { if (check()) done(true); }, 100);
	stop = setTimeout(() => done(check()), 1000);
})`

func (tab *FirefoxTab) waitFor(expr string) error {
	ctx, cancel := tab.f.step()
	defer cancel()
	script := fmt.Sprintf(waitScript, expr)
	last := ""
	for {
		var r struct {
			OK  bool   `json:"ok"`
			Err string `json:"err"`
		}
		err := tab.eval(ctx, script, &r)
		switch {
		case err == nil && r.OK:
			return nil
		case err == nil:
			last = r.Err
		case errors.Is(err, errConnClosed):
			return err
		default:
			// A navigation destroys the realm the script ran in; the
			// next round runs in the new page.
			last = err.Error()
		}
		if ctx.Err() != nil {
			if last != "" {
				last = " (last: " + last + ")"
			}
			return fmt.Errorf("gave up after %v: condition not met%s", tab.f.StepTimeout, last)
		}
		if err != nil {
			// Do not spin while the page is between documents.
			clock.Sleep(clock.Real{}, 50*time.Millisecond, ctx.Done())
		}
	}
}

// visibleJS is a JavaScript function that finds the element matching a CSS
// selector if it is rendered.
const visibleJS = `(sel => { const e = document.querySelector(sel); return e && e.getClientRects().length > 0 ? e : null; })`

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// WaitVisible waits until an element matching the CSS selector is
// rendered.
func (tab *FirefoxTab) WaitVisible(css string) {
	tab.t.Helper()
	tab.WaitFor("wait for "+css, visibleJS+"("+jsString(css)+") !== null")
}

// Text is the visible text of the first element matching the CSS selector,
// once it is rendered, read in one script (live updates replace sections).
func (tab *FirefoxTab) Text(css string) string {
	tab.t.Helper()
	tab.WaitVisible(css)
	var s string
	tab.Eval("read "+css, `(e => e ? e.innerText : "")(`+visibleJS+"("+jsString(css)+"))", &s)
	return s
}

// Click waits until the element matching the CSS selector is rendered and
// enabled, then clicks it with element.click(): a submit button submits its
// form, a link is followed. No pointer events are synthesized.
func (tab *FirefoxTab) Click(css string) {
	tab.t.Helper()
	sel := visibleJS + "(" + jsString(css) + ")"
	tab.WaitFor("wait to click "+css, sel+" !== null && !"+sel+".disabled")
	tab.Eval("click "+css, `(e => { e.scrollIntoView({block: "center"}); e.click(); return true; })(`+sel+")", nil)
}

// Focus moves the keyboard focus to the element matching the CSS selector.
func (tab *FirefoxTab) Focus(css string) {
	tab.t.Helper()
	sel := visibleJS + "(" + jsString(css) + ")"
	tab.WaitFor("wait to focus "+css, sel+" !== null")
	var ok bool
	tab.Eval("focus "+css, `(e => { e.focus(); return document.activeElement === e; })(`+sel+")", &ok)
	if !ok {
		tab.fail("focus "+css, errors.New("the element did not take the focus"))
	}
}

// Key names of WebDriver for Keys.
const (
	KeyTab   = "\uE004"
	KeyEnter = "\uE007"
)

// Keys types text into the focused element through Firefox's keyboard
// input (input.performActions): one key press per character; KeyTab and
// KeyEnter are keys.
func (tab *FirefoxTab) Keys(what, text string) {
	tab.t.Helper()
	var acts []map[string]string
	for _, r := range text {
		acts = append(acts, map[string]string{"type": "keyDown", "value": string(r)}, map[string]string{"type": "keyUp", "value": string(r)})
	}
	tab.call(what, "input.performActions", map[string]any{"context": tab.id, "actions": []any{
		map[string]any{"type": "key", "id": "keyboard", "actions": acts},
	}}, nil)
}

// Type focuses the element matching the CSS selector, empties it and types
// text into it.
func (tab *FirefoxTab) Type(css, text string) {
	tab.t.Helper()
	tab.Focus(css)
	tab.Eval("empty "+css, `(e => { e.value = ""; return true; })(document.activeElement)`, nil)
	tab.Keys("type into "+css, text)
	var got string
	tab.Eval("read "+css, `document.activeElement.value`, &got)
	if got != text {
		tab.fail("type into "+css, fmt.Errorf("the field holds %q, want %q", got, text))
	}
}

// Screenshot saves a full-page PNG named NN-tab-name.png and returns its
// path.
func (tab *FirefoxTab) Screenshot(name string) string {
	tab.t.Helper()
	ctx, cancel := tab.f.step()
	defer cancel()
	png, err := tab.screenshot(ctx)
	if err != nil {
		tab.fail("screenshot "+name, err)
	}
	return tab.save(name, ".png", png)
}

func (tab *FirefoxTab) screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := tab.f.conn.call(ctx, "browsingContext.captureScreenshot", map[string]any{"context": tab.id, "origin": "document"}, &r); err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(r.Data)
}

func (tab *FirefoxTab) save(name, ext string, data []byte) string {
	return tab.f.save(tab.t, tab.name, name, ext, data)
}

// CheckConsole fails the test if the tab saw an uncaught script error or a
// message about the Content-Security-Policy, or if any page of the browser
// that is no tab's did.
func (tab *FirefoxTab) CheckConsole() {
	tab.t.Helper()
	// A round trip to the page: Firefox sends an entry's event before it
	// answers a later command.
	tab.Eval("flush console", "1", nil)
	tab.f.mu.Lock()
	defer tab.f.mu.Unlock()
	if p := append(append([]string(nil), tab.problems...), tab.f.orphaned...); len(p) > 0 {
		tab.t.Fatalf("tab %s: the page reported errors:\n  %s", tab.name, strings.Join(p, "\n  "))
	}
}

// Hold holds the requests of a tab whose URL path is a given one until the
// test fails them or releases the Hold: a request that fails, or is in
// flight when something else happens, becomes a deterministic case instead
// of a race.
type Hold struct {
	tab       *FirefoxTab
	intercept string
	sub       string
	held      chan string // ids of requests held, in order
}

// HoldRequests holds the tab's requests to path (e.g. "/ui/devices/count")
// until Release.
func (tab *FirefoxTab) HoldRequests(path string) *Hold {
	tab.t.Helper()
	h := &Hold{tab: tab, held: make(chan string, 64)}
	var sub struct {
		Subscription string `json:"subscription"`
	}
	tab.call("hold requests to "+path, "session.subscribe", map[string]any{"events": []string{"network.beforeRequestSent"}, "contexts": []string{tab.id}}, &sub)
	h.sub = sub.Subscription
	u, err := url.Parse(tab.base)
	if err != nil {
		tab.t.Fatalf("hold requests to %s: base %q: %v", path, tab.base, err)
	}
	var ic struct {
		Intercept string `json:"intercept"`
	}
	tab.call("hold requests to "+path, "network.addIntercept", map[string]any{
		"phases":      []string{"beforeRequestSent"},
		"contexts":    []string{tab.id},
		"urlPatterns": []any{map[string]string{"type": "pattern", "protocol": u.Scheme, "hostname": u.Hostname(), "port": u.Port(), "pathname": path}},
	}, &ic)
	h.intercept = ic.Intercept
	tab.f.mu.Lock()
	tab.f.holds[h.intercept] = h
	tab.f.mu.Unlock()
	return h
}

// requestSent notes a request held by a Hold.
func (f *Firefox) requestSent(params json.RawMessage) {
	var e struct {
		IsBlocked  bool     `json:"isBlocked"`
		Intercepts []string `json:"intercepts"`
		Request    struct {
			Request string `json:"request"`
		} `json:"request"`
	}
	if json.Unmarshal(params, &e) != nil || !e.IsBlocked {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range e.Intercepts {
		if h := f.holds[id]; h != nil {
			select {
			case h.held <- e.Request.Request:
			default: // more than the test will ever wait for
			}
		}
	}
}

// Wait waits until a request is being held and returns its id.
func (h *Hold) Wait(what string) string {
	h.tab.t.Helper()
	ctx, cancel := h.tab.f.step()
	defer cancel()
	select {
	case id := <-h.held:
		return id
	case <-ctx.Done():
		h.tab.fail(what, fmt.Errorf("gave up after %v: no request held", h.tab.f.StepTimeout))
		return ""
	}
}

// Fail fails a held request as a network error would (the page sees its
// fetch rejected).
func (h *Hold) Fail(id string) {
	h.tab.t.Helper()
	h.tab.call("fail a held request", "network.failRequest", map[string]any{"request": id}, nil)
}

// Release stops holding requests and sends the ones still held (those of
// a page that is gone are not sent).
func (h *Hold) Release() {
	h.tab.t.Helper()
	h.tab.f.mu.Lock()
	delete(h.tab.f.holds, h.intercept)
	h.tab.f.mu.Unlock()
	h.tab.call("stop holding requests", "network.removeIntercept", map[string]any{"intercept": h.intercept}, nil)
	h.tab.call("stop holding requests", "session.unsubscribe", map[string]any{"subscriptions": []string{h.sub}}, nil)
	ctx, cancel := h.tab.f.step()
	defer cancel()
	for {
		select {
		case id := <-h.held:
			// An error only means the request went with its page.
			_ = h.tab.f.conn.call(ctx, "network.continueRequest", map[string]any{"request": id}, nil)
		default:
			return
		}
	}
}

// Problems is what CheckConsole would report for the tab so far: uncaught
// script errors and messages about the Content-Security-Policy.
func (tab *FirefoxTab) Problems() []string {
	tab.f.mu.Lock()
	defer tab.f.mu.Unlock()
	return append([]string(nil), tab.problems...)
}

// fail records what the page looked like and fails the test.
func (tab *FirefoxTab) fail(what string, err error) {
	tab.t.Helper()
	// Fresh deadlines: the failed step's may have run out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	loc := ""
	_ = tab.eval(ctx, "location.href", &loc)
	var saved []string
	if png, serr := tab.screenshot(ctx); serr == nil {
		saved = append(saved, tab.save("FAILED", ".png", png))
	}
	var html string
	if herr := tab.eval(ctx, "document.documentElement.outerHTML", &html); herr == nil {
		saved = append(saved, tab.save("FAILED", ".html", []byte(html)))
	}
	tab.t.Fatalf("tab %s: %s: %v\n  at %s\n  saved: %s", tab.name, what, err, loc, strings.Join(saved, ", "))
}

// bidiConn is one WebDriver BiDi session's connection: commands matched to
// their answers by id, events handed to a callback on the reader goroutine.
type bidiConn struct {
	ws      *wsConn
	onEvent func(method string, params json.RawMessage)

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan bidiAnswer

	done chan struct{} // closed when the reader stops
	err  error         // why it stopped, set before done is closed
}

type bidiAnswer struct {
	result json.RawMessage
	err    error
}

var errConnClosed = errors.New("connection to the browser closed")

func newBiDiConn(ws *wsConn, onEvent func(string, json.RawMessage)) *bidiConn {
	c := &bidiConn{ws: ws, onEvent: onEvent, pending: map[int64]chan bidiAnswer{}, done: make(chan struct{})}
	go c.read()
	return c
}

func (c *bidiConn) read() {
	defer close(c.done)
	for {
		data, err := c.ws.read()
		if err != nil {
			c.err = fmt.Errorf("%w: %v", errConnClosed, err)
			return
		}
		var m struct {
			Type    string          `json:"type"`
			ID      int64           `json:"id"`
			Result  json.RawMessage `json:"result"`
			Error   string          `json:"error"`
			Message string          `json:"message"`
			Method  string          `json:"method"`
			Params  json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			c.err = fmt.Errorf("%w: unreadable message %.200q: %v", errConnClosed, data, err)
			return
		}
		if m.Type == "event" {
			c.onEvent(m.Method, m.Params)
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch == nil {
			continue // its caller gave up
		}
		if m.Type == "error" {
			ch <- bidiAnswer{err: fmt.Errorf("%s: %s", m.Error, m.Message)}
		} else {
			ch <- bidiAnswer{result: m.Result}
		}
	}
}

// call sends a command and decodes its result into out (if not nil).
func (c *bidiConn) call(ctx context.Context, method string, params, out any) error {
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan bidiAnswer, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		forget()
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := c.ws.writeText(msg); err != nil {
		forget()
		return fmt.Errorf("%s: %w: %v", method, errConnClosed, err)
	}
	select {
	case a := <-ch:
		if a.err != nil {
			return fmt.Errorf("%s: %w", method, a.err)
		}
		if out != nil {
			if err := json.Unmarshal(a.result, out); err != nil {
				return fmt.Errorf("%s: result %.200s: %w", method, a.result, err)
			}
		}
		return nil
	case <-ctx.Done():
		forget()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within the step timeout: %w", method, ctx.Err())
		}
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case <-c.done:
		return fmt.Errorf("%s: %w", method, c.err)
	}
}

func (c *bidiConn) close() {
	c.ws.close()
	<-c.done
}

// wsConn is the client end of a WebSocket (RFC 6455) as far as a local
// browser needs it: text messages, fragmented or not, up to maxWSMessage;
// pings answered; no extensions. It is not safe for concurrent reads;
// writes are serialized.
type wsConn struct {
	c  net.Conn
	br *bufio.Reader

	wmu sync.Mutex
}

// maxWSMessage bounds one message: a full-page screenshot is the largest.
const maxWSMessage = 64 << 20

// wsWriteTimeout bounds writing one frame to the local browser.
const wsWriteTimeout = 10 * time.Second

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func dialWebSocket(ctx context.Context, rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("websocket %s: only ws:// is supported", rawURL)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{
		"Upgrade":               {"websocket"},
		"Connection":            {"Upgrade"},
		"Sec-WebSocket-Key":     {key},
		"Sec-WebSocket-Version": {"13"},
	}}
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %w", err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	_ = c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br}, nil
}

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// writeFrame writes one final, masked frame (a client always masks).
func (w *wsConn) writeFrame(op byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	var hdr [14]byte
	hdr[0] = 0x80 | op
	n := 2
	switch l := len(payload); {
	case l < 126:
		hdr[1] = 0x80 | byte(l)
	case l <= 0xFFFF:
		hdr[1] = 0x80 | 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 0x80 | 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	copy(hdr[n:], mask[:])
	n += 4
	frame := make([]byte, n+len(payload))
	copy(frame, hdr[:n])
	for i, b := range payload {
		frame[n+i] = b ^ mask[i%4]
	}
	_ = w.c.SetWriteDeadline(clock.Real{}.Now().Add(wsWriteTimeout))
	_, err := w.c.Write(frame)
	return err
}

func (w *wsConn) writeText(p []byte) error { return w.writeFrame(opText, p) }

// read returns the next data message, answering pings on the way.
func (w *wsConn) read() ([]byte, error) {
	var msg []byte
	started := false
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0F
		if h[0]&0x70 != 0 {
			return nil, errors.New("websocket: reserved bits set (no extension was negotiated)")
		}
		if h[1]&0x80 != 0 {
			return nil, errors.New("websocket: masked frame from the server")
		}
		size := uint64(h[1] & 0x7F)
		switch size {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			size = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			size = binary.BigEndian.Uint64(b[:])
		}
		if size > maxWSMessage || uint64(len(msg))+size > maxWSMessage {
			return nil, fmt.Errorf("websocket: message over %d bytes", maxWSMessage)
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			if err := w.writeFrame(opPong, payload); err != nil {
				return nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			_ = w.writeFrame(opClose, nil)
			return nil, fmt.Errorf("websocket closed by the browser %x", payload)
		case opText, opBinary:
			if started {
				return nil, errors.New("websocket: new message inside a fragmented one")
			}
			started = true
			msg = payload
		case opContinuation:
			if !started {
				return nil, errors.New("websocket: continuation without a message")
			}
			msg = append(msg, payload...)
		default:
			return nil, fmt.Errorf("websocket: unknown opcode %#x", op)
		}
		if fin {
			return bytes.Clone(msg), nil
		}
	}
}

func (w *wsConn) close() {
	_ = w.writeFrame(opClose, nil)
	w.c.Close()
}
