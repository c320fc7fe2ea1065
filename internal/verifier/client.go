package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Config configures a Client.
type Config struct {
	FS devfs.FS
	// Dir holds the trusted metadata and the verifier's state; nothing
	// else may write there.
	Dir     string
	Clock   clock.Clock
	Fetcher Fetcher
	// The device's identity and hardware, as the director and the signed
	// targets name them.
	DeviceID, DeviceType, HWRev string
	// TrustedRoot is the root metadata shipped with the device. It is used
	// when Dir holds no root of a higher version.
	TrustedRoot []byte
	// Limits caps every metadata file; zero fields take tufmeta defaults.
	Limits tufmeta.Limits
	// MaxRootRotations bounds the root versions followed per refresh
	// (default 64); MaxDelegations bounds the delegated roles loaded
	// (default 32).
	MaxRootRotations int
	MaxDelegations   int
	// ClockFloorInterval is how far the clock may move past the persisted
	// clock floor before the floor is written again (default 10 minutes);
	// it bounds flash writes. After a power cut the floor may lag the last
	// clock reading by at most this much.
	ClockFloorInterval time.Duration
	Logger             *slog.Logger
}

// Client is the device's verifier. It is safe for concurrent use; calls
// are serialized.
type Client struct {
	cfg Config

	mu       sync.Mutex
	root     []byte // latest trusted root
	rootMeta *metadata.Metadata[metadata.RootType]
	// trusted is a complete, verified set (timestamp, snapshot, targets and
	// the delegated roles covering the device type), or nil.
	trusted *trustedmetadata.TrustedMetadata
	// lastRefusal explains why trusted is nil after a refused refresh.
	lastRefusal    error
	st             state
	persistedFloor time.Time
}

var _ Verifier = (*Client)(nil)

// state is what the verifier persists besides metadata, in one file
// written atomically.
type state struct {
	V int `json:"v"`
	// ClockFloor is the latest clock reading seen: the verifier never
	// judges expiry at an earlier time.
	ClockFloor time.Time `json:"clock_floor"`
	// DirectorCounter and DirectorDocument identify the last accepted
	// director document.
	DirectorCounter  int64  `json:"director_counter"`
	DirectorDocument string `json:"director_document,omitempty"`
	// SecurityFloor only rises, on a verified finalize.
	SecurityFloor int64 `json:"security_floor"`
}

const stateVersion = 1

// File names under Dir.
const (
	fileState     = "state.json"
	fileRoot      = "root.json"
	fileTimestamp = "timestamp.json"
	fileSnapshot  = "snapshot.json"
	fileTargets   = "targets.json"
	dirRoles      = "roles"
)

// New opens the verifier's state in cfg.Dir, creating it on first use
// with cfg.TrustedRoot, and loads the trusted metadata persisted there.
// A damaged state file is an error, never a silent reset: resetting would
// lower the security floor.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.FS == nil || cfg.Dir == "" || cfg.Clock == nil || cfg.Fetcher == nil:
		return nil, errors.New("verifier: FS, Dir, Clock and Fetcher are required")
	case cfg.DeviceID == "" || cfg.DeviceType == "" || cfg.HWRev == "":
		return nil, errors.New("verifier: DeviceID, DeviceType and HWRev are required")
	case len(cfg.TrustedRoot) == 0:
		return nil, errors.New("verifier: TrustedRoot is required")
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.MaxRootRotations <= 0 {
		cfg.MaxRootRotations = 64
	}
	if cfg.MaxDelegations <= 0 {
		cfg.MaxDelegations = 32
	}
	if cfg.ClockFloorInterval <= 0 {
		cfg.ClockFloorInterval = 10 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, st: state{V: stateVersion}}
	if err := cfg.FS.MkdirAll(path.Join(cfg.Dir, dirRoles), 0o700); err != nil {
		return nil, fmt.Errorf("verifier: %w", err)
	}
	if err := c.loadState(); err != nil {
		return nil, err
	}
	if err := c.loadRoot(); err != nil {
		return nil, err
	}
	now := c.now()
	if tm, err := c.update(context.Background(), now, false); err == nil {
		c.trusted = tm
	}
	return c, nil
}

