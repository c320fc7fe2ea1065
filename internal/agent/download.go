package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/updraft/updraft/internal/agent/install"
	"github.com/updraft/updraft/internal/verifier"
)

var (
	// errCanceled: the server canceled the job during the download.
	errCanceled = errors.New("canceled by the server")
	// errFatal wraps failures of the agent's own storage.
	errFatal = errors.New("agent storage failed")
)

// download fetches the job's artifact into its sink, resuming from the
// last checkpoint, verifying every byte through the stream. It returns
// nil once every byte is written, synced and verified; a *jobError when
// the job must fail; errCanceled; or another error to retry later.
func (a *Agent) download(ctx context.Context, j *job) error {
	p := a.loadProgress(j.AssignmentID)
	stream, err := a.newStream(&j.Target, p.Stream)
	if err != nil || stream.Offset() != p.Offset {
		// A checkpoint that does not fit is worth nothing: start over.
		a.log.Warn("download checkpoint unusable; starting from zero", "err", err)
		p = progress{AssignmentID: j.AssignmentID}
		if stream, err = a.newStream(&j.Target, nil); err != nil {
			return failure("verifier", "cannot start verifying: %v", err)
		}
	}
	sink, err := a.openSink(j)
	if err != nil {
		return failure("write", "cannot open where the artifact goes: %v", err)
	}
	defer sink.Close()
	d := &downloader{a: a, j: j, p: p, stream: stream, sink: sink, lastPct: pct(p.Offset, j.Target.Length)}
	if err := d.run(ctx); err != nil {
		return err
	}
	if err := sink.Sync(); err != nil {
		return fmt.Errorf("%w: sync: %v", errFatal, err)
	}
	if err := d.stream.Finish(); err != nil {
		// The bytes do not match what was signed. Start over from zero
		// (the server's copy may have changed under an old ETag, or the
		// storage corrupted them) a limited number of times.
		if err := install.RemoveAll(a.cfg.FS, a.progressPath()); err != nil {
			return fmt.Errorf("%w: %v", errFatal, err)
		}
		j.Restarts++
		if err2 := a.save(); err2 != nil {
			return err2
		}
		if j.Restarts > a.cfg.Download.MaxRestarts {
			return failure(reasonCode(err, "hash-mismatch"), "downloaded artifact failed verification: %v", err)
		}
		a.log.Warn("downloaded artifact failed verification; downloading again from zero", "err", err, "restarts", j.Restarts)
		return err
	}
	a.log.Info("download complete and verified", "assignment_id", j.AssignmentID, "bytes", j.Target.Length)
	return nil
}

func reasonCode(err error, def string) string {
	if r := verifier.ReasonOf(err); r != "" {
		return string(r)
	}
	return def
}

func (a *Agent) openSink(j *job) (install.Sink, error) {
	switch j.Kind {
	case kindSlot:
		return install.OpenSlot(a.cfg.FS, a.slot(j.ToSlot).Device)
	case kindHashSlot:
		return install.HashOnly{}, nil
	}
	return install.OpenStaging(a.cfg.FS, j.Staging)
}

func pct(off, length int64) int {
	if length <= 0 {
		return 100
	}
	return int(off * 100 / length)
}

type downloader struct {
	a       *Agent
	j       *job
	p       progress
	stream  verifier.Stream
	sink    install.Sink
	since   int64 // bytes since the last checkpoint
	lastPct int
}

// checkpoint makes the bytes so far durable, then records the offset and
// stream state. The order matters: the checkpoint must never claim bytes
// the sink could still lose.
func (d *downloader) checkpoint() error {
	if err := d.sink.Sync(); err != nil {
		return fmt.Errorf("%w: sync: %v", errFatal, err)
	}
	st, err := d.stream.State()
	if err != nil {
		return fmt.Errorf("%w: stream state: %v", errFatal, err)
	}
	d.p.Offset, d.p.Stream = d.stream.Offset(), st
	if err := d.a.saveProgress(d.p); err != nil {
		return fmt.Errorf("%w: %v", errFatal, err)
	}
	d.since = 0
	return nil
}

// restart drops everything downloaded so far.
func (d *downloader) restart() error {
	s, err := d.a.newStream(&d.j.Target, nil)
	if err != nil {
		return failure("verifier", "cannot start verifying: %v", err)
	}
	d.stream = s
	d.p = progress{AssignmentID: d.j.AssignmentID}
	d.since, d.lastPct = 0, 0
	return nil
}

