package signing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// LeaseName is the store lease the publisher holds while it signs online
// metadata.
const LeaseName = "tuf-publisher"

// Options are the service's tunables; zero values take the defaults in
// brackets.
type Options struct {
	// SnapshotLifetime [7 days] and TimestampLifetime [1 day] are how long
	// online metadata stays valid; each is re-signed when less than half
	// of its lifetime remains.
	SnapshotLifetime  time.Duration
	TimestampLifetime time.Duration
	// DirectorLifetime is how long a director document (assignment or
	// finalize) is valid [7 days]; a stored document is signed again when
	// less than a quarter of it remains.
	DirectorLifetime time.Duration
	// PublishInterval is how often the publisher loop runs [30s];
	// LeaseTTL how long its lease lasts without renewal [3 intervals].
	PublishInterval time.Duration
	LeaseTTL        time.Duration
	// KeepSuperseded is how long a superseded snapshot, timestamp or role
	// version stays downloadable [the timestamp lifetime], so a device
	// that read the previous timestamp can finish its refresh.
	KeepSuperseded time.Duration
	// ExpiryWarning is how long before an offline role (root, targets, a
	// release role) expires that readiness reports it [30 days].
	ExpiryWarning time.Duration
	// KeyType of online keys the server generates [ed25519].
	KeyType tufrepo.KeyType
	// Limits cap every metadata file; zero fields take tufmeta defaults.
	Limits tufmeta.Limits
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SnapshotLifetime, tufrepo.DefaultSnapshotLifetime)
	def(&o.TimestampLifetime, tufrepo.DefaultTimestampLifetime)
	def(&o.DirectorLifetime, 7*24*time.Hour)
	def(&o.PublishInterval, 30*time.Second)
	def(&o.LeaseTTL, 3*o.PublishInterval)
	def(&o.KeepSuperseded, o.TimestampLifetime)
	def(&o.ExpiryWarning, 30*24*time.Hour)
	if o.KeyType == "" {
		o.KeyType = tufrepo.KeyEd25519
	}
	o.Limits = o.Limits.WithDefaults()
}

// Config wires a Service. Store, Clock and KeyEncryptionKey are required.
type Config struct {
	Store  store.Store
	Clock  clock.Clock
	Logger *slog.Logger // nil: discard
	// Metrics registers the service's collectors; nil: a private registry.
	Metrics prometheus.Registerer
	// Tenant the service signs for [store.DefaultTenant].
	Tenant string
	// KeyEncryptionKey seals the online private keys in the store: at
	// least 32 bytes of high-entropy secret kept outside the database.
	// Every replica sharing a database needs the same one.
	KeyEncryptionKey []byte
	// Holder names this replica as a lease holder; default random.
	Holder string
	Options
}

// Service is the signing service of one tenant. Create it with New.
type Service struct {
	store  store.Store
	clock  clock.Clock
	log    *slog.Logger
	tenant string
	holder string
	lease  string
	opts   Options
	seal   *sealer
	m      *metrics

	// writeMu serializes this replica's metadata writes (uploads and
	// publishing); other replicas are kept out by the generation
	// compare-and-set and the lease.
	writeMu sync.Mutex

	mu        sync.RWMutex
	st        *state
	keys      map[string]*onlineKey // by key id
	keyErrs   map[string]string     // key id → why it cannot be used
	keysAt    time.Time             // when keys were last read from the store
	finalized map[string]store.FinalizedRelease
	finalAt   time.Time // when finalized was last read
	leader    bool
	pubErr    string

	// notified remembers when each expiring role version was last
	// announced by webhook (NotifyExpiries).
	notifyMu sync.Mutex
	notified map[string]time.Time

	runMu   sync.Mutex
	started bool
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}
}

