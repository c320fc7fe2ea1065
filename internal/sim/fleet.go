package sim

import (
	"container/heap"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/verifier"
)

// Config configures a Fleet.
type Config struct {
	// ServerURL is the Updraft server the devices talk to.
	ServerURL string
	// Devices is the number of simulated devices.
	Devices int
	// Profile is the fleet profile; the zero value means DefaultProfile.
	Profile Profile
	// Clock is the devices' time: a fake clock in tests, an accelerated
	// one in the demo, the real one against a production server.
	Clock clock.Clock
	// Seed makes the fleet reproducible.
	Seed uint64
	// SerialPrefix starts every serial ["SIM-"].
	SerialPrefix string
	// Workers bounds the devices stepped at once [16 × GOMAXPROCS].
	Workers int
	// Transport carries the devices' requests (the link's latency and drops
	// are added on top); nil: shared keep-alive transports, one per source
	// address (see SourceAddrs).
	Transport http.RoundTripper
	// SourceAddrs is how many loopback source addresses (127.0.1.x) the
	// devices are spread over when the server is on loopback, so that the
	// server's per-address enrollment limit sees many devices rather than
	// one [250 for a loopback server, else 1: the real address].
	SourceAddrs int
	// Preauthorize, when set, registers each device's public key with the
	// server before the device first enrolls, so it is accepted at once.
	Preauthorize func(ctx context.Context, pub ed25519.PublicKey, serial string) error
	// NewVerifier, when set, runs the agents in signed mode (see
	// agent.Config.NewVerifier); nil: unsigned mode.
	NewVerifier func(ctx context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error)
	// ServerWindow is how long a device's new image may take to reach the
	// server before the agent rolls it back [the agent's 10m]. On an
	// accelerated clock the window passes in a fraction of a second of
	// real time, which a busy machine's scheduling can outlast; the demo
	// stretches it so that only a real fault rolls a device back.
	ServerWindow time.Duration
	// TrustedRoot, when set and NewVerifier is not, runs the agents in
	// signed mode with this TUF root shipped in their image; each device
	// keeps its verifier's metadata and security floor on its own disk.
	TrustedRoot []byte
	// Logger receives the fleet's and (at debug level) the agents' logs.
	Logger *slog.Logger
}

// Fleet is a set of simulated devices and the scheduler that steps them.
type Fleet struct {
	cfg     Config
	link    *linkTransport
	devices []*device
	log     *slog.Logger

	mu      sync.Mutex // guards queue and the stats snapshot
	queue   wakeQueue
	started bool
	snap    []agent.Status
	dstats  []deviceStats
}

// New builds the fleet's devices (no I/O against the server yet).
func New(cfg Config) (*Fleet, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("sim: need at least one device")
	}
	if cfg.Clock == nil {
		return nil, errors.New("sim: no clock")
	}
	if len(cfg.Profile.Hardware) == 0 {
		cfg.Profile = DefaultProfile()
	}
	if err := cfg.Profile.Validate(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if cfg.SerialPrefix == "" {
		cfg.SerialPrefix = "SIM-"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16 * runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg, log: cfg.Logger}
	clients, err := f.clients()
	if err != nil {
		return nil, err
	}
	agentLog := slog.New(cfg.Logger.Handler().WithAttrs(nil))
	if !cfg.Logger.Enabled(context.Background(), slog.LevelDebug) {
		agentLog = slog.New(slog.DiscardHandler)
	}
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0xf1ee7))
	p := &f.cfg.Profile
	for i := range cfg.Devices {
		hw := pick(rnd, p.Hardware, func(h Hardware) float64 { return h.Weight })
		reg := pick(rnd, p.Regions, func(r Region) float64 { return r.Weight })
		id := identity.Identity{
			Serial:     fmt.Sprintf("%s%06d", cfg.SerialPrefix, i),
			DeviceType: hw.DeviceType, HWRev: hw.HWRev, Region: reg.Name,
			TimeZone: reg.TimeZones[rnd.IntN(len(reg.TimeZones))],
		}
		var seed [ed25519.SeedSize]byte
		for j := range seed {
			seed[j] = byte(rnd.Uint32())
		}
		d, err := newDevice(id, ed25519.NewKeyFromSeed(seed[:]), p, rnd.Uint64(), deviceOptions{
			clock: cfg.Clock, http: clients[i%len(clients)], serverURL: cfg.ServerURL, newVerifier: cfg.NewVerifier,
			trustedRoot: cfg.TrustedRoot, serverWindow: cfg.ServerWindow, logger: agentLog.With("serial", id.Serial),
		})
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		f.devices = append(f.devices, d)
	}
	return f, nil
}

