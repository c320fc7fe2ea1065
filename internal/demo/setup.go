package demo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// demo is one run's state.
type demo struct {
	o     Options
	w     io.Writer
	clock *sim.Accelerated
	dir   string
	res   *Result

	srv   *server.Server
	st    store.Store
	api   *client.Client
	admin store.Actor

	// Offline keys and the product line's current signed metadata.
	lineKey  tufrepo.Signer
	lineMeta []byte
	root     []byte

	fleet     *sim.Fleet
	stopFleet func()
}

// admin gives the first admin a password the demo prints, so the printed
// credentials work at once (no one-time password to change first), and
// keeps the first-start API token for the demo's own management calls.
func (d *demo) setupAdmin(ctx context.Context) error {
	ia := d.srv.Initial()
	if ia == nil {
		return errors.New("demo: the data directory already had users; the demo needs a fresh one")
	}
	u, err := d.st.UserByName(ctx, store.DefaultTenant, ia.User)
	if err != nil {
		return fmt.Errorf("demo: admin user: %w", err)
	}
	pw, err := auth.GenerateOneTimePassword()
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(pw, auth.DefaultArgon2Params())
	if err != nil {
		return err
	}
	d.admin = store.Actor{Kind: store.ActorUser, ID: u.ID, Name: u.Name}
	if err := d.st.SetPassword(ctx, store.DefaultTenant, u.ID, hash, false, d.admin, d.clock.Now()); err != nil {
		return fmt.Errorf("demo: set the admin password: %w", err)
	}
	d.res.AdminUser, d.res.AdminPassword, d.res.AdminToken = ia.User, pw, ia.Token
	// The first-start file holds the one-time password, which no longer
	// works; say what does instead.
	creds := fmt.Sprintf("# updraft demo: the admin password was set by the demo.\nuser=%s\npassword=%s\napi_token=%s\n", ia.User, pw, ia.Token)
	if err := atomicfile.WriteFile(ia.File, []byte(creds), 0o600); err != nil {
		return err
	}
	d.api, err = client.New(d.res.URL, client.Options{Token: ia.Token, UserAgent: "updraft-demo"})
	return err
}

// setupKeys runs the key ceremony: offline root, targets and product-line
// keys in DIR/keys, the online keys generated on the server, and root and
// targets version 1 uploaded.
func (d *demo) setupKeys(ctx context.Context) error {
	keysDir := filepath.Join(d.dir, "keys")
	if err := os.MkdirAll(filepath.Join(keysDir, "metadata"), 0o700); err != nil {
		return err
	}
	newKey := func(name string) (tufrepo.Signer, error) {
		k, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
		if err != nil {
			return nil, err
		}
		pemKey, err := tufrepo.MarshalPrivateKey(k, nil)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(keysDir, name+".pem"), pemKey, 0o600); err != nil {
			return nil, err
		}
		return tufrepo.NewSigner(k)
	}
	rootKey, err := newKey("root")
	if err != nil {
		return err
	}
	targetsKey, err := newKey("targets")
	if err != nil {
		return err
	}
	if d.lineKey, err = newKey(DeviceType); err != nil {
		return err
	}
	online, err := d.api.GenerateOnlineKeys(ctx, signing.OnlineRoles)
	if err != nil {
		return fmt.Errorf("demo: online keys: %w", err)
	}
	roles := map[string]tufrepo.RoleKeys{}
	for _, k := range online {
		roles[k.Role] = tufrepo.RoleKeys{Keys: []*metadata.Key{k.PublicKey}, Threshold: 1}
	}
	lineKeys, err := tufrepo.SignerKeys(d.lineKey)
	if err != nil {
		return err
	}
	now := d.clock.Now()
	root, top, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{rootKey}, RootThreshold: 1, Targets: []tufrepo.Signer{targetsKey}, TargetsThreshold: 1,
		Snapshot: roles[metadata.SNAPSHOT], Timestamp: roles[metadata.TIMESTAMP], Director: roles[tufmeta.RoleDirector],
		RootExpires: now.Add(365 * 24 * time.Hour), TargetsExpires: now.Add(365 * 24 * time.Hour),
		Delegations: []tufrepo.Delegation{{Name: DeviceType, Paths: tufmeta.DelegationPaths(DeviceType), Keys: lineKeys, Threshold: 1}},
	})
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{"1.root.json": root, "1.targets.json": top} {
		if err := atomicfile.WriteFile(filepath.Join(keysDir, "metadata", name), b, 0o644); err != nil {
			return err
		}
	}
	if _, err := d.api.ApplyMetadata(ctx, [][]byte{root}, []client.RoleMetadata{{Role: metadata.TARGETS, Metadata: top}}); err != nil {
		return fmt.Errorf("demo: upload root and targets: %w", err)
	}
	d.root = root
	fmt.Fprintf(d.w, "Keys: offline root, targets and %s release keys in %s; online snapshot, timestamp and director keys on the server.\n", DeviceType, keysDir)
	return nil
}