func (d *downloader) run(ctx context.Context) error {
	length := d.j.Target.Length
	stalled := 0
	for d.stream.Offset() < length {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.checkpoint(); err != nil {
			return err
		}
		before := d.stream.Offset()
		err := d.fetch(ctx)
		if err == nil || errors.Is(err, errCanceled) || errors.Is(err, errFatal) {
			if err != nil {
				return err
			}
			continue
		}
		var je *jobError
		if errors.As(err, &je) || ctx.Err() != nil {
			return err
		}
		if d.stream.Offset() > before {
			stalled = 0
			d.a.log.Info("download interrupted; resuming", "offset", d.stream.Offset(), "err", err)
			continue
		}
		if stalled++; stalled >= 3 {
			if cerr := d.checkpoint(); cerr != nil {
				return cerr
			}
			d.a.backoff()
			return err
		}
	}
	return d.checkpoint()
}

// errNewURL asks for a fresh download URL.
var errNewURL = errors.New("download URL expired or refused")

// fetch does one request from the current offset and copies the answer.
func (d *downloader) fetch(ctx context.Context) error {
	a, j := d.a, d.j
	off, length := d.stream.Offset(), j.Target.Length
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.URL, nil)
	if err != nil {
		return failure("bad-url", "download URL %q: %v", j.URL, err)
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		if d.p.ETag != "" && !strings.HasPrefix(d.p.ETag, "W/") {
			req.Header.Set("If-Range", d.p.ETag)
		}
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off || (total >= 0 && total != length) {
			return failure("bad-range", "server answered range %q for a request from byte %d of %d", resp.Header.Get("Content-Range"), off, length)
		}
	case http.StatusOK:
		if off > 0 {
			// The server ignored the range, or the ETag no longer matches
			// (the content changed): everything so far is void.
			a.log.Warn("server sent the whole artifact instead of a range; starting from zero", "offset", off)
			if err := d.restart(); err != nil {
				return err
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if off >= length {
			return nil
		}
		a.log.Warn("server refused the resume range; starting from zero", "offset", off)
		return d.restart()
	case http.StatusGone, http.StatusForbidden:
		// The signed URL expired or is refused: check in for a new one.
		if a.token != "" {
			old := j.URL
			a.nextCheckIn = a.clock.Now()
			a.checkIn(ctx, 0)
			if j.URL != old {
				return nil
			}
		}
		return fmt.Errorf("%w: %s", errNewURL, resp.Status)
	case http.StatusNotFound:
		return failure("artifact-missing", "the server no longer has the artifact (404)")
	default:
		return fmt.Errorf("download answered %s", resp.Status)
	}
	if et := resp.Header.Get("ETag"); et != "" {
		d.p.ETag = et
	}
	return d.copy(ctx, resp.Body)
}

func (d *downloader) copy(ctx context.Context, body io.Reader) error {
	a, j := d.a, d.j
	buf := make([]byte, a.cfg.Download.BufferBytes)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			off := d.stream.Offset()
			if _, err := d.stream.Write(buf[:n]); err != nil {
				return failure(reasonCode(err, "verify"), "%v", err)
			}
			if _, err := d.sink.WriteAt(buf[:n], off); err != nil {
				return failure("write", "writing the artifact failed: %v", err)
			}
			d.since += int64(n)
			if d.since >= a.cfg.Download.CheckpointBytes {
				if err := d.checkpoint(); err != nil {
					return err
				}
				if err := d.progressed(ctx); err != nil {
					return err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			if d.stream.Offset() < j.Target.Length {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// progressed reports progress in quarter steps and checks in when due, so
// a cancel reaches a long download.
func (d *downloader) progressed(ctx context.Context) error {
	a, j := d.a, d.j
	if p := pct(d.stream.Offset(), j.Target.Length); p/25 > d.lastPct/25 && p < 100 {
		d.lastPct = p
		a.enqueue(*a.report("downloading", p, "", "", ""))
		if err := a.save(); err != nil {
			return err
		}
	}
	if a.due(a.nextCheckIn) && a.token != "" {
		a.flushOutbox(ctx)
		a.checkIn(ctx, 0)
		if c := a.cancel; c != nil && c.AssignmentID == j.AssignmentID {
			return errCanceled
		}
	}
	return nil
}

// parseContentRange reads "bytes start-end/total" (total "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	if tot == "*" {
		return start, -1, true
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil || total < 0 {
		return 0, 0, false
	}
	return start, total, true
}