// clients builds the devices' HTTP clients: all share the link (latency,
// drops) and keep-alive connections; on a loopback server each client
// dials from its own 127.0.1.x address.
func (f *Fleet) clients() ([]*http.Client, error) {
	u, err := url.Parse(f.cfg.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("sim: server URL: %w", err)
	}
	var base http.RoundTripper = f.cfg.Transport
	n := f.cfg.SourceAddrs
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() == "localhost" {
		ip = net.IPv4(127, 0, 0, 1)
	}
	loopback := ip != nil && ip.IsLoopback() && ip.To4() != nil
	if n <= 0 {
		n = 1
		if loopback && base == nil {
			n = 250
		}
	}
	if base != nil || !loopback {
		n = 1
	}
	f.link = newLinkTransport(f.cfg.Profile.Link, f.cfg.Seed)
	var out []*http.Client
	for i := range n {
		rt := base
		if rt == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConns = f.cfg.Workers * 2
			t.MaxIdleConnsPerHost = f.cfg.Workers * 2
			if loopback && n > 1 {
				d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
					LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i))}}
				t.DialContext = d.DialContext
			}
			rt = t
		}
		out = append(out, &http.Client{Transport: f.link.via(rt)})
	}
	return out, nil
}

func pick[T any](r *rand.Rand, xs []T, weight func(T) float64) T {
	total := 0.0
	for _, x := range xs {
		total += weight(x)
	}
	v := r.Float64() * total
	for _, x := range xs {
		if v -= weight(x); v < 0 {
			return x
		}
	}
	return xs[len(xs)-1]
}

