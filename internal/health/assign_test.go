package health

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestAllocate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n     int
		sizes []int
		want  []int
	}{
		{10, []int{50, 30, 20}, []int{5, 3, 2}},
		{7, []int{50, 30, 20}, []int{4, 2, 1}},    // quotas 3.5, 2.1, 1.4: remainders go to .5, then .4
		{3, []int{980, 15, 5}, []int{1, 1, 1}},    // every stratum represented
		{2, []int{980, 15, 5}, []int{2, 0, 0}},    // fewer devices than strata: pure proportion
		{100, []int{980, 15, 5}, []int{98, 1, 1}}, // quotas 98, 1.5, 0.5
		{5, []int{0, 10, 0}, []int{0, 5, 0}},
		{50, []int{10, 10}, []int{10, 10}}, // capped at the total
		{0, []int{10, 10}, []int{0, 0}},
		{3, []int{2, 2, 2, 2}, []int{1, 1, 1, 0}}, // ties go to the earlier stratum
	}
	for _, tt := range tests {
		if got := Allocate(tt.n, tt.sizes); !slices.Equal(got, tt.want) {
			t.Errorf("Allocate(%d, %v) = %v, want %v", tt.n, tt.sizes, got, tt.want)
		}
	}
}

// TestAllocateProperties checks, over random inputs, that the allocation
// sums to n, respects sizes, stays within one of each quota when every
// quota is at least one, and represents every stratum when n allows.
func TestAllocateProperties(t *testing.T) {
	t.Parallel()
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0))
		sizes := make([]int, 1+rng.IntN(8))
		total := 0
		for i := range sizes {
			sizes[i] = rng.IntN(2000)
			if rng.IntN(4) == 0 {
				sizes[i] = rng.IntN(3)
			}
			total += sizes[i]
		}
		n := rng.IntN(total + 2)
		alloc := Allocate(n, sizes)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d: Allocate(%d, %v) = %v: %s", seed, n, sizes, alloc, fmt.Sprintf(format, args...))
		}
		sum, nonEmpty, minQuota := 0, 0, math.Inf(1)
		for i, a := range alloc {
			sum += a
			if a < 0 || a > sizes[i] {
				fail("stratum %d out of range", i)
			}
			if sizes[i] > 0 {
				nonEmpty++
				minQuota = math.Min(minQuota, float64(min(n, total))*float64(sizes[i])/float64(total))
			}
		}
		if sum != min(n, total) {
			fail("sums to %d", sum)
		}
		for i, a := range alloc {
			q := float64(min(n, total)) * float64(sizes[i]) / float64(max(total, 1))
			if minQuota >= 1 && math.Abs(float64(a)-q) >= 1 {
				fail("stratum %d: %d devices for a quota of %.2f", i, a, q)
			}
			if n >= nonEmpty && sizes[i] > 0 && a == 0 {
				fail("stratum %d left out", i)
			}
		}
	}
}

func fleet(strata map[string]int) []Target {
	var out []Target
	for _, key := range slices.Sorted(maps.Keys(strata)) {
		for i := range strata[key] {
			out = append(out, Target{ID: fmt.Sprintf("%s-%04d", key, i), Stratum: key})
		}
	}
	return out
}