// New checks cfg and builds the service. Nothing is read until Start (or
// the first call that needs the repository).
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("signing: no store")
	case cfg.Clock == nil:
		return nil, errors.New("signing: no clock")
	}
	seal, err := newSealer(cfg.KeyEncryptionKey)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Tenant == "" {
		cfg.Tenant = store.DefaultTenant
	}
	if cfg.Holder == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("signing: holder id: %w", err)
		}
		cfg.Holder = "replica-" + hex.EncodeToString(b[:])
	}
	cfg.Options.setDefaults()
	if cfg.LeaseTTL <= cfg.PublishInterval {
		return nil, fmt.Errorf("signing: lease ttl %s must be longer than the publish interval %s", cfg.LeaseTTL, cfg.PublishInterval)
	}
	s := &Service{
		store:     cfg.Store,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		tenant:    cfg.Tenant,
		holder:    cfg.Holder,
		lease:     LeaseName,
		opts:      cfg.Options,
		seal:      seal,
		keys:      map[string]*onlineKey{},
		keyErrs:   map[string]string{},
		finalized: map[string]store.FinalizedRelease{},
		wake:      make(chan struct{}, 1),
	}
	if cfg.Tenant != store.DefaultTenant {
		s.lease = LeaseName + ":" + cfg.Tenant
	}
	if s.m, err = newMetrics(cfg.Metrics, s); err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return s, nil
}

// Tenant is the tenant the service signs for.
func (s *Service) Tenant() string { return s.tenant }

// Start loads the online keys, the repository and the finalized releases,
// and runs the publisher loop until Stop. A failure to load is returned
// (the server should not serve stale or no metadata silently).
func (s *Service) Start(ctx context.Context) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if s.started {
		return errors.New("signing: already started")
	}
	if err := s.loadKeys(ctx); err != nil {
		return err
	}
	if _, err := s.refresh(ctx); err != nil {
		return err
	}
	if err := s.loadFinalized(ctx); err != nil {
		return err
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.loop(ctx)
	}()
	return nil
}

// Stop ends the publisher loop and releases the lease so another replica
// takes over at once.
func (s *Service) Stop() {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	if !s.started || s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
	s.cancel = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseLease(ctx, s.lease, s.holder); err != nil {
		s.log.Warn("signing: release publisher lease", "err", err)
	}
	s.mu.Lock()
	s.leader = false
	s.mu.Unlock()
}

// state is one generation of the repository as read from the store. It is
// never modified once built; writers build a new one.
type state struct {
	gen  int64
	repo *tufrepo.Repository // nil: no repository yet
	// files are the current files by served name, timestamp.json included.
	files   map[string][]byte
	maxRoot int64
	// targets are the targets devices would trust, by path: top-level
	// targets and, from each delegated role, the paths it is delegated.
	targets map[string]tufrepo.Target
	// byRelease lists the targets by "<device type>/<version>", sorted by path.
	byRelease map[string][]tufrepo.Target
	expiries  []tufrepo.Expiry
}

// current returns the cached state, loading it on first use.
func (s *Service) current(ctx context.Context) (*state, error) {
	s.mu.RLock()
	st := s.st
	s.mu.RUnlock()
	if st != nil {
		return st, nil
	}
	return s.refresh(ctx)
}

// refresh returns the state of the store's current generation, reloading
// the cache if another writer (or replica) moved it.
func (s *Service) refresh(ctx context.Context) (*state, error) {
	gen, err := s.store.TUFGeneration(ctx, s.tenant)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	st := s.st
	s.mu.RUnlock()
	if st != nil && st.gen == gen {
		return st, nil
	}
	return s.reload(ctx)
}

// reload reads the repository from the store and caches it.
func (s *Service) reload(ctx context.Context) (*state, error) {
	raw, err := s.store.TUFState(ctx, s.tenant)
	var st *state
	switch {
	case errors.Is(err, store.ErrNotFound):
		st = &state{files: map[string][]byte{}}
	case err != nil:
		return nil, fmt.Errorf("signing: load repository: %w", err)
	default:
		repo, err := repoFromStore(raw, s.opts.Limits)
		if err != nil {
			return nil, fmt.Errorf("signing: load repository: %w", err)
		}
		if st, err = newState(raw.Generation, repo); err != nil {
			return nil, fmt.Errorf("signing: load repository: %w", err)
		}
	}
	s.install(st)
	return st, nil
}

// install caches st unless a newer generation is cached already.
func (s *Service) install(st *state) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st == nil || st.gen >= s.st.gen {
		s.st = st
	}
}

