package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/tufmeta"
)

// fileConfig is the agent's configuration file (YAML). Unknown keys are
// refused. docs/device-integration.md is the reference.
type fileConfig struct {
	Server     serverConfig               `yaml:"server"`
	StateDir   string                     `yaml:"state_dir"`
	Device     deviceConfig               `yaml:"device"`
	Security   securityConfig             `yaml:"security"`
	Boot       bootConfig                 `yaml:"boot"`
	Slots      []slotConfig               `yaml:"slots"`
	Components map[string]componentConfig `yaml:"components"`
	Reboot     []string                   `yaml:"reboot_command"`
	Health     healthConfig               `yaml:"health"`
	Gates      gatesConfig                `yaml:"gates"`
	Sensors    sensorsConfig              `yaml:"sensors"`
	Timing     timingConfig               `yaml:"timing"`
	Log        logConfig                  `yaml:"log"`
}

type serverConfig struct {
	URL            string   `yaml:"url"`
	CABundle       string   `yaml:"ca_bundle"`
	RequestTimeout duration `yaml:"request_timeout"`
	// IdleTimeout ends a download whose connection delivers nothing for
	// this long, so the agent resumes on a fresh connection.
	IdleTimeout duration `yaml:"idle_timeout"`
}

type deviceConfig struct {
	Serial        string            `yaml:"serial"`
	SerialFile    string            `yaml:"serial_file"`
	DeviceType    string            `yaml:"device_type"`
	HWRev         string            `yaml:"hw_rev"`
	Region        string            `yaml:"region"`
	TimeZone      string            `yaml:"time_zone"`
	Version       string            `yaml:"version"`
	VersionFile   string            `yaml:"version_file"`
	KeyFile       string            `yaml:"key_file"`
	Attributes    map[string]string `yaml:"attributes"`
	BootIDFile    string            `yaml:"boot_id_file"`
	UptimeFile    string            `yaml:"uptime_file"`
	MetadataPath  string            `yaml:"metadata_path"`
	CheckpointMiB int               `yaml:"download_checkpoint_mib"`
}

type securityConfig struct {
	// TUFRoot is the root metadata shipped with the device; it turns on
	// signed updates.
	TUFRoot string `yaml:"tuf_root"`
	// AllowUnsigned permits running without TUFRoot (labs only).
	AllowUnsigned bool `yaml:"allow_unsigned"`
}

type bootConfig struct {
	Backend       string   `yaml:"backend"` // uboot, grub, custom, none
	Scheme        string   `yaml:"scheme"`  // rauc-uboot (default) or bootcount
	Attempts      int      `yaml:"attempts"`
	FWEnvConfig   string   `yaml:"fw_env_config"`
	GRUBEnv       string   `yaml:"grubenv"`
	CustomCommand []string `yaml:"custom_command"`
}

type slotConfig struct {
	Name     string `yaml:"name"`
	Device   string `yaml:"device"`
	HashOnly bool   `yaml:"hash_only"`
}

type componentConfig struct {
	Path    string   `yaml:"path"`
	Command []string `yaml:"command"`
}

type healthConfig struct {
	Command      []string `yaml:"command"`
	Timeout      duration `yaml:"timeout"`
	ServerWindow duration `yaml:"server_window"`
}

type gatesConfig struct {
	MinBattery      int            `yaml:"min_battery"`
	MinFreeBytes    int64          `yaml:"min_free_bytes"`
	MinTemperatureC *float64       `yaml:"min_temperature_c"`
	MaxTemperatureC *float64       `yaml:"max_temperature_c"`
	ForbidMetered   bool           `yaml:"forbid_metered"`
	Windows         []windowConfig `yaml:"windows"`
	Command         []string       `yaml:"command"`
}

type windowConfig struct {
	Days     []int    `yaml:"days"`
	Start    string   `yaml:"start"`
	Duration duration `yaml:"duration"`
}

