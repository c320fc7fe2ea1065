package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

func keysRotateCommand() *command {
	var (
		dir, passphraseFile, keyType, metadataFile string
		n, threshold                               int
		expires                                    time.Duration
		upload                                     bool
		online                                     onlineSource
	)
	return &command{
		name:  "rotate",
		args:  "root|targets|online|LINE",
		short: "replace a role's keys; devices follow through the root chain",
		help: `root: new root keys; root N+1 is signed by the old keys and the new ones,
so devices can follow the chain. targets: new targets key; the new root
and top-level targets re-signed by it go up as one change. online: new
snapshot, timestamp and director keys on the server (--online-to-server
or --online-keys); root N+1 lists them. LINE: a new release key for a
product line; top-level targets names it and the line's role is re-signed
by it (its current metadata from --metadata, or from the server with
--upload). Retired keys move to DIR/retired. Revoking a key is a
rotation that leaves it out.

  updraft keys rotate root --keys 3 --threshold 2 --upload
  updraft keys rotate gw-200 --upload`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "keys", "keys `directory`")
			fs.StringVar(&passphraseFile, "passphrase-file", "", "`file` with the passphrase of the key files")
			fs.IntVar(&n, "keys", 0, "number of new keys (root, targets; default: as many as now)")
			fs.IntVar(&threshold, "threshold", 0, "new threshold (default: as now)")
			fs.StringVar(&keyType, "key-type", "ed25519", "key `type`: ed25519 or ecdsa-p256")
			fs.DurationVar(&expires, "expires", defaultRootLifetime, "lifetime of the new root (and targets)")
			fs.StringVar(&metadataFile, "metadata", "", "the line role's current metadata `file` (LINE, without --upload)")
			fs.BoolVar(&upload, "upload", false, "upload the result to the server")
			online.register(fs)
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			what := args[0]
			if what == "online" {
				if err := online.check(); err != nil {
					return err
				}
			} else if what != metadata.ROOT && what != metadata.TARGETS && !tufmeta.ValidRoleName(what) {
				return usageErrorf("rotate root, targets, online or a product line, not %q", what)
			}
			d, err := e.keyDir(dir, passphraseFile)
			if err != nil {
				return err
			}
			var c *client.Client
			if upload || online.toServer {
				if c, err = e.client(); err != nil {
					return err
				}
				if err := e.syncMetadata(ctx, c, d, metadata.ROOT, metadata.TARGETS); err != nil {
					return err
				}
			}
			r := rotation{e: e, d: d, kt: tufrepo.KeyType(keyType), n: n, threshold: threshold, now: e.Clock.Now(), expires: expires}
			var ch change
			switch what {
			case metadata.ROOT:
				ch, err = r.root()
			case metadata.TARGETS:
				ch, err = r.targets()
			case "online":
				var keys map[string]tufrepo.RoleKeys
				if keys, _, err = online.keys(ctx, e, true); err == nil {
					ch, err = r.online(keys)
				}
			default:
				var current []byte
				switch {
				case metadataFile != "":
					current, err = os.ReadFile(metadataFile)
				case c != nil:
					current, err = c.Metadata(ctx, what+".json")
					if client.IsNotFound(err) {
						current, err = nil, nil
					}
				default:
					err = usageErrorf("give --metadata FILE (the role's current metadata) or --upload to fetch it from the server")
				}
				if err == nil {
					ch, err = r.line(what, current)
				}
			}
			if err != nil {
				return err
			}
			return ch.finish(ctx, e, c, upload)
		},
	}
}

// change is signed metadata a key command wrote, to upload together.
type change struct {
	roots   [][]byte
	targets []client.RoleMetadata
	files   []string
	note    string
}

func (ch change) finish(ctx context.Context, e *Env, c *client.Client, upload bool) error {
	if ch.note != "" {
		fmt.Fprintln(e.Stdout, ch.note)
	}
	fmt.Fprintf(e.Stdout, "Wrote %s\n", strings.Join(ch.files, " "))
	if !upload {
		fmt.Fprintf(e.Stdout, "Upload with:\n  updraft release upload-metadata %s\n", strings.Join(ch.files, " "))
		return nil
	}
	var res client.MetadataStored
	var err error
	if len(ch.roots) == 1 && len(ch.targets) == 0 {
		res, err = c.UploadRole(ctx, metadata.ROOT, ch.roots[0])
	} else {
		res, err = c.ApplyMetadata(ctx, ch.roots, ch.targets)
	}
	if err != nil {
		return fmt.Errorf("upload (the files are written; retry with updraft release upload-metadata): %w", err)
	}
	printStored(e, res)
	return nil
}

