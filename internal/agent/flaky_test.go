package agent_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/store"
)

// flaky is a RoundTripper that cuts artifact downloads off after a random
// number of bytes, like a mobile link that drops.
type flaky struct {
	base http.RoundTripper
	mu   sync.Mutex
	rnd  *rand.Rand
	// maxCut bounds how far a response gets before it is cut.
	maxCut    int64
	drops     int
	maxDrops  int
	delivered int64    // artifact bytes handed to the agent
	ranges    []string // Range headers of the download requests
}

var errDropped = errors.New("connection reset by peer (simulated)")

func (f *flaky) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := f.base.RoundTrip(req)
	if err != nil || !strings.Contains(req.URL.Path, "/artifacts/") {
		return resp, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ranges = append(f.ranges, req.Header.Get("Range"))
	cut := int64(-1)
	if f.drops < f.maxDrops {
		cut = 1 + f.rnd.Int64N(f.maxCut)
		f.drops++
	}
	resp.Body = &cutBody{f: f, body: resp.Body, left: cut}
	return resp, nil
}

type cutBody struct {
	f    *flaky
	body io.ReadCloser
	left int64 // -1: never cut
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left == 0 {
		c.body.Close()
		return 0, errDropped
	}
	if c.left > 0 && int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.body.Read(p)
	if c.left > 0 {
		c.left -= int64(n)
	}
	c.f.mu.Lock()
	c.f.delivered += int64(n)
	c.f.mu.Unlock()
	return n, err
}

func (c *cutBody) Close() error { return c.body.Close() }

// TestFlakyDownload64MiB: a 64 MiB image over a link that drops at random
// points completes with the right bytes, every resume starts exactly where
// the previous connection stopped (no byte is fetched twice), and a power
// cut in the middle resumes from the last checkpoint rather than zero.
func TestFlakyDownload64MiB(t *testing.T) {
	t.Parallel()
	const seed = 20251128
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d", seed)
		}
	})
	const size = 64 << 20
	srv := newServer(t, serverOptions{})
	link := &flaky{base: http.DefaultTransport.(*http.Transport).Clone(), rnd: rand.New(rand.NewPCG(seed, 1)), maxCut: 6 << 20, maxDrops: 25}
	const checkpoint = 4 << 20
	d := newDevice(t, srv, deviceOptions{seed: seed, configure: func(c *agent.Config) {
		c.HTTP = &http.Client{Transport: link}
		c.Download.CheckpointBytes = checkpoint
		c.Download.BufferBytes = 256 << 10
	}})
	img := image("GOOD", size, seed)
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", img))

	// Cut power at the 5th checkpoint's sync of the slot, i.e. mid-image.
	syncs := 0
	d.fs.CutWhen(func(op devfs.Op) bool {
		if op.Kind == devfs.OpSync && op.Name == "dev/slot-b" {
			syncs++
		}
		return syncs == 5
	})
	ctx := context.Background()
	for i := 0; i < 50 && !d.fs.PowerCut(); i++ {
		wait, err := d.step(ctx)
		if err != nil && !d.fs.PowerCut() {
			t.Fatal(err)
		}
		srv.clock.Advance(max(wait, time.Second))
	}
	if !d.fs.PowerCut() {
		t.Fatal("the power cut never happened")
	}
	link.mu.Lock()
	before := link.delivered
	link.mu.Unlock()
	d.powerCycle()
	d.finished(asg.ID)

	if got := srv.assignment(asg.ID); got.State != store.AssignSucceeded {
		t.Fatalf("assignment %s\n%s", got.State, d.logTail())
	}
	if !bytes.Equal(d.slotContent("B")[:size], img) {
		t.Fatal("slot B does not hold the image")
	}
	link.mu.Lock()
	defer link.mu.Unlock()
	if link.drops < 10 {
		t.Fatalf("only %d drops; the test needs a flaky link", link.drops)
	}
	resumed := 0
	for _, r := range link.ranges[1:] {
		if strings.HasPrefix(r, "bytes=") && r != "bytes=0-" {
			resumed++
		}
	}
	if resumed < link.drops-1 {
		t.Fatalf("%d ranged requests for %d drops: %v", resumed, link.drops, link.ranges)
	}
	// Only the bytes after the last checkpoint before the power cut may be
	// fetched twice.
	if extra := link.delivered - size; extra < 0 || extra > checkpoint+256<<10 {
		t.Fatalf("delivered %d bytes for a %d-byte image (%d before the power cut): %d extra", link.delivered, size, before, extra)
	}
	t.Logf("%d drops, %d requests, %d bytes delivered for %d", link.drops, len(link.ranges), link.delivered, size)
}

// rangeStripper drops the Range header of the second artifact request, as
// a proxy that does not support ranges would, and cuts the first response
// off midway.
type rangeStripper struct {
	base     http.RoundTripper
	mu       sync.Mutex
	n        int
	statuses []int
}

func (r *rangeStripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.Contains(req.URL.Path, "/artifacts/") {
		return r.base.RoundTrip(req)
	}
	r.mu.Lock()
	r.n++
	n := r.n
	r.mu.Unlock()
	if n == 2 {
		req = req.Clone(req.Context())
		req.Header.Del("Range")
		req.Header.Del("If-Range")
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.statuses = append(r.statuses, resp.StatusCode)
	r.mu.Unlock()
	if n == 1 {
		resp.Body = &cutBody{f: &flaky{}, body: resp.Body, left: 100 << 10}
	}
	return resp, nil
}

// TestDownloadWithoutRangeSupport: when a resume request is answered with
// the whole artifact (200), the agent starts over from zero and still ends
// with verified bytes.
func TestDownloadWithoutRangeSupport(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	rt := &rangeStripper{base: http.DefaultTransport.(*http.Transport).Clone()}
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) { c.HTTP = &http.Client{Transport: rt} }})
	img := image("GOOD", 300<<10, 15)
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", img))
	d.finished(asg.ID)
	if got := srv.assignment(asg.ID); got.State != store.AssignSucceeded || !bytes.Equal(d.slotContent("B")[:len(img)], img) {
		t.Fatalf("assignment %s", got.State)
	}
	if !strings.Contains(d.log.String(), "starting from zero") {
		t.Fatal("the agent did not notice the missing range")
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.statuses) != 2 || rt.statuses[0] != http.StatusOK || rt.statuses[1] != http.StatusOK {
		t.Fatalf("statuses %v: want a cut 200 and a full 200", rt.statuses)
	}
}
