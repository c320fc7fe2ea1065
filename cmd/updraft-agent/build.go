package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/verifier"
)

// build turns the configuration file into the agent's Config: the real
// filesystem and clock, an HTTP client trusting the CA bundle, the
// bootloader backend, commands run with os/exec, and file or command
// sensors.
func build(fc *fileConfig, log *slog.Logger) (agent.Config, error) {
	fsys := devfs.OS{}
	run := execRunner{}
	id := identity.Identity{
		Serial:     fc.Device.Serial,
		DeviceType: fc.Device.DeviceType,
		HWRev:      fc.Device.HWRev,
		Region:     fc.Device.Region,
		TimeZone:   fc.Device.TimeZone,
		Attributes: fc.Device.Attributes,
	}
	if id.Serial == "" {
		s, err := firstLine(fsys, fc.Device.SerialFile)
		if err != nil {
			return agent.Config{}, fmt.Errorf("device.serial_file: %w", err)
		}
		id.Serial = s
	}
	ver := fc.Device.Version
	if ver == "" {
		v, err := readVersion(fsys, fc.Device.VersionFile)
		if err != nil {
			return agent.Config{}, fmt.Errorf("device.version_file: %w", err)
		}
		ver = v
	}
	httpClient, err := newHTTPClient(fc.Server)
	if err != nil {
		return agent.Config{}, err
	}
	cfg := agent.Config{
		FS:           fsys,
		Dir:          fc.StateDir,
		Clock:        clock.Real{},
		HTTP:         httpClient,
		ServerURL:    fc.Server.URL,
		Logger:       log,
		Identity:     id,
		Version:      ver,
		KeyFile:      fc.Device.KeyFile,
		Commands:     run,
		MetadataPath: fc.Device.MetadataPath,
		Health: agent.Health{
			Command:      fc.Health.Command,
			Timeout:      time.Duration(fc.Health.Timeout),
			ServerWindow: time.Duration(fc.Health.ServerWindow),
		},
		Gates: gate.Policy{
			MinBattery:      fc.Gates.MinBattery,
			MinFreeBytes:    fc.Gates.MinFreeBytes,
			MinTemperatureC: fc.Gates.MinTemperatureC,
			MaxTemperatureC: fc.Gates.MaxTemperatureC,
			ForbidMetered:   fc.Gates.ForbidMetered,
		},
		GateCommand: fc.Gates.Command,
		Timing: agent.Timing{
			PollInterval:     time.Duration(fc.Timing.PollInterval),
			BackoffMin:       time.Duration(fc.Timing.BackoffMin),
			BackoffMax:       time.Duration(fc.Timing.BackoffMax),
			TelemetrySample:  time.Duration(fc.Timing.TelemetrySample),
			TelemetrySend:    time.Duration(fc.Timing.TelemetrySend),
			RequestTimeout:   time.Duration(fc.Server.RequestTimeout),
			DisableLongPoll:  fc.Timing.LongPoll != nil && !*fc.Timing.LongPoll,
			DisableTelemetry: fc.Timing.Telemetry != nil && !*fc.Timing.Telemetry,
		},
		Sensors: buildSensors(fsys, run, fc.Sensors),
	}
	if fc.Device.CheckpointMiB > 0 {
		cfg.Download.CheckpointBytes = int64(fc.Device.CheckpointMiB) << 20
	}
	for _, w := range fc.Gates.Windows {
		cfg.Gates.Windows = append(cfg.Gates.Windows, w.window())
	}
	if len(fc.Components) > 0 {
		cfg.Components = map[string]agent.Component{}
		for name, c := range fc.Components {
			cfg.Components[name] = agent.Component{Path: c.Path, Command: c.Command}
		}
	}
	bootIDFile := fc.Device.BootIDFile
	if bootIDFile == "" {
		bootIDFile = "/proc/sys/kernel/random/boot_id"
	}
	cfg.BootID = func(context.Context) (string, error) { return firstLine(fsys, bootIDFile) }
	if fc.Device.UptimeFile != "" || fileExists("/proc/uptime") {
		up := fc.Device.UptimeFile
		if up == "" {
			up = "/proc/uptime"
		}
		cfg.Sensors.Uptime = func(context.Context) (time.Duration, error) { return readUptime(fsys, up) }
	}
	if cfg.Boot, err = buildBoot(fc.Boot, fc.Slots, log); err != nil {
		return agent.Config{}, err
	}
	for _, s := range fc.Slots {
		cfg.Slots = append(cfg.Slots, agent.Slot{Name: s.Name, Device: s.Device, HashOnly: s.HashOnly})
	}
	if len(fc.Reboot) > 0 {
		argv := fc.Reboot
		cfg.Reboot = func(ctx context.Context) error {
			_, err := run.Run(ctx, argv)
			return err
		}
	}
	if fc.Security.TUFRoot != "" {
		root, err := devfs.ReadFile(fsys, fc.Security.TUFRoot, 1<<20)
		if err != nil {
			return agent.Config{}, fmt.Errorf("security.tuf_root: %w", err)
		}
		dir := path.Join(fc.StateDir, "tuf")
		cfg.NewVerifier = func(_ context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error) {
			return verifier.New(verifier.Config{
				FS: fsys, Dir: dir, Clock: clock.Real{}, Fetcher: fetch,
				DeviceID: deviceID, DeviceType: id.DeviceType, HWRev: id.HWRev,
				TrustedRoot: root, Logger: log,
			})
		}
	}
	return cfg, nil
}

