package health

import (
	"cmp"
	"slices"
	"sort"
	"time"
)

// Health events are overdispersed: one crash-looping device can report
// hundreds of crashes a day and, landing by chance in the canary, look like a
// fleet-wide regression. Counting at most a few events per device per day
// bounds what one device can contribute; the same cap applies to canary and
// control, so a real regression still shows as a higher capped rate. With a
// cap of 1 the metric becomes "device-days with at least one event".

// CappedTotal returns Σ min(count, limit) over per-device-day counts. A limit
// of 0 or less means no cap.
func CappedTotal(deviceDayCounts []int, limit int) int {
	total := 0
	for _, c := range deviceDayCounts {
		if c <= 0 {
			continue
		}
		if limit > 0 && c > limit {
			c = limit
		}
		total += c
	}
	return total
}

// Event is one crash or unexpected reboot reported by a device.
type Event struct {
	Device string
	At     time.Time
}

// CapEvents counts events into the periods [bounds[i], bounds[i+1]) after
// keeping at most limit events per device per day, days being 24-hour blocks
// from bounds[0] (the soak start). The earliest events of a device-day are
// the ones kept, and each is counted in the period it happened in, so the
// result is the same however the periods are cut. Events outside
// [bounds[0], bounds[last]) are ignored. A limit of 0 or less means no cap.
// bounds must be increasing; the result has len(bounds)−1 entries.
func CapEvents(events []Event, limit int, bounds []time.Time) []int {
	if len(bounds) < 2 {
		return nil
	}
	counts := make([]int, len(bounds)-1)
	origin, end := bounds[0], bounds[len(bounds)-1]
	sorted := make([]Event, 0, len(events))
	for _, e := range events {
		if !e.At.Before(origin) && e.At.Before(end) {
			sorted = append(sorted, e)
		}
	}
	slices.SortFunc(sorted, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Device, b.Device), a.At.Compare(b.At))
	})
	const day = 24 * time.Hour
	kept := 0
	for i, e := range sorted {
		if i > 0 && (e.Device != sorted[i-1].Device || e.At.Sub(origin)/day != sorted[i-1].At.Sub(origin)/day) {
			kept = 0
		}
		if limit > 0 && kept >= limit {
			continue
		}
		kept++
		// Period index: the last bound at or before the event.
		k := sort.Search(len(bounds), func(j int) bool { return bounds[j].After(e.At) }) - 1
		counts[k]++
	}
	return counts
}