// Preauthorize registers every device's key through cfg.Preauthorize,
// Workers at a time.
func (f *Fleet) Preauthorize(ctx context.Context) error {
	if f.cfg.Preauthorize == nil {
		return nil
	}
	sem := make(chan struct{}, f.cfg.Workers)
	errs := make([]error, len(f.devices))
	var wg sync.WaitGroup
	for i, d := range f.devices {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f.cfg.Preauthorize(ctx, d.key.Public().(ed25519.PublicKey), d.id.Serial); err != nil {
				errs[i] = fmt.Errorf("preauthorize %s: %w", d.id.Serial, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StepDue steps every device whose wake-up time has come (all of them on
// the first call), Workers at a time, and returns the earliest next
// wake-up. Tests on a fake clock call it in a loop and set the clock to
// the time it returns.
func (f *Fleet) StepDue(ctx context.Context) time.Time {
	now := f.cfg.Clock.Now()
	f.mu.Lock()
	if !f.started {
		f.started = true
		for i := range f.devices {
			heap.Push(&f.queue, wake{at: now, dev: i})
		}
	}
	var due []int
	for len(f.queue) > 0 && !f.queue[0].at.After(now) {
		due = append(due, heap.Pop(&f.queue).(wake).dev)
	}
	f.mu.Unlock()

	next := make([]time.Time, len(due))
	sem := make(chan struct{}, f.cfg.Workers)
	var wg sync.WaitGroup
	for k, i := range due {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			wait := f.devices[i].step(ctx)
			next[k] = f.cfg.Clock.Now().Add(max(wait, time.Second))
			f.mu.Lock()
			f.refreshLocked(i)
			f.mu.Unlock()
		}()
	}
	wg.Wait()

	f.mu.Lock()
	defer f.mu.Unlock()
	for k, i := range due {
		heap.Push(&f.queue, wake{at: next[k], dev: i})
	}
	return f.queue[0].at
}

// Run steps the fleet until ctx ends, sleeping on the fleet's clock
// between rounds. A device's state lives on its in-memory disk, so a
// stopped fleet is gone; Run always returns nil once ctx ends.
func (f *Fleet) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		next := f.StepDue(ctx)
		if d := next.Sub(f.cfg.Clock.Now()); d > 0 {
			clock.Sleep(f.cfg.Clock, d, ctx.Done())
		}
	}
	return nil
}

// refreshLocked updates the status snapshot of device i, just stepped.
func (f *Fleet) refreshLocked(i int) {
	if f.snap == nil {
		f.snap = make([]agent.Status, len(f.devices))
		f.dstats = make([]deviceStats, len(f.devices))
	}
	f.snap[i] = f.devices[i].a.Status()
	f.dstats[i] = f.devices[i].stats
}

// Stats summarises the fleet.
type Stats struct {
	Devices  int
	Enrolled int
	// Phases and Versions count devices by agent phase and running version.
	Phases   map[agent.Phase]int
	Versions map[string]int
	// Results counts the outcomes of the devices' last finished assignments.
	Results map[string]int
	// Outbox is the number of reports not yet acknowledged by the server.
	Outbox int
	// PowerCuts, WatchdogResets and Reboots happened on devices; Restarts
	// are agent processes that stopped with an error and were restarted.
	PowerCuts, WatchdogResets, Reboots, Restarts int
	// DroppedConnections were dropped by the simulated link.
	DroppedConnections int64
	// LastError is one recent agent error, for diagnosis.
	LastError string
}

// Stats returns a summary as of the devices' last steps.
func (f *Fleet) Stats() Stats {
	s := Stats{Devices: len(f.devices), Phases: map[agent.Phase]int{}, Versions: map[string]int{}, Results: map[string]int{},
		DroppedConnections: f.link.dropped.Load()}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, st := range f.snap {
		if st.DeviceID != "" {
			s.Enrolled++
		}
		if st.Phase != "" {
			s.Phases[st.Phase]++
		}
		if st.Version != "" {
			s.Versions[st.Version]++
		}
		if st.Result != nil {
			s.Results[st.Result.State]++
		}
		s.Outbox += st.Outbox
		ds := f.dstats[i]
		s.PowerCuts += ds.powerCuts
		s.WatchdogResets += ds.watchdogResets
		s.Reboots += ds.reboots
		s.Restarts += ds.restarts
		if ds.lastErr != nil {
			s.LastError = ds.lastErr.Error()
		}
	}
	return s
}

// Device is one simulated device as seen from outside.
type Device struct {
	Identity identity.Identity
	Status   agent.Status
}

// Devices lists the devices with their agents' status as of their last
// step.
func (f *Fleet) Devices() []Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Device, len(f.devices))
	for i, d := range f.devices {
		out[i].Identity = d.id
		if f.snap != nil {
			out[i].Status = f.snap[i]
		}
	}
	return out
}

// Summary writes one line of progress.
func (s Stats) Summary(w io.Writer) {
	vs := make([]string, 0, len(s.Versions))
	for v := range s.Versions {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	fmt.Fprintf(w, "devices %d enrolled %d |", s.Devices, s.Enrolled)
	for _, v := range vs {
		fmt.Fprintf(w, " %s:%d", v, s.Versions[v])
	}
	busy := 0
	for p, n := range s.Phases {
		if p != agent.PhaseIdle {
			busy += n
		}
	}
	fmt.Fprintf(w, " | updating %d | cuts %d watchdog %d drops %d\n", busy, s.PowerCuts, s.WatchdogResets, s.DroppedConnections)
}

type wake struct {
	at  time.Time
	dev int
}

// wakeQueue is a min-heap of wake-up times.
type wakeQueue []wake

func (q wakeQueue) Len() int           { return len(q) }
func (q wakeQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q wakeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *wakeQueue) Push(x any)        { *q = append(*q, x.(wake)) }
func (q *wakeQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	*q = old[:len(old)-1]
	return w
}