func buildBoot(c bootConfig, slots []slotConfig, log *slog.Logger) (boot.Backend, error) {
	var names []string
	for _, s := range slots {
		names = append(names, s.Name)
	}
	switch c.Backend {
	case "uboot":
		return boot.NewUBoot(boot.UBootConfig{Config: c.FWEnvConfig, Scheme: boot.Scheme(c.Scheme), Slots: names, Attempts: c.Attempts, Logger: log})
	case "grub":
		return boot.NewGRUB(boot.GRUBConfig{Env: c.GRUBEnv, Slots: names, Logger: log})
	case "custom":
		return boot.NewCustom(boot.CustomConfig{Command: c.CustomCommand, Slots: names, Logger: log})
	}
	return nil, nil
}

// newHTTPClient trusts the CA bundle (or the system's roots) and cuts off
// connections that stay silent for the idle timeout, so a stalled download
// resumes on a new connection.
func newHTTPClient(c serverConfig) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.CABundle != "" {
		pem, err := os.ReadFile(c.CABundle)
		if err != nil {
			return nil, fmt.Errorf("server.ca_bundle: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server.ca_bundle %s holds no PEM certificate", c.CABundle)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	idle := time.Duration(c.IdleTimeout)
	if idle <= 0 {
		idle = 2 * time.Minute
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &idleConn{Conn: conn, idle: idle}, nil
	}
	tr.ResponseHeaderTimeout = 0 // long-polls hold the answer; the agent bounds requests with contexts
	return &http.Client{Transport: tr}, nil
}

// idleConn fails a read that waits longer than idle.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	// Network deadlines stay on real time (see internal/clock).
	if err := c.Conn.SetReadDeadline(clock.Real{}.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func firstLine(fsys devfs.FS, name string) (string, error) {
	if name == "" {
		return "", errors.New("no file named")
	}
	b, err := devfs.ReadFile(fsys, name, 64<<10)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return line, nil
}

// readVersion reads a version file: either one line holding the version,
// or an os-release style file with VERSION_ID=.
func readVersion(fsys devfs.FS, name string) (string, error) {
	b, err := devfs.ReadFile(fsys, name, 64<<10)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	first := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "VERSION_ID="); ok {
			return strings.Trim(v, `"'`), nil
		}
		if first == "" && line != "" && !strings.Contains(line, "=") {
			first = line
		}
	}
	if first == "" {
		return "", fmt.Errorf("%s holds no version", name)
	}
	return first, nil
}

func readUptime(fsys devfs.FS, name string) (time.Duration, error) {
	s, err := firstLine(fsys, name)
	if err != nil {
		return 0, err
	}
	f, _, _ := strings.Cut(s, " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return time.Duration(v * float64(time.Second)), nil
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}