func repoFromStore(raw store.TUFState, limits tufmeta.Limits) (*tufrepo.Repository, error) {
	r := &tufrepo.Repository{Targets: map[string][]byte{}, Limits: limits}
	for i, f := range raw.Roots {
		if f.Version != int64(i+1) {
			return nil, fmt.Errorf("root chain has version %d where %d belongs", f.Version, i+1)
		}
		r.Roots = append(r.Roots, f.Data)
	}
	if len(r.Roots) == 0 {
		return nil, errors.New("no root")
	}
	for _, f := range raw.Current {
		switch f.Role {
		case metadata.SNAPSHOT:
			r.Snapshot = f.Data
		case metadata.TIMESTAMP:
			r.Timestamp = f.Data
		default:
			r.Targets[f.Role] = f.Data
		}
	}
	if r.Targets[metadata.TARGETS] == nil {
		return nil, errors.New("no top-level targets")
	}
	return r, nil
}

func newState(gen int64, repo *tufrepo.Repository) (*state, error) {
	st := &state{gen: gen, repo: repo, files: map[string][]byte{}, maxRoot: int64(len(repo.Roots))}
	for _, f := range repo.Files() {
		st.files[f.Name] = f.Data
	}
	var err error
	if st.targets, err = trustedTargets(repo); err != nil {
		return nil, err
	}
	st.byRelease = map[string][]tufrepo.Target{}
	for _, p := range slices.Sorted(maps.Keys(st.targets)) {
		t := st.targets[p]
		k := t.Custom.DeviceType + "/" + t.Custom.Version
		st.byRelease[k] = append(st.byRelease[k], t)
	}
	if st.expiries, err = repo.Expiries(); err != nil {
		return nil, err
	}
	return st, nil
}

// trustedTargets indexes what a device would trust: every top-level target
// and every target of a delegated role that the role is delegated; the
// first role in delegation order wins, as in TUF's search.
func trustedTargets(repo *tufrepo.Repository) (map[string]tufrepo.Target, error) {
	top := repo.Targets[metadata.TARGETS]
	out := map[string]tufrepo.Target{}
	ts, err := tufrepo.Targets(top)
	if err != nil {
		return nil, fmt.Errorf("top-level targets: %w", err)
	}
	for _, t := range ts {
		out[t.Path] = t
	}
	dels, err := tufrepo.Delegations(top)
	if err != nil {
		return nil, fmt.Errorf("delegations: %w", err)
	}
	for _, d := range dels {
		b, ok := repo.Targets[d.Name]
		if !ok {
			continue
		}
		ts, err := tufrepo.Targets(b)
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", d.Name, err)
		}
		role := metadata.DelegatedRole{Name: d.Name, Paths: d.Paths}
		for _, t := range ts {
			if _, seen := out[t.Path]; seen {
				continue
			}
			if ok, _ := role.IsDelegatedPath(t.Path); ok {
				out[t.Path] = t
			}
		}
	}
	return out, nil
}

// loadFinalized caches the finalized releases by version: those an
// operator finalized (store.FinalizeRelease) and the releases of rollout
// campaigns that were finalized (campaign.Finalize).
func (s *Service) loadFinalized(ctx context.Context) error {
	list, err := s.store.FinalizedReleases(ctx, s.tenant)
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	m := make(map[string]store.FinalizedRelease, len(list))
	for _, f := range list {
		m[f.Version] = f
	}
	for p := (store.Page{Limit: store.MaxPageLimit}); ; {
		cs, next, err := s.store.ListCampaigns(ctx, s.tenant, store.CampaignQuery{Page: p})
		if err != nil {
			return fmt.Errorf("signing: finalized campaigns: %w", err)
		}
		for _, c := range cs {
			if _, ok := m[c.Version]; !ok && c.FinalizedAt != nil && c.Kind == store.CampaignKindRollout {
				m[c.Version] = store.FinalizedRelease{TenantID: s.tenant, ReleaseID: c.ReleaseID, Version: c.Version, FinalizedAt: *c.FinalizedAt}
			}
		}
		if next == "" {
			break
		}
		p.After = next
	}
	s.mu.Lock()
	s.finalized, s.finalAt = m, s.clock.Now()
	s.mu.Unlock()
	return nil
}

// poke wakes the publisher loop early.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