func (c *Client) file(name string) string { return path.Join(c.cfg.Dir, name) }

func (c *Client) loadState() error {
	b, err := devfs.ReadFile(c.cfg.FS, c.file(fileState), 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("verifier: read state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.V != stateVersion || st.SecurityFloor < 0 || st.DirectorCounter < 0 {
		return fmt.Errorf("verifier: state file %s is damaged; refusing to start rather than lose the security floor", c.file(fileState))
	}
	c.st = st
	c.persistedFloor = st.ClockFloor
	return nil
}

func (c *Client) saveState() error {
	b, err := json.Marshal(c.st)
	if err != nil {
		return fmt.Errorf("verifier: encode state: %w", err)
	}
	if err := devfs.WriteFileAtomic(c.cfg.FS, c.file(fileState), b, 0o600); err != nil {
		return fmt.Errorf("verifier: save state: %w", err)
	}
	c.persistedFloor = c.st.ClockFloor
	return nil
}

// loadRoot picks the newer of the persisted root and the shipped one.
func (c *Client) loadRoot() error {
	shipped, err := parseRoot(c.cfg.TrustedRoot)
	if err != nil {
		return fmt.Errorf("verifier: shipped root: %w", err)
	}
	c.root, c.rootMeta = c.cfg.TrustedRoot, shipped
	b, err := devfs.ReadFile(c.cfg.FS, c.file(fileRoot), c.cfg.Limits.Root)
	if err == nil {
		if m, perr := parseRoot(b); perr == nil && m.Signed.Version >= shipped.Signed.Version {
			c.root, c.rootMeta = b, m
			return nil
		}
		c.cfg.Logger.Warn("verifier: ignoring persisted root", "path", c.file(fileRoot))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verifier: read root: %w", err)
	}
	if err := devfs.WriteFileAtomic(c.cfg.FS, c.file(fileRoot), c.root, 0o600); err != nil {
		return fmt.Errorf("verifier: save root: %w", err)
	}
	return nil
}

// parseRoot decodes a root and checks that it is signed by a threshold of
// its own keys (a root trusted out of band, or one verified earlier).
func parseRoot(b []byte) (m *metadata.Metadata[metadata.RootType], err error) {
	err = guard(func() error {
		tm, err := trustedmetadata.New(b)
		if err != nil {
			return err
		}
		m = tm.Root
		return nil
	})
	return m, err
}

// now is the time the verifier judges expiry at: the clock, but never
// earlier than the latest reading seen before (the clock floor), so a
// device whose clock is set back cannot be fooled into accepting metadata
// that had already expired.
func (c *Client) now() time.Time {
	n := c.cfg.Clock.Now().UTC().Round(0)
	if n.Before(c.st.ClockFloor) {
		return c.st.ClockFloor
	}
	c.st.ClockFloor = n
	if n.Sub(c.persistedFloor) >= c.cfg.ClockFloorInterval || c.persistedFloor.IsZero() {
		if err := c.saveState(); err != nil {
			c.cfg.Logger.Warn("verifier: persist clock floor", "err", err)
		}
	}
	return n
}

// Floor is the current security floor.
func (c *Client) Floor() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.SecurityFloor
}

// ClockFloor is the earliest time the verifier will judge expiry at.
func (c *Client) ClockFloor() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.ClockFloor
}

// RootVersion is the version of the latest trusted root.
func (c *Client) RootVersion() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rootMeta.Signed.Version
}

// guard runs f, turning a panic inside go-tuf (it dereferences nil entries
// of maps decoded from untrusted JSON) into an error.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &metadata.ErrValue{Msg: fmt.Sprintf("malformed metadata: %v", r)}
		}
	}()
	return f()
}
