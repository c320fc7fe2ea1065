package web

import (
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestThresholdLabelStaysInsideTheChart draws a threshold at the top of
// the plot (the soak's "passes at" line is the largest value until the
// soak ends) and one in the middle: each label must sit inside the SVG,
// above the line when there is room.
func TestThresholdLabelStaysInsideTheChart(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	label := regexp.MustCompile(`<text x="[0-9.]+" y="([0-9.]+)" class="tick threshold-label"`)
	line := regexp.MustCompile(`<line x1="[0-9]+" y1="([0-9.]+)" x2="[0-9]+" y2="[0-9.]+" class="threshold">`)
	for _, tc := range []struct {
		name      string
		threshold float64
		above     bool
	}{
		{"at the top", 6, false},
		{"in the middle", 3, true},
	} {
		th := tc.threshold
		svg := string(lineChart(LineChart{Label: "soak", ThresholdLabel: "passes at", Threshold: &th,
			Points: []Point{{T: t0, V: 0}, {T: t0.Add(time.Hour), V: 1}, {T: t0.Add(2 * time.Hour), V: 6}}}))
		lm, ll := label.FindStringSubmatch(svg), line.FindStringSubmatch(svg)
		if lm == nil || ll == nil {
			t.Fatalf("%s: no threshold line or label in %s", tc.name, svg)
		}
		ly, _ := strconv.ParseFloat(lm[1], 64)
		y, _ := strconv.ParseFloat(ll[1], 64)
		if ly-labelHeight < 0 {
			t.Errorf("%s: the label's baseline at y=%.1f puts its top above the chart", tc.name, ly)
		}
		if got := ly < y; got != tc.above {
			t.Errorf("%s: label at y=%.1f, line at y=%.1f: above = %v, want %v", tc.name, ly, y, got, tc.above)
		}
	}
}
