package health

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Number formatting for explanations: plain, fixed rules so that the same
// evidence always reads the same.

// count formats an integer with thousands separators: 12408 → "12,408".
func count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// pct formats a rate in [0, 1] as a percentage with enough digits to tell
// small rates apart: 0.0117 → "1.2%", 0.0005 → "0.050%".
func pct(r float64) string {
	p := 100 * r
	switch {
	case p == 0:
		return "0%"
	case p >= 1:
		return fmt.Sprintf("%.1f%%", p)
	case p >= 0.1:
		return fmt.Sprintf("%.2f%%", p)
	default:
		return fmt.Sprintf("%.3f%%", p)
	}
}

// magnitude formats a positive statistic such as an e-value or a threshold:
// two decimals below 10, grouped integers below a million, else scientific.
func magnitude(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "∞"
	case x < 10:
		return fmt.Sprintf("%.2f", x)
	case x < 1e6:
		return count(int(math.Round(x)))
	default:
		return fmt.Sprintf("%.2g", x)
	}
}

// hours formats a duration or a number of device-hours.
func hours(h float64) string {
	if h >= 100 {
		return count(int(math.Round(h))) + " h"
	}
	s := strconv.FormatFloat(h, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + " h"
}

func durationHours(d time.Duration) string { return hours(d.Hours()) }

// factor formats a regression factor with up to two decimals: 2.134 →
// "2.13×", 1.25 → "1.25×", 2 → "2×"; from 10 up, whole numbers.
func factor(f float64) string {
	if math.IsInf(f, 1) {
		return "no"
	}
	if f >= 10 {
		return fmt.Sprintf("%.0f×", f)
	}
	s := strings.TrimRight(fmt.Sprintf("%.2f", f), "0")
	return strings.TrimSuffix(s, ".") + "×"
}

// perThousandHours formats an event rate per 1,000 device-hours.
func perThousandHours(events int, hrs float64) string {
	if hrs <= 0 {
		return "no exposure"
	}
	r := 1000 * float64(events) / hrs
	if r >= 10 {
		return fmt.Sprintf("%.1f per 1,000 device-hours", r)
	}
	return fmt.Sprintf("%.2f per 1,000 device-hours", r)
}

// signed formats a log likelihood ratio.
func signed(x float64) string { return fmt.Sprintf("%.2f", x) }

// sentence capitalises the first letter of s, for text that starts with a
// stratum label.
func sentence(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
