package health

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Target is a device a campaign may update, with the key of its stratum.
type Target struct {
	ID      string
	Stratum string
}

// WaveSize is the cumulative size of the updated population after a wave:
// Count devices, or, when Count is 0, Fraction (in (0, 1]) of the targets
// outside the control group. Waves 1 %, 5 %, 25 %, 100 % are fractions
// 0.01, 0.05, 0.25 and 1.
type WaveSize struct {
	Count    int
	Fraction float64
}

// Draw is a random assignment of targets to waves and a control group.
type Draw struct {
	// Waves holds the devices each wave adds, in wave order.
	Waves [][]string
	// Control is the hold-back group, updated last; until then it is the
	// concurrent comparison for the rate tests.
	Control []string
	// Rest holds targets beyond the last wave's cumulative size.
	Rest []string
}

// DrawWaves assigns targets at random, within strata, to a control group
// of about controlFraction of the targets and to waves of the given
// cumulative sizes.
//
// Every draw is stratified: each wave and the control group take from each
// stratum in proportion to what the stratum has left (largest-remainder
// rounding, ties to the larger stratum, then the key), so every stratum is
// represented; a stratum whose share would round to zero still gets one
// device whenever the wave has at least as many devices as there are
// strata with devices left. The result depends only on the set of targets
// and the generator's state: targets are sorted by stratum and ID before
// shuffling, so their input order does not matter.
func DrawWaves(targets []Target, waves []WaveSize, controlFraction float64, rng *rand.Rand) (Draw, error) {
	if rng == nil {
		return Draw{}, errors.New("draw waves: nil random source")
	}
	if !(controlFraction >= 0 && controlFraction < 1) {
		return Draw{}, fmt.Errorf("draw waves: control fraction %g is not in [0, 1)", controlFraction)
	}
	strata, err := shuffleStrata(targets, rng)
	if err != nil {
		return Draw{}, err
	}
	var d Draw
	if controlFraction > 0 {
		// The small slack keeps 0.01 × 10,000 at 100 despite binary
		// rounding.
		n := int(math.Ceil(controlFraction*float64(len(targets)) - 1e-9))
		d.Control = takeStratified(strata, n)
	}
	eligible := len(targets) - len(d.Control)
	done := 0
	for i, w := range waves {
		cum, err := w.resolve(eligible)
		if err != nil {
			return Draw{}, fmt.Errorf("draw waves: wave %d: %w", i+1, err)
		}
		if cum < done {
			return Draw{}, fmt.Errorf("draw waves: wave %d: cumulative size %d is below the previous wave's %d", i+1, cum, done)
		}
		d.Waves = append(d.Waves, takeStratified(strata, cum-done))
		done = cum
	}
	for _, s := range strata {
		d.Rest = append(d.Rest, s.ids...)
	}
	return d, nil
}

func (w WaveSize) resolve(eligible int) (int, error) {
	switch {
	case w.Count < 0:
		return 0, fmt.Errorf("count %d is negative", w.Count)
	case w.Count > 0:
		if w.Count > eligible {
			return 0, fmt.Errorf("count %d exceeds the %d targets outside the control group", w.Count, eligible)
		}
		return w.Count, nil
	case !(w.Fraction > 0 && w.Fraction <= 1):
		return 0, fmt.Errorf("fraction %g is not in (0, 1]", w.Fraction)
	}
	return int(math.Ceil(w.Fraction*float64(eligible) - 1e-9)), nil
}

// stratumPool is a stratum's not-yet-drawn devices in random order.
type stratumPool struct {
	key string
	ids []string
}

func shuffleStrata(targets []Target, rng *rand.Rand) ([]*stratumPool, error) {
	sorted := slices.Clone(targets)
	slices.SortFunc(sorted, func(a, b Target) int {
		return cmp.Or(cmp.Compare(a.Stratum, b.Stratum), cmp.Compare(a.ID, b.ID))
	})
	var strata []*stratumPool
	seen := make(map[string]string, len(sorted))
	for _, t := range sorted {
		if t.ID == "" {
			return nil, errors.New("draw waves: target with an empty ID")
		}
		if other, ok := seen[t.ID]; ok {
			if other == t.Stratum {
				return nil, fmt.Errorf("draw waves: target %q listed twice", t.ID)
			}
			return nil, fmt.Errorf("draw waves: target %q is in strata %q and %q", t.ID, other, t.Stratum)
		}
		seen[t.ID] = t.Stratum
		if len(strata) == 0 || strata[len(strata)-1].key != t.Stratum {
			strata = append(strata, &stratumPool{key: t.Stratum})
		}
		s := strata[len(strata)-1]
		s.ids = append(s.ids, t.ID)
	}
	for _, s := range strata {
		rng.Shuffle(len(s.ids), func(i, j int) { s.ids[i], s.ids[j] = s.ids[j], s.ids[i] })
	}
	return strata, nil
}

// takeStratified removes n devices from the pools, apportioned to the
// strata by Allocate over their remaining sizes.
func takeStratified(strata []*stratumPool, n int) []string {
	sizes := make([]int, len(strata))
	for i, s := range strata {
		sizes[i] = len(s.ids)
	}
	alloc := Allocate(n, sizes)
	var out []string
	for i, s := range strata {
		out = append(out, s.ids[:alloc[i]]...)
		s.ids = s.ids[alloc[i]:]
	}
	return out
}

// Allocate splits n devices over strata of the given sizes in proportion to
// size. Each stratum gets the floor of its quota n·size/total, and the
// devices left over go to the largest fractional remainders (ties to the
// larger stratum, then the earlier one). When n is at least the number of
// non-empty strata, any non-empty stratum left with none takes one from
// the stratum furthest above its quota, so every stratum is represented.
// n is capped at the total.
func Allocate(n int, sizes []int) []int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	n = min(max(n, 0), total)
	alloc := make([]int, len(sizes))
	if n == 0 {
		return alloc
	}
	quota := make([]float64, len(sizes))
	given := 0
	for i, s := range sizes {
		quota[i] = float64(n) * float64(s) / float64(total)
		alloc[i] = int(math.Floor(quota[i]))
		given += alloc[i]
	}
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := quota[a]-math.Floor(quota[a]), quota[b]-math.Floor(quota[b])
		return cmp.Or(cmp.Compare(rb, ra), cmp.Compare(sizes[b], sizes[a]))
	})
	for _, i := range order {
		if given == n {
			break
		}
		if alloc[i] < sizes[i] {
			alloc[i]++
			given++
		}
	}
	nonEmpty := 0
	for _, s := range sizes {
		if s > 0 {
			nonEmpty++
		}
	}
	if n < nonEmpty {
		return alloc
	}
	for i, s := range sizes {
		if s == 0 || alloc[i] > 0 {
			continue
		}
		// Take from the stratum most above its quota that can spare one.
		donor := -1
		for j := range sizes {
			if alloc[j] < 2 {
				continue
			}
			if donor < 0 || float64(alloc[j])-quota[j] > float64(alloc[donor])-quota[donor] {
				donor = j
			}
		}
		if donor < 0 {
			break
		}
		alloc[donor]--
		alloc[i]++
	}
	return alloc
}
