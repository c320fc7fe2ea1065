package main

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := backoff{min: time.Second, max: time.Minute, seed: 7}
	for _, tt := range []struct {
		failures int
		ceiling  time.Duration // the delay is in [ceiling/2, ceiling]
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {6, 32 * time.Second},
		{7, time.Minute}, {40, time.Minute}, {1000, time.Minute},
	} {
		rnd := b.rand(3)
		for range 100 {
			if d := b.delay(tt.failures, rnd); d < tt.ceiling/2 || d > tt.ceiling {
				t.Fatalf("seed %d: delay after %d failures = %v, want %v – %v", b.seed, tt.failures, d, tt.ceiling/2, tt.ceiling)
			}
		}
	}
}

// The same seed and device give the same delays; devices that failed
// together are spread over the whole window, not in step.
func TestBackoffSeededAndSpread(t *testing.T) {
	t.Parallel()
	b := backoff{min: time.Second, max: time.Minute, seed: 7}
	r1, r2 := b.rand(42), b.rand(42)
	for f := 1; f <= 10; f++ {
		if d1, d2 := b.delay(f, r1), b.delay(f, r2); d1 != d2 {
			t.Fatalf("seed %d device 42: failure %d waits %v and %v", b.seed, f, d1, d2)
		}
	}
	// 1,000 devices after their third failure (window 2 – 4 s): every
	// 200 ms slice of the window gets some, none gets most.
	var slices [10]int
	for i := range 1000 {
		d := b.delay(3, b.rand(i))
		slices[min(9, int((d-2*time.Second)/(200*time.Millisecond)))]++
	}
	for i, n := range slices {
		if n < 50 || n > 150 {
			t.Fatalf("seed %d: %d of 1000 devices retry in slice %d of the window (%v)", b.seed, n, i, slices)
		}
	}
}
