package browsertest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowser checks the helper against a tiny site: a page loads, a
// script under a strict CSP runs, a full-page screenshot is a PNG of the
// whole page, and an inline script blocked by the CSP is reported.
func TestBrowser(t *testing.T) {
	mux := http.NewServeMux()
	csp := "default-src 'none'; script-src 'self'; style-src 'self'"
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// A tall page: the screenshot must cover all of it.
		w.Write([]byte(`<!doctype html><html><head><link rel="stylesheet" href="/app.css">` +
			`<script src="/app.js" defer></script></head><body><main><h1 id="t">hello</h1><div class="tall"></div></main></body></html>`))
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write([]byte(`document.getElementById("t").textContent = "scripted";`))
	})
	mux.HandleFunc("/app.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Write([]byte(`.tall { height: 3000px; }`))
	})
	mux.HandleFunc("/inline", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html><body><main><script>document.title = "ran"</script></main></body></html>`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := Start(t)
	tab := b.NewTab(t, srv.URL, "test")
	tab.Open("/page")
	tab.WaitFor("the script ran", `document.getElementById("t").textContent === "scripted"`)
	if got := tab.Text("#t"); got != "scripted" {
		t.Fatalf("heading %q, want scripted", got)
	}
	if loc := tab.Location(); loc != "/page" {
		t.Fatalf("location %q", loc)
	}
	tab.CheckConsole()
	p := tab.Screenshot("page")
	png, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 24 {
		t.Fatalf("%s is not a PNG", p)
	}
	height := int(png[20])<<24 | int(png[21])<<16 | int(png[22])<<8 | int(png[23])
	if height < 3000 {
		t.Fatalf("screenshot is %d px high; the page is over 3000 px: not a full-page shot", height)
	}
	if !strings.HasPrefix(p, ScreenshotDir()) {
		t.Fatalf("screenshot %s outside %s", p, ScreenshotDir())
	}

	// A second tab has its own cookies.
	tab.Do("set a cookie", chromedp.Evaluate[chromedp.Void](`document.cookie = "a=1; path=/"`))
	other := b.NewTab(t, srv.URL, "other")
	other.Open("/page")
	if c := Run(other, "read cookies", chromedp.Evaluate[string]("document.cookie")); c != "" {
		t.Fatalf("a new tab sees cookies %q", c)
	}

	other.Open("/inline")
	other.WaitFor("the CSP report", `true`)
	Run(other, "flush", chromedp.Evaluate[int]("1"))
	other.mu.Lock()
	problems := strings.Join(other.problems, "\n")
	other.mu.Unlock()
	if !strings.Contains(problems, "Content Security Policy") {
		t.Fatalf("an inline script under a strict CSP was not reported; problems: %q", problems)
	}
	if title := Run(other, "title", chromedp.Title()); title == "ran" {
		t.Fatal("the inline script ran despite the CSP")
	}
}

// TestTextOfAReplacedSection reads a section that a script keeps replacing
// through outerHTML, as the dashboard's live updates do. Every read must see
// the section's text: a read split over two protocol calls could find the
// node with the first and read it, already detached, with the second.
func TestTextOfAReplacedSection(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><html><head><script src="/app.js" defer></script></head>` +
			`<body><main><section id="live"><p>still here</p></section></main></body></html>`))
	})
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write([]byte(`let n = 0;
setInterval(() => {
  n++;
  document.getElementById("live").outerHTML = '<section id="live" data-n="' + n + '"><p>still here</p></section>';
}, 1);`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := Start(t)
	tab := b.NewTab(t, srv.URL, "replaced")
	tab.Open("/page")
	tab.WaitFor("replacements", `parseInt(document.getElementById("live").getAttribute("data-n") || "0", 10) > 0`)
	for i := 0; i < 100; i++ {
		if got := tab.Text("#live"); got != "still here" {
			t.Fatalf("read %d of a section being replaced: %q", i, got)
		}
	}
	tab.CheckConsole()
}