// rotation builds the signed metadata of one key rotation.
type rotation struct {
	e            *Env
	d            keyDir
	kt           tufrepo.KeyType
	n, threshold int
	now          time.Time
	expires      time.Duration
}

// roleKeys returns the number of keys and the threshold root gives role.
func roleKeys(root []byte, role string) (int, int, error) {
	m, err := metadata.Root().FromBytes(root)
	if err != nil {
		return 0, 0, err
	}
	r, ok := m.Signed.Roles[role]
	if !ok {
		return 0, 0, fmt.Errorf("root lists no role %s", role)
	}
	return len(r.KeyIDs), r.Threshold, nil
}

// nextRoot signs root N+1 with changes by the current root keys (and the
// new root keys, when root itself rotates), checks it follows the chain,
// and writes it.
func (r rotation) nextRoot(changes map[string]tufrepo.RoleKeys, extra ...tufrepo.Signer) ([]byte, string, error) {
	cur, err := r.d.latest(metadata.ROOT)
	if err != nil {
		return nil, "", err
	}
	old, err := r.d.signers(metadata.ROOT)
	if err != nil {
		return nil, "", err
	}
	next, err := tufrepo.NextRoot(cur, r.now.Add(r.expires), changes)
	if err != nil {
		return nil, "", err
	}
	if next, err = tufrepo.Sign(next, append(old, extra...)...); err != nil {
		return nil, "", err
	}
	if err := tufrepo.VerifyRoot(cur, next, r.now, 0); err != nil {
		return nil, "", fmt.Errorf("the new root would not be trusted: %w", err)
	}
	p, err := r.d.writeMetadata(metadata.ROOT, next)
	return next, p, err
}

func (r rotation) counts(role string) (int, int, error) {
	cur, err := r.d.latest(metadata.ROOT)
	if err != nil {
		return 0, 0, err
	}
	n, m, err := roleKeys(cur, role)
	if err != nil {
		return 0, 0, err
	}
	if r.n > 0 {
		n = r.n
	}
	if r.threshold > 0 {
		m = r.threshold
	}
	return n, m, checkThreshold(role, n, m)
}

// stage generates the new keys of role in a staging directory inside DIR;
// commit retires the old keys and puts the new ones in place, abort (safe
// after commit) removes what is left.
func (r rotation) stage(role string, n int) (signers []tufrepo.Signer, commit, abort func() error, err error) {
	stageDir, err := os.MkdirTemp(r.d.dir, ".rotate-")
	if err != nil {
		return nil, nil, nil, err
	}
	abort = func() error { return os.RemoveAll(stageDir) }
	staged := keyDir{dir: stageDir, passphrase: r.d.passphrase}
	if signers, _, err = staged.newKeys(role, n, r.kt); err != nil {
		abort()
		return nil, nil, nil, err
	}
	commit = func() error {
		if err := r.d.retire(role, r.now); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(r.d.roleDir(role)), 0o700); err != nil {
			return err
		}
		if err := os.Rename(staged.roleDir(role), r.d.roleDir(role)); err != nil {
			return err
		}
		return os.RemoveAll(stageDir)
	}
	return signers, commit, abort, nil
}

func (r rotation) root() (change, error) {
	n, m, err := r.counts(metadata.ROOT)
	if err != nil {
		return change{}, err
	}
	signers, commit, abort, err := r.stage(metadata.ROOT, n)
	if err != nil {
		return change{}, err
	}
	defer abort()
	pub, err := tufrepo.SignerKeys(signers...)
	if err != nil {
		return change{}, err
	}
	next, p, err := r.nextRoot(map[string]tufrepo.RoleKeys{metadata.ROOT: {Keys: pub, Threshold: m}}, signers...)
	if err != nil {
		return change{}, err
	}
	if err := commit(); err != nil {
		return change{}, err
	}
	return change{roots: [][]byte{next}, files: []string{p},
		note: fmt.Sprintf("New root keys %s (%d of %d); the old ones are in %s.", strings.Join(keyIDs(signers), " "), m, n, filepath.Join(r.d.dir, "retired"))}, nil
}

