package downloadbench

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// artifactSize is the benchmark's artifact: 256 MiB, about a large rootfs
// image.
const artifactSize = 256 << 20

// BenchmarkDownload downloads the same 256 MiB artifact from Updraft and from
// nginx, alternating which goes first in each round, and reports both
// throughputs and their ratio.
func BenchmarkDownload(b *testing.B) {
	f := newFixture(b, artifactSize)
	for name, url := range map[string]string{"updraft": f.updraft, "nginx": f.nginx} {
		if err := f.checkResume(url, artifactSize/2+12345); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}

	buf := make([]byte, 1<<20)
	timed := func(url string) time.Duration {
		start := time.Now()
		if err := f.fetchAll(url, buf); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	// Warm the page cache and both connections before timing.
	timed(f.updraft)
	timed(f.nginx)

	var tUpdraft, tNginx time.Duration
	var roundRatios []float64 // per round; its median resists a noisy neighbour
	rounds := 0
	for b.Loop() {
		var u, n time.Duration
		if rounds%2 == 0 {
			u = timed(f.updraft)
			n = timed(f.nginx)
		} else {
			n = timed(f.nginx)
			u = timed(f.updraft)
		}
		tUpdraft += u
		tNginx += n
		roundRatios = append(roundRatios, n.Seconds()/u.Seconds())
		rounds++
	}
	up, err := throughput(artifactSize, rounds, tUpdraft)
	if err != nil {
		b.Fatal(err)
	}
	ng, err := throughput(artifactSize, rounds, tNginx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(up, "updraft-MB/s")
	b.ReportMetric(ng, "nginx-MB/s")
	b.ReportMetric(up/ng, "ratio")
	slices.Sort(roundRatios)
	median := roundRatios[len(roundRatios)/2]
	if len(roundRatios)%2 == 0 {
		median = (median + roundRatios[len(roundRatios)/2-1]) / 2
	}
	b.ReportMetric(median, "median-ratio")
	verdict := "meets"
	if up/ng < 0.8 {
		verdict = "misses"
	}
	b.Logf("%d rounds of %d MiB: updraft %.0f MB/s, nginx %.0f MB/s, ratio %.2f (%s the 0.8 goal); per-round ratio min %.2f median %.2f max %.2f",
		rounds, artifactSize>>20, up, ng, up/ng, verdict, roundRatios[0], median, roundRatios[len(roundRatios)-1])
}

// TestHarness runs the benchmark's setup and checks on a small artifact so
// that plain `go test ./...` keeps the harness working: both servers start,
// serve the whole file, resume from the middle with exactly the remaining
// bytes, and the Updraft side refuses a tampered signed URL.
func TestHarness(t *testing.T) {
	t.Parallel()
	const size = 3<<20 + 7
	f := newFixture(t, size)
	buf := make([]byte, 1<<20)
	for name, url := range map[string]string{"updraft": f.updraft, "nginx": f.nginx} {
		if err := f.fetchAll(url, buf); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := f.checkResume(url, size/2); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	resp, _, err := f.get(f.updraft+"x", nil, discard{io.Discard}, buf)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("tampered signature: status %d, want 403", resp.StatusCode)
	}
}
