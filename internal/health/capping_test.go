package health

import (
	"slices"
	"testing"
	"time"
)

func TestCappedTotal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		counts []int
		limit  int
		want   int
	}{
		{nil, 3, 0},
		{[]int{1, 0, 2}, 3, 3},
		{[]int{500, 1, 2}, 3, 6}, // a crash-looping device counts 3
		{[]int{500, 1, 2}, 1, 3}, // "device-days with an event"
		{[]int{500, 1, 2}, 0, 503},
		{[]int{-4, 2}, 3, 2},
	}
	for _, tt := range tests {
		if got := CappedTotal(tt.counts, tt.limit); got != tt.want {
			t.Errorf("CappedTotal(%v, %d) = %d, want %d", tt.counts, tt.limit, got, tt.want)
		}
	}
}

func TestCapEvents(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)
	at := func(h float64) time.Time { return t0.Add(time.Duration(h * float64(time.Hour))) }
	var loop []Event // device "a" crash-loops: 10 crashes an hour for 30 hours
	for i := range 300 {
		loop = append(loop, Event{"a", at(float64(i) / 10)})
	}
	events := append(loop,
		Event{"b", at(-1)},   // before the soak: ignored
		Event{"b", at(1)},    // counted
		Event{"b", at(49)},   // after the last bound: ignored
		Event{"c", at(23.9)}, // day 0
		Event{"c", at(24)},   // day 1 starts exactly at 24 h
	)
	tests := []struct {
		name   string
		limit  int
		bounds []time.Time
		want   []int
	}{
		// Device a: 3 on day 0 (hours 0, 0.1, 0.2) and 3 on day 1 (24.0–24.2).
		{"one period", 3, []time.Time{at(0), at(48)}, []int{3 + 1 + 2 + 3}},
		{"split at 12 h", 3, []time.Time{at(0), at(12), at(48)}, []int{3 + 1, 2 + 3}},
		{"cap 1", 1, []time.Time{at(0), at(48)}, []int{2 + 1 + 2}},
		{"no cap", 0, []time.Time{at(0), at(48)}, []int{300 + 1 + 2}},
		{"no periods", 3, []time.Time{at(0)}, nil},
	}
	for _, tt := range tests {
		got := CapEvents(events, tt.limit, tt.bounds)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// The cut of periods does not change the total.
	fine := []time.Time{}
	for h := 0; h <= 48; h++ {
		fine = append(fine, at(float64(h)))
	}
	sum := 0
	for _, c := range CapEvents(events, 3, fine) {
		sum += c
	}
	if sum != 9 {
		t.Errorf("hourly periods total %d, want 9", sum)
	}
	// The input is not reordered.
	if events[0] != (Event{"a", at(0)}) || events[len(events)-1] != (Event{"c", at(24)}) {
		t.Error("CapEvents reordered its input")
	}
}