type sensorsConfig struct {
	BatteryCapacityFile string   `yaml:"battery_capacity_file"`
	BatteryStatusFile   string   `yaml:"battery_status_file"`
	BatteryCommand      []string `yaml:"battery_command"`
	TemperatureFile     string   `yaml:"temperature_file"` // millidegrees Celsius, as thermal zones report
	SignalCommand       []string `yaml:"signal_command"`
	MeteredCommand      []string `yaml:"metered_command"`
	FreeStoragePath     string   `yaml:"free_storage_path"`
	CrashDir            string   `yaml:"crash_dir"`
	CrashCommand        []string `yaml:"crash_command"`
	CustomCommand       []string `yaml:"custom_command"`
}

type timingConfig struct {
	PollInterval    duration `yaml:"poll_interval"`
	BackoffMin      duration `yaml:"backoff_min"`
	BackoffMax      duration `yaml:"backoff_max"`
	TelemetrySample duration `yaml:"telemetry_sample"`
	TelemetrySend   duration `yaml:"telemetry_send"`
	LongPoll        *bool    `yaml:"long_poll"`
	Telemetry       *bool    `yaml:"telemetry"`
}

type logConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// duration is a time.Duration written as a Go duration string ("90s").
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as \"90s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a non-negative duration such as \"90s\"", n.Line, s)
	}
	*d = duration(v)
	return nil
}

// parseConfig decodes a configuration file strictly: one document, no
// unknown keys.
func parseConfig(r io.Reader) (*fileConfig, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c fileConfig
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the configuration file is empty")
		}
		return nil, err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("the configuration file holds more than one YAML document")
	}
	return &c, c.check()
}

func (c *fileConfig) check() error {
	var errs []string
	if c.Server.URL == "" {
		errs = append(errs, "server.url is required")
	}
	if c.StateDir == "" {
		c.StateDir = "/var/lib/updraft"
	}
	if c.Device.Serial == "" && c.Device.SerialFile == "" {
		errs = append(errs, "device.serial or device.serial_file is required")
	}
	if c.Device.Version == "" && c.Device.VersionFile == "" {
		errs = append(errs, "device.version or device.version_file is required")
	}
	if c.Security.TUFRoot == "" && !c.Security.AllowUnsigned {
		errs = append(errs, "security.tuf_root is required (or security.allow_unsigned: true for a lab without signed updates)")
	}
	switch c.Boot.Backend {
	case "", "none":
		if len(c.Slots) > 0 {
			errs = append(errs, "slots need a boot.backend (uboot, grub or custom)")
		}
	case "uboot", "grub", "custom":
		if len(c.Slots) != 2 {
			errs = append(errs, "boot.backend "+c.Boot.Backend+" needs exactly two slots")
		}
		if len(c.Reboot) == 0 {
			errs = append(errs, "reboot_command is required with A/B slots")
		}
	default:
		errs = append(errs, fmt.Sprintf("boot.backend %q is not uboot, grub, custom or none", c.Boot.Backend))
	}
	if c.Boot.Backend == "grub" && c.Boot.GRUBEnv == "" {
		errs = append(errs, "boot.grubenv is required for the grub backend")
	}
	if c.Boot.Backend == "custom" && len(c.Boot.CustomCommand) == 0 {
		errs = append(errs, "boot.custom_command is required for the custom backend")
	}
	for _, w := range c.Gates.Windows {
		if err := validWindow(w); err != nil {
			errs = append(errs, "gates.windows: "+err.Error())
		}
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Sprintf("log.format %q is not text or json", c.Log.Format))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (w windowConfig) window() tufmeta.Window {
	tw := tufmeta.Window{Start: w.Start, Duration: tufmeta.Duration(w.Duration)}
	for _, d := range w.Days {
		tw.Days = append(tw.Days, time.Weekday(d))
	}
	return tw
}

func validWindow(w windowConfig) error { return gate.ValidateWindow(w.window()) }
