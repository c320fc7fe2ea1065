// Package download serves artifact blobs to devices over HTTP.
//
// Serve wraps http.ServeContent, which implements Range, If-Range,
// If-Match, If-None-Match, 206 Partial Content and 416 Range Not
// Satisfiable, and adds what firmware downloads need on top:
//
//   - a strong ETag, the quoted SHA-256 of the content, so that a device
//     resuming with If-Range gets the rest of the same bytes or, if the
//     artifact changed, the whole new one;
//   - no Last-Modified: the content address is the only validator, so the
//     same blob has the same validators on every replica and store, and an
//     If-Range carrying a date always yields the full body;
//   - application/octet-stream, nosniff, a sanitized attachment filename,
//     and Cache-Control "private, no-transform" so proxies neither share
//     per-device responses nor recompress firmware;
//   - zero-copy: when the object is backed by a local file, the *os.File
//     itself goes to ServeContent, which lets net/http hand the copy to
//     sendfile(2).
//
// A single range is served with sendfile. A request for several ranges gets
// a multipart/byteranges response (copied through user space); one whose
// ranges add up to more than the artifact, or that lists more than
// MaxRanges ranges, gets the full body with 200. Authorization (the signed
// URL) is the caller's job and must happen before Serve.
package download

import (
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/blob"
)

// MaxRanges is the most byte ranges one request may ask for; requests with
// more are answered with the whole artifact, as RFC 9110 allows. It bounds
// the work a client can cause with many tiny ranges.
const MaxRanges = 16

// maxFilenameLen bounds the filename offered in Content-Disposition.
const maxFilenameLen = 128

// Serve answers a GET or HEAD for obj. name is the filename offered to the
// client; it is reduced to a safe ASCII base name and omitted if nothing of
// it is left. Serve does not close obj.
func Serve(w http.ResponseWriter, r *http.Request, obj blob.Object, name string) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Etag", ETag(obj.Key()))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-transform")
	h.Set("Accept-Ranges", "bytes")
	if fn := sanitizeFilename(name); fn != "" {
		h.Set("Content-Disposition", `attachment; filename="`+fn+`"`)
	}

	if rng := r.Header.Get("Range"); rng != "" && strings.Count(rng, ",") >= MaxRanges {
		r = withoutRange(r)
	}
	var content io.ReadSeeker = obj
	if f, ok := obj.(blob.File); ok {
		// net/http uses sendfile only when it sees the *os.File itself.
		content = f.File()
	}
	http.ServeContent(w, r, "", time.Time{}, content)
}

// ETag returns the strong entity tag for the blob with the given key.
func ETag(key string) string { return `"` + key + `"` }

func withoutRange(r *http.Request) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	r2.Header.Del("Range")
	r2.Header.Del("If-Range")
	return r2
}

// sanitizeFilename keeps the last path element of name and replaces every
// byte outside [A-Za-z0-9._+-] with '_', so the result needs no quoting or
// encoding in a header and cannot name a directory or a hidden file.
func sanitizeFilename(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '.', c == '_', c == '+', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	s := string(b)
	if len(s) > maxFilenameLen {
		// Keep the end: it holds the extension clients look at.
		s = s[len(s)-maxFilenameLen:]
	}
	s = strings.TrimLeft(s, ".")
	if strings.Trim(s, "_.") == "" {
		return ""
	}
	return s
}