// release builds a release's image, uploads it, signs it offline into the
// product line's next metadata version, uploads that and publishes.
func (d *demo) release(ctx context.Context, version string, security int64, notes string) error {
	img := make([]byte, 64<<10)
	r := rand.NewChaCha8(sha256.Sum256([]byte(fmt.Sprintf("updraft-demo %d %s", d.o.Seed, version))))
	_, _ = r.Read(img)
	name := DeviceType + "-" + version + ".img"
	if err := os.MkdirAll(filepath.Join(d.dir, "images"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, "images", name), img, 0o600); err != nil {
		return err
	}
	sum := sha256.Sum256(img)
	revs := d.hwRevs()
	rel, err := d.api.CreateRelease(ctx, client.NewRelease{Version: version, SecurityVersion: security, Notes: notes})
	if err != nil {
		return fmt.Errorf("demo: create release %s: %w", version, err)
	}
	if _, err := d.api.UploadArtifact(ctx, rel.ID, client.Upload{DeviceType: DeviceType, HWRevs: revs, Type: tufmeta.TypeRawImage,
		Component: "rootfs", Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)), Body: bytes.NewReader(img)}); err != nil {
		return fmt.Errorf("demo: upload %s: %w", name, err)
	}
	custom := tufmeta.TargetCustom{Version: version, SecurityVersion: security, DeviceType: DeviceType, HWRevs: revs,
		ArtifactType: tufmeta.TypeRawImage, Component: "rootfs"}
	next, err := tufrepo.NextTargets(d.lineMeta, tufrepo.TargetsEdit{
		Expires: d.clock.Now().Add(90 * 24 * time.Hour),
		Add: []tufrepo.Target{{Path: tufmeta.TargetPath(DeviceType, "rootfs", version, name), Length: int64(len(img)),
			SHA256: hex.EncodeToString(sum[:]), Custom: custom}},
	})
	if err != nil {
		return err
	}
	if next, err = tufrepo.Sign(next, d.lineKey); err != nil {
		return err
	}
	info, err := tufrepo.Describe(next)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(d.dir, "keys", "metadata", fmt.Sprintf("%d.%s.json", info.Version, DeviceType)), next, 0o644); err != nil {
		return err
	}
	if _, err := d.api.UploadRole(ctx, DeviceType, next); err != nil {
		return fmt.Errorf("demo: upload the signed metadata of %s: %w", version, err)
	}
	d.lineMeta = next
	if _, err := d.api.PublishRelease(ctx, rel.ID); err != nil {
		return fmt.Errorf("demo: publish %s: %w", version, err)
	}
	fmt.Fprintf(d.w, "Release %s: %s (%d KiB, sha256 %s…), signed offline into %s metadata version %d, published.\n",
		version, notes, len(img)>>10, hex.EncodeToString(sum[:4]), DeviceType, info.Version)
	return nil
}

// hwRevs lists the fleet's hardware revisions.
func (d *demo) hwRevs() []string {
	var revs []string
	seen := map[string]bool{}
	for _, h := range d.profile().Hardware {
		if !seen[h.HWRev] {
			seen[h.HWRev] = true
			revs = append(revs, h.HWRev)
		}
	}
	return revs
}

// profile is the fleet's profile with the hidden regression.
func (d *demo) profile() sim.Profile {
	if d.o.Profile != nil {
		return *d.o.Profile
	}
	p := sim.DefaultProfile()
	p.PollInterval = sim.Duration(d.o.PollInterval)
	p.Releases = []sim.Behaviour{*d.o.Regression}
	return p
}

// startFleet builds the fleet, preauthorizes every device's key through
// the management API and runs it until stopFleet.
func (d *demo) startFleet(ctx context.Context) error {
	f, err := sim.New(sim.Config{
		ServerURL: d.res.URL, Devices: d.o.Devices, Profile: d.profile(), Clock: d.clock, Seed: d.o.Seed,
		TrustedRoot: d.root, Preauthorize: d.preauthorize,
		// At least 30 s of real time for a new image to reach the server.
		ServerWindow: max(10*time.Minute, time.Duration(30*d.o.Factor)*time.Second),
	})
	if err != nil {
		return err
	}
	if err := f.Preauthorize(ctx); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(runCtx)
	}()
	d.fleet = f
	d.stopFleet = func() {
		stop()
		<-done
	}
	return nil
}

// preauthorize registers one device key (PEM) through the management API.
func (d *demo) preauthorize(ctx context.Context, pub ed25519.PublicKey, serial string) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	_, err = d.api.PreauthorizeKey(ctx, string(pemKey), serial)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		return nil
	}
	return err
}
