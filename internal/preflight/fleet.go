package preflight

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Defaults used when the fleet has no history to measure. The output says
// which of them a pre-flight used.
const (
	// DefaultCrashRate and DefaultRebootRate are events per device-hour.
	DefaultCrashRate  = 0.002
	DefaultRebootRate = 0.001
	// DefaultOtherRate is the rate of any other rate metric.
	DefaultOtherRate = 0.001
	// DefaultTimeout is the share of devices assumed never to report
	// when neither history nor last-seen times say otherwise.
	DefaultTimeout = 0.0
	// DefaultDelayMin and DefaultDelayMax bound the time from dispatch to
	// a device's outcome report (uniform) when history has none.
	DefaultDelayMin = 5 * time.Minute
	DefaultDelayMax = 2 * time.Hour
)

// Fleet is the twin of the targeted fleet.
type Fleet struct {
	Strata []Stratum `json:"strata"`
	// ReportDelays are observed times from dispatch to outcome report, a
	// sample the simulator draws from; empty: uniform between
	// DefaultDelayMin and DefaultDelayMax.
	ReportDelays []time.Duration `json:"-"`
	// Sources says where each figure came from, by field:
	// "history", "previous_release", "registry", "telemetry" or "default".
	Sources map[string]string `json:"sources"`
	// Notes explain the sources in plain language, defaults included.
	Notes []string `json:"notes"`
}

// Stratum is one stratum of the twin.
type Stratum struct {
	Key     string `json:"key"`
	Devices int    `json:"devices"`
	// Zones counts the stratum's devices per IANA time zone ("" is UTC).
	Zones map[string]int `json:"time_zones"`
	// Reporting is the share of devices that send telemetry (native
	// agents); the rest are judged on install outcome only.
	Reporting float64 `json:"telemetry_share"`
	// InstallFailure is a good release's install-failure rate among
	// devices that report an outcome.
	InstallFailure float64 `json:"install_failure"`
	// RollbackShare is the share of install failures that end rolled back
	// (they count toward the guardrail).
	RollbackShare float64 `json:"rollback_share"`
	// Timeout is the share of devices handed the release that never
	// report and time out after the campaign's device timeout.
	Timeout float64 `json:"timeout"`
	// Rates are the baseline events per device-hour per rate test name.
	Rates map[string]float64 `json:"rates"`
}

// Validate checks the twin.
func (f Fleet) Validate() error {
	if len(f.Strata) == 0 {
		return fmt.Errorf("fleet: no strata")
	}
	seen := map[string]bool{}
	for _, s := range f.Strata {
		switch {
		case seen[s.Key]:
			return fmt.Errorf("fleet: stratum %q repeated", s.Key)
		case s.Devices < 0:
			return fmt.Errorf("fleet: stratum %q has %d devices", s.Key, s.Devices)
		case !(s.Reporting >= 0 && s.Reporting <= 1):
			return fmt.Errorf("fleet: stratum %q telemetry share %g is not in [0, 1]", s.Key, s.Reporting)
		case !(s.InstallFailure >= 0 && s.InstallFailure < 1):
			return fmt.Errorf("fleet: stratum %q install-failure rate %g is not in [0, 1)", s.Key, s.InstallFailure)
		case !(s.RollbackShare >= 0 && s.RollbackShare <= 1):
			return fmt.Errorf("fleet: stratum %q rollback share %g is not in [0, 1]", s.Key, s.RollbackShare)
		case !(s.Timeout >= 0 && s.Timeout < 1):
			return fmt.Errorf("fleet: stratum %q timeout share %g is not in [0, 1)", s.Key, s.Timeout)
		}
		seen[s.Key] = true
		n := 0
		for z, c := range s.Zones {
			if c < 0 {
				return fmt.Errorf("fleet: stratum %q zone %q has %d devices", s.Key, z, c)
			}
			n += c
		}
		if len(s.Zones) > 0 && n != s.Devices {
			return fmt.Errorf("fleet: stratum %q zones hold %d devices, not %d", s.Key, n, s.Devices)
		}
		for m, r := range s.Rates {
			if !(r >= 0) || math.IsInf(r, 0) {
				return fmt.Errorf("fleet: stratum %q rate %s %g is not a non-negative number", s.Key, m, r)
			}
		}
	}
	for _, d := range f.ReportDelays {
		if d < 0 {
			return fmt.Errorf("fleet: negative report delay %v", d)
		}
	}
	return nil
}

// Devices is the number of devices in the twin.
func (f Fleet) Devices() int {
	n := 0
	for _, s := range f.Strata {
		n += s.Devices
	}
	return n
}

// smallest returns the index of the smallest stratum with devices (ties:
// the first key in order).
func (f Fleet) smallest() int {
	best := -1
	for i, s := range f.Strata {
		if s.Devices == 0 {
			continue
		}
		if best < 0 || s.Devices < f.Strata[best].Devices || s.Devices == f.Strata[best].Devices && s.Key < f.Strata[best].Key {
			best = i
		}
	}
	return best
}

func (f Fleet) sorted() Fleet {
	out := f
	out.Strata = append([]Stratum(nil), f.Strata...)
	sort.Slice(out.Strata, func(i, j int) bool { return out.Strata[i].Key < out.Strata[j].Key })
	return out
}

func zoneNames(z map[string]int) []string {
	names := make([]string, 0, len(z))
	for k := range z {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
