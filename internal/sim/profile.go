package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// Profile describes a simulated fleet. The zero value is not useful; start
// from DefaultProfile or LoadProfile.
type Profile struct {
	// Hardware is the mix of device types and revisions, by weight.
	Hardware []Hardware `json:"hardware"`
	// Regions is the mix of regions, by weight, each with the IANA time
	// zones its devices use (chosen uniformly).
	Regions []Region `json:"regions"`
	// InitialVersion is the version every device ships with.
	InitialVersion string `json:"initial_version"`
	// PollInterval is how often an idle device checks in until the server
	// says otherwise.
	PollInterval Duration `json:"poll_interval"`
	// TelemetryInterval is how often sensors are sampled and sent.
	TelemetryInterval Duration `json:"telemetry_interval"`
	// Link is the network between the devices and the server.
	Link Link `json:"link"`
	// PowerCutRate is the probability that power fails once during an
	// update: in the new image's first boot, before it is committed.
	PowerCutRate float64 `json:"power_cut_rate"`
	// CrashesPerDay is a healthy device's mean crash rate.
	CrashesPerDay float64 `json:"crashes_per_day"`
	// Releases says how releases behave; the first entry matching a
	// device's running version and hardware revision applies. A version
	// without an entry behaves like the factory image.
	Releases []Behaviour `json:"releases"`
}

// Hardware is one device type and revision with its share of the fleet.
type Hardware struct {
	DeviceType string  `json:"device_type"`
	HWRev      string  `json:"hw_rev"`
	Weight     float64 `json:"weight"`
}

// Region is one region with its share of the fleet and its time zones.
type Region struct {
	Name      string   `json:"name"`
	Weight    float64  `json:"weight"`
	TimeZones []string `json:"time_zones"`
}

// Link is the quality of the devices' network.
type Link struct {
	// Latency is added to every request (real time: it is network time).
	Latency Duration `json:"latency"`
	// DropRate is the probability that a request's connection drops, half
	// of them before the request reaches the server and half in the middle
	// of the response body.
	DropRate float64 `json:"drop_rate"`
}

// Behaviour is how one release behaves on some hardware revisions.
type Behaviour struct {
	// Version is the release version this applies to.
	Version string `json:"version"`
	// HWRevs limits the entry to these revisions; empty means all.
	HWRevs []string `json:"hw_revs,omitempty"`
	// InstallFailRate is the probability that the post-install self-test
	// (the agent's health check) fails in the new image.
	InstallFailRate float64 `json:"install_fail_rate,omitempty"`
	// BootFailRate is the probability that the new image never comes up:
	// the watchdog resets the board until the bootloader falls back.
	BootFailRate float64 `json:"boot_fail_rate,omitempty"`
	// CrashMultiplier scales CrashesPerDay while the release runs [1].
	CrashMultiplier float64 `json:"crash_multiplier,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("5m").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "90s" or "5m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// DefaultProfile is the documented default fleet (docs/simulator.md):
// three hardware revisions of one gateway in three regions, a clean link,
// no power cuts, and no release behaviour beyond the factory image.
func DefaultProfile() Profile {
	return Profile{
		Hardware: []Hardware{
			{DeviceType: "gw-200", HWRev: "A", Weight: 0.5},
			{DeviceType: "gw-200", HWRev: "B", Weight: 0.3},
			{DeviceType: "gw-200", HWRev: "C", Weight: 0.2},
		},
		Regions: []Region{
			{Name: "eu-west", Weight: 0.5, TimeZones: []string{"Europe/Berlin", "Europe/Paris", "Europe/London"}},
			{Name: "us-east", Weight: 0.3, TimeZones: []string{"America/New_York", "America/Chicago"}},
			{Name: "ap-south", Weight: 0.2, TimeZones: []string{"Asia/Kolkata", "Asia/Singapore"}},
		},
		InitialVersion:    "1.0.0",
		PollInterval:      Duration(5 * time.Minute),
		TelemetryInterval: Duration(time.Hour),
		CrashesPerDay:     0.2,
	}
}

// LoadProfile reads a JSON profile; fields it leaves out keep the
// defaults, unknown fields are refused.
func LoadProfile(name string) (Profile, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return Profile{}, fmt.Errorf("read profile: %w", err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		return Profile{}, fmt.Errorf("profile %s: %w", name, err)
	}
	return p, nil
}

// ParseProfile parses a JSON profile over the defaults and validates it.
func ParseProfile(b []byte) (Profile, error) {
	p := DefaultProfile()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("parse: %w", err)
	}
	if dec.More() {
		return Profile{}, errors.New("parse: trailing data after the profile")
	}
	if err := p.Validate(); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Validate checks weights, rates and time zones.
func (p *Profile) Validate() error {
	if len(p.Hardware) == 0 {
		return errors.New("no hardware in the profile")
	}
	for _, h := range p.Hardware {
		if h.DeviceType == "" || h.HWRev == "" || !(h.Weight > 0) {
			return fmt.Errorf("hardware %q rev %q: needs a device type, a revision and a positive weight", h.DeviceType, h.HWRev)
		}
	}
	if len(p.Regions) == 0 {
		return errors.New("no regions in the profile")
	}
	for _, r := range p.Regions {
		if r.Name == "" || !(r.Weight > 0) || len(r.TimeZones) == 0 {
			return fmt.Errorf("region %q: needs a name, a positive weight and at least one time zone", r.Name)
		}
		for _, tz := range r.TimeZones {
			if _, err := time.LoadLocation(tz); err != nil {
				return fmt.Errorf("region %s: time zone %q: %w", r.Name, tz, err)
			}
		}
	}
	if p.InitialVersion == "" {
		return errors.New("no initial version")
	}
	if p.PollInterval <= 0 || p.TelemetryInterval <= 0 {
		return errors.New("poll and telemetry intervals must be positive")
	}
	rate := func(what string, v float64) error {
		if v < 0 || v > 1 {
			return fmt.Errorf("%s %v: want a probability between 0 and 1", what, v)
		}
		return nil
	}
	if err := errors.Join(rate("drop_rate", p.Link.DropRate), rate("power_cut_rate", p.PowerCutRate)); err != nil {
		return err
	}
	if p.Link.Latency < 0 || p.CrashesPerDay < 0 {
		return errors.New("latency and crashes_per_day must not be negative")
	}
	for _, b := range p.Releases {
		if b.Version == "" {
			return errors.New("release behaviour without a version")
		}
		if err := errors.Join(rate("install_fail_rate", b.InstallFailRate), rate("boot_fail_rate", b.BootFailRate)); err != nil {
			return fmt.Errorf("release %s: %w", b.Version, err)
		}
		if b.CrashMultiplier < 0 {
			return fmt.Errorf("release %s: negative crash multiplier", b.Version)
		}
	}
	return nil
}

// behaviour returns how version behaves on hwRev.
func (p *Profile) behaviour(version, hwRev string) Behaviour {
	for _, b := range p.Releases {
		if b.Version != version {
			continue
		}
		if len(b.HWRevs) == 0 {
			return b
		}
		for _, r := range b.HWRevs {
			if r == hwRev {
				return b
			}
		}
	}
	return Behaviour{Version: version}
}