func (r rotation) targets() (change, error) {
	n, m, err := r.counts(metadata.TARGETS)
	if err != nil {
		return change{}, err
	}
	signers, commit, abort, err := r.stage(metadata.TARGETS, n)
	if err != nil {
		return change{}, err
	}
	defer abort()
	pub, err := tufrepo.SignerKeys(signers...)
	if err != nil {
		return change{}, err
	}
	root, rootPath, err := r.nextRoot(map[string]tufrepo.RoleKeys{metadata.TARGETS: {Keys: pub, Threshold: m}})
	if err != nil {
		return change{}, err
	}
	cur, err := r.d.latest(metadata.TARGETS)
	if err != nil {
		return change{}, err
	}
	top, err := tufrepo.NextTargets(cur, tufrepo.TargetsEdit{Expires: r.now.Add(r.expires)})
	if err != nil {
		return change{}, err
	}
	if top, err = tufrepo.Sign(top, signers...); err != nil {
		return change{}, err
	}
	topPath, err := r.d.writeMetadata(metadata.TARGETS, top)
	if err != nil {
		return change{}, err
	}
	if err := commit(); err != nil {
		return change{}, err
	}
	return change{roots: [][]byte{root}, targets: []client.RoleMetadata{{Role: metadata.TARGETS, Metadata: top}}, files: []string{rootPath, topPath},
		note: fmt.Sprintf("New targets keys %s (%d of %d).", strings.Join(keyIDs(signers), " "), m, n)}, nil
}

func (r rotation) online(keys map[string]tufrepo.RoleKeys) (change, error) {
	root, p, err := r.nextRoot(keys)
	if err != nil {
		return change{}, err
	}
	var ids []string
	for _, role := range signing.OnlineRoles {
		id, _ := tufrepo.KeyID(keys[role].Keys[0])
		ids = append(ids, role+" "+id[:12])
	}
	return change{roots: [][]byte{root}, files: []string{p}, note: "New online keys: " + strings.Join(ids, ", ") + "."}, nil
}

func (r rotation) line(line string, current []byte) (change, error) {
	cur, err := r.d.latest(metadata.TARGETS)
	if err != nil {
		return change{}, err
	}
	dels, err := tufrepo.Delegations(cur)
	if err != nil {
		return change{}, err
	}
	i := slices.IndexFunc(dels, func(d tufrepo.Delegation) bool { return d.Name == line })
	if i < 0 {
		return change{}, fmt.Errorf("top-level targets does not delegate %s; add it with updraft keys delegate %s", line, line)
	}
	del := dels[i]
	n, m := len(del.Keys), del.Threshold
	if r.n > 0 {
		n = r.n
	}
	if r.threshold > 0 {
		m = r.threshold
	}
	if err := checkThreshold(line, n, m); err != nil {
		return change{}, err
	}
	signers, commit, abort, err := r.stage(line, n)
	if err != nil {
		return change{}, err
	}
	defer abort()
	if del.Keys, err = tufrepo.SignerKeys(signers...); err != nil {
		return change{}, err
	}
	del.Threshold = m
	ch, err := r.delegate(cur, del)
	if err != nil {
		return change{}, err
	}
	if current != nil {
		b, err := tufrepo.NextTargets(current, tufrepo.TargetsEdit{Expires: r.now.Add(defaultReleaseLifetime)})
		if err != nil {
			return change{}, err
		}
		if b, err = tufrepo.Sign(b, signers...); err != nil {
			return change{}, err
		}
		p, err := r.d.writeMetadata(line, b)
		if err != nil {
			return change{}, err
		}
		ch.targets = append(ch.targets, client.RoleMetadata{Role: line, Metadata: b})
		ch.files = append(ch.files, p)
	}
	if err := commit(); err != nil {
		return change{}, err
	}
	ch.note = fmt.Sprintf("New %s release keys %s in %s: give them to the CI job that signs %s releases.", line, strings.Join(keyIDs(signers), " "), r.d.roleDir(line), line)
	return ch, nil
}

// delegate writes top-level targets N+1 with del added or replaced.
func (r rotation) delegate(cur []byte, del tufrepo.Delegation) (change, error) {
	signers, err := r.d.signers(metadata.TARGETS)
	if err != nil {
		return change{}, err
	}
	top, err := tufrepo.NextTargets(cur, tufrepo.TargetsEdit{Expires: r.now.Add(r.expires), Delegate: []tufrepo.Delegation{del}})
	if err != nil {
		return change{}, err
	}
	if top, err = tufrepo.Sign(top, signers...); err != nil {
		return change{}, err
	}
	p, err := r.d.writeMetadata(metadata.TARGETS, top)
	if err != nil {
		return change{}, err
	}
	return change{targets: []client.RoleMetadata{{Role: metadata.TARGETS, Metadata: top}}, files: []string{p}}, nil
}