func TestDrawWaves(t *testing.T) {
	t.Parallel()
	targets := fleet(map[string]int{"rev=A": 6000, "rev=B": 3000, "rev=C": 980, "rev=D": 20})
	stratum := map[string]string{}
	for _, tg := range targets {
		stratum[tg.ID] = tg.Stratum
	}
	waves := []WaveSize{{Count: 40}, {Fraction: 0.05}, {Fraction: 0.25}, {Fraction: 1}}
	for seed := uint64(1); seed <= 5; seed++ {
		d, err := DrawWaves(targets, waves, 0.01, rand.New(rand.NewPCG(seed, 99)))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("seed (%d, 99)", seed)
		if len(d.Control) != 100 {
			t.Errorf("%s: control of %d, want 1%% of 10,000", name, len(d.Control))
		}
		// Cumulative sizes over the 9,900 devices outside the control.
		wantSizes := []int{40, 495 - 40, 2475 - 495, 9900 - 2475}
		seen := map[string]bool{}
		for i, w := range d.Waves {
			if len(w) != wantSizes[i] {
				t.Errorf("%s: wave %d has %d devices, want %d", name, i+1, len(w), wantSizes[i])
			}
			per := map[string]int{}
			for _, id := range w {
				per[stratum[id]]++
				if seen[id] {
					t.Fatalf("%s: %s drawn twice", name, id)
				}
				seen[id] = true
			}
			if i == 0 && len(per) != 4 {
				t.Errorf("%s: the canary covers %d of 4 strata: %v", name, len(per), per)
			}
		}
		for _, id := range d.Control {
			if seen[id] {
				t.Fatalf("%s: %s in a wave and the control", name, id)
			}
			seen[id] = true
		}
		if len(seen) != len(targets) || len(d.Rest) != 0 {
			t.Errorf("%s: %d of %d targets drawn, %d left", name, len(seen), len(targets), len(d.Rest))
		}
		controlPer := map[string]int{}
		for _, id := range d.Control {
			controlPer[stratum[id]]++
		}
		if want := map[string]int{"rev=A": 60, "rev=B": 30, "rev=C": 9, "rev=D": 1}; fmt.Sprint(controlPer) != fmt.Sprint(want) {
			t.Errorf("%s: control per stratum %v, want %v", name, controlPer, want)
		}
	}
}

// TestDrawWavesDeterministic: the same seed gives the same draw whatever
// the order of the targets; another seed gives another draw.
func TestDrawWavesDeterministic(t *testing.T) {
	t.Parallel()
	targets := fleet(map[string]int{"x": 300, "y": 100})
	shuffled := slices.Clone(targets)
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	waves := []WaveSize{{Fraction: 0.1}, {Fraction: 0.6}}
	a, err := DrawWaves(targets, waves, 0.05, rand.New(rand.NewPCG(42, 1)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := DrawWaves(shuffled, waves, 0.05, rand.New(rand.NewPCG(42, 1)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := DrawWaves(targets, waves, 0.05, rand.New(rand.NewPCG(43, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("input order changed the draw")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("seeds 42 and 43 gave the same draw")
	}
	if len(a.Rest) != 380-228 { // 40% of the 380 outside the control are never drawn
		t.Errorf("%d devices left after the last wave, want 152", len(a.Rest))
	}
}

func TestDrawWavesErrors(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	ok := fleet(map[string]int{"x": 10})
	tests := []struct {
		name    string
		targets []Target
		waves   []WaveSize
		control float64
	}{
		{"duplicate", append(slices.Clone(ok), ok[0]), []WaveSize{{Fraction: 1}}, 0},
		{"two strata", append(slices.Clone(ok), Target{ID: ok[0].ID, Stratum: "y"}), []WaveSize{{Fraction: 1}}, 0},
		{"empty id", []Target{{ID: ""}}, []WaveSize{{Fraction: 1}}, 0},
		{"shrinking", ok, []WaveSize{{Count: 5}, {Count: 3}}, 0},
		{"too many", ok, []WaveSize{{Count: 11}}, 0},
		{"bad fraction", ok, []WaveSize{{Fraction: 1.5}}, 0},
		{"empty wave", ok, []WaveSize{{}}, 0},
		{"bad control", ok, []WaveSize{{Fraction: 1}}, 1},
	}
	for _, tt := range tests {
		if _, err := DrawWaves(tt.targets, tt.waves, tt.control, rng); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if _, err := DrawWaves(ok, []WaveSize{{Fraction: 1}}, 0, nil); err == nil {
		t.Error("nil generator: no error")
	}
}
