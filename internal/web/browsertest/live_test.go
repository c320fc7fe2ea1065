package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestLiveUpdatesLeaveUnchangedSections drives the dashboard's own script
// (internal/web/static/app.js) with a stream the test controls. The first
// update after connecting repeats every section; one whose content did not
// change must stay in place, so what the operator types in it and the
// keyboard focus survive. A changed section is replaced.
func TestLiveUpdatesLeaveUnchangedSections(t *testing.T) {
	script, err := os.ReadFile("../static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan string)
	connected := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><script src="/app.js" defer></script></head><body><main>`+
			`<div data-live="/events" hidden></div><span id="live-status" class="live">connecting…</span>`+
			`<section id="actions"><form><input type="text" name="reason" aria-label="Reason" maxlength="500"> <button type="button">Abort</button></form></section>`+
			`<section id="progress" data-done="1"><p>1 updated</p></section>`+
			`</main></body></html>`)
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(script)
	})
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "retry: 60000\n\n")
		http.NewResponseController(w).Flush()
		select {
		case connected <- struct{}{}:
		default:
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case f := <-frames:
				fmt.Fprint(w, f)
				http.NewResponseController(w).Flush()
			}
		}
	})
	srv := httptest.NewServer(mux)
	// Closed after the browser (cleanups run last-in first-out): Close
	// waits for the open event stream, which ends when its tab does.
	t.Cleanup(srv.Close)
	send := func(id, html string) {
		b, err := json.Marshal(map[string]string{"id": id, "html": html})
		if err != nil {
			t.Fatal(err)
		}
		frames <- "event: replace\ndata: " + string(b) + "\n\n"
	}

	b := Start(t)
	tab := b.NewTab(t, srv.URL, "live")
	tab.Open("/page")
	<-connected
	const field = `#actions input[name="reason"]`
	tab.Do("type a reason", chromedp.SendKeys(chromedp.CSS(field), "checking the logs"))
	kept := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return (e === document.activeElement ? "focused: " : "") + e.value; })()`, field)

	// The same sections again, written differently (attribute order and
	// quoting, self-closing form), then a changed progress section.
	send("actions", "<section id='actions'><form><input maxlength=\"500\" aria-label=\"Reason\" name=\"reason\" type=\"text\" /> <button type=\"button\">Abort</button></form></section>")
	send("progress", `<section id="progress" data-done="1"><p>1 updated</p></section>`)
	send("progress", `<section id="progress" data-done="2"><p>2 updated</p></section>`)
	tab.WaitFor("three updates", `document.body.getAttribute("data-updates") === "3"`)
	if got := tab.Text("#progress"); got != "2 updated" {
		t.Fatalf("the changed section reads %q, want 2 updated", got)
	}
	if got := Run(tab, "the reason", chromedp.Evaluate[string](kept)); got != "focused: checking the logs" {
		t.Fatalf("after updates that left the actions alone the reason field holds %q, want it focused with the typed text", got)
	}
	if got := tab.Text("#live-status"); got != "live" {
		t.Fatalf("live status %q", got)
	}

	// A real change to the actions replaces them.
	send("actions", `<section id="actions"><p>The campaign is aborted: no command applies any more.</p></section>`)
	tab.WaitFor("the actions replaced", `document.body.getAttribute("data-updates") === "4"`)
	if got := tab.Text("#actions"); got != "The campaign is aborted: no command applies any more." {
		t.Fatalf("the changed actions read %q", got)
	}
	tab.CheckConsole()
}
