package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// Key lifetimes the ceremony commands default to.
const (
	defaultRootLifetime    = 365 * 24 * time.Hour
	defaultTargetsLifetime = 365 * 24 * time.Hour
	defaultReleaseLifetime = 90 * 24 * time.Hour
)

// maxKeyFile bounds a key or passphrase file.
const maxKeyFile = 64 << 10

func keysCommand() *command {
	return &command{
		name:  "keys",
		short: "create, rotate and delegate the offline TUF signing keys",
		help: `Signed updates (docs/security.md) rest on offline keys kept in a local
directory (--dir, default "keys"): root (threshold m-of-n), top-level
targets, and one release-signing key per product line, which CI jobs use
with "updraft release sign". The server holds only the online snapshot,
timestamp and director keys. Key files are written 0600, optionally
encrypted with a passphrase (--passphrase-file); signed metadata goes to
DIR/metadata.`,
		subs: []*command{
			keysInitCommand(),
			keysOnlineCommand(),
			keysRotateCommand(),
			keysDelegateCommand(),
		},
	}
}

// keyDir is the offline keys directory:
//
//	root/N.pem, targets/N.pem, lines/<line>/N.pem   private keys (0600)
//	retired/<role>-<time>/N.pem                     keys rotated out
//	metadata/N.<role>.json                          signed metadata
type keyDir struct {
	dir        string
	passphrase []byte
}

func (e *Env) keyDir(dir, passphraseFile string) (keyDir, error) {
	d := keyDir{dir: dir}
	if passphraseFile != "" {
		b, err := readSmallFile(passphraseFile)
		if err != nil {
			return d, fmt.Errorf("read --passphrase-file: %w", err)
		}
		d.passphrase = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(d.passphrase) == 0 {
			return d, fmt.Errorf("--passphrase-file %s is empty", passphraseFile)
		}
	}
	return d, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

// roleDir is where a role's private keys live.
func (d keyDir) roleDir(role string) string {
	switch role {
	case metadata.ROOT, metadata.TARGETS:
		return filepath.Join(d.dir, role)
	}
	return filepath.Join(d.dir, "lines", role)
}

// newKeys generates n keys for role and writes them, numbered after any
// that exist; it never overwrites a file.
func (d keyDir) newKeys(role string, n int, kt tufrepo.KeyType) ([]tufrepo.Signer, []string, error) {
	dir := d.roleDir(role)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	var signers []tufrepo.Signer
	var paths []string
	next := 1
	for len(signers) < n {
		k, err := tufrepo.GenerateKey(kt)
		if err != nil {
			return nil, nil, err
		}
		b, err := tufrepo.MarshalPrivateKey(k, d.passphrase)
		if err != nil {
			return nil, nil, err
		}
		for ; ; next++ {
			p := filepath.Join(dir, strconv.Itoa(next)+".pem")
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			_, werr := f.Write(b)
			if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
				return nil, nil, fmt.Errorf("write %s: %w", p, err)
			}
			paths = append(paths, p)
			break
		}
		s, err := tufrepo.NewSigner(k)
		if err != nil {
			return nil, nil, err
		}
		signers = append(signers, s)
	}
	return signers, paths, nil
}

// signers loads every key of role in the directory.
func (d keyDir) signers(role string) ([]tufrepo.Signer, error) {
	paths, err := filepath.Glob(filepath.Join(d.roleDir(role), "*.pem"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no %s keys in %s", role, d.roleDir(role))
	}
	slices.Sort(paths)
	var out []tufrepo.Signer
	for _, p := range paths {
		s, err := loadSigner(p, d.passphrase)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func loadSigner(path string, passphrase []byte) (tufrepo.Signer, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	k, err := tufrepo.ParsePrivateKey(b, passphrase)
	if err != nil {
		if len(passphrase) == 0 && strings.Contains(string(b), "ENCRYPTED") {
			return nil, fmt.Errorf("%s is encrypted: give --passphrase-file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tufrepo.NewSigner(k)
}

// retire moves role's current keys out of the way after a rotation.
func (d keyDir) retire(role string, now time.Time) error {
	from := d.roleDir(role)
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return nil // the keys were never here (held elsewhere)
	}
	to := filepath.Join(d.dir, "retired", strings.ReplaceAll(role, "/", "-")+"-"+now.UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// latest returns the highest version of role's metadata in DIR/metadata.
func (d keyDir) latest(role string) ([]byte, error) {
	paths, err := filepath.Glob(filepath.Join(d.dir, "metadata", "*."+role+".json"))
	if err != nil {
		return nil, err
	}
	var best []byte
	var bestV int64
	for _, p := range paths {
		r, v, err := signing.ParseName(filepath.Base(p))
		if err != nil || r != role || v <= bestV {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		best, bestV = b, v
	}
	if best == nil {
		return nil, fmt.Errorf("no %s metadata in %s", role, filepath.Join(d.dir, "metadata"))
	}
	return best, nil
}

// writeMetadata writes signed metadata as DIR/metadata/N.<role>.json.
func (d keyDir) writeMetadata(role string, b []byte) (string, error) {
	info, err := tufrepo.Describe(b)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.dir, "metadata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, fmt.Sprintf("%d.%s.json", info.Version, role))
	return p, atomicfile.WriteFile(p, b, 0o644)
}

// sync stores the server's newer root and targets in DIR/metadata, so a
// rotation starts from what devices trust now.
func (e *Env) syncMetadata(ctx context.Context, c *client.Client, d keyDir, roles ...string) error {
	for _, role := range roles {
		b, err := c.Metadata(ctx, role+".json")
		if client.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		local, lerr := d.latest(role)
		if lerr == nil && version(local) >= version(b) {
			continue
		}
		if _, err := d.writeMetadata(role, b); err != nil {
			return err
		}
	}
	return nil
}

func version(b []byte) int64 {
	info, err := tufrepo.Describe(b)
	if err != nil {
		return 0
	}
	return info.Version
}

func keyIDs(signers []tufrepo.Signer) []string {
	var out []string
	for _, s := range signers {
		k, err := tufrepo.SignerKey(s)
		if err != nil {
			continue
		}
		if id, err := tufrepo.KeyID(k); err == nil {
			out = append(out, id[:12])
		}
	}
	return out
}

// onlineSource is where the online public keys come from: the server
// (generated there on demand) or a file saved with "keys online -o json".
type onlineSource struct {
	toServer bool
	file     string
}

func (o *onlineSource) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.toServer, "online-to-server", false, "use online keys the server holds, generating them there if needed (their private halves never leave it)")
	fs.StringVar(&o.file, "online-keys", "", "`file` with the server's online public keys, saved with updraft keys online -o json (for an offline ceremony)")
}

func (o *onlineSource) check() error {
	switch {
	case o.toServer && o.file != "":
		return usageErrorf("give --online-to-server or --online-keys, not both")
	case !o.toServer && o.file == "":
		return usageErrorf("name the server's online keys: --online-to-server, or --online-keys FILE from updraft keys online -o json")
	}
	return nil
}

// keys returns one public key per online role. fresh demands keys the
// latest root does not list yet (a rotation); otherwise the newest key of
// each role is used, generated when the server has none.
func (o *onlineSource) keys(ctx context.Context, e *Env, fresh bool) (map[string]tufrepo.RoleKeys, []client.OnlineKey, error) {
	var list []client.OnlineKey
	if o.file != "" {
		b, err := readSmallFile(o.file)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, &list); err != nil {
			var wrapped client.List[client.OnlineKey]
			if err2 := json.Unmarshal(b, &wrapped); err2 != nil {
				return nil, nil, fmt.Errorf("%s: not the output of updraft keys online -o json: %w", o.file, err)
			}
			list = wrapped.Items
		}
	} else {
		c, err := e.client()
		if err != nil {
			return nil, nil, err
		}
		if list, err = c.OnlineKeys(ctx); err != nil {
			return nil, nil, err
		}
		var missing []string
		for _, role := range signing.OnlineRoles {
			if pickOnline(list, role, fresh) == nil {
				missing = append(missing, role)
			}
		}
		if len(missing) > 0 {
			gen, err := c.GenerateOnlineKeys(ctx, missing)
			if err != nil {
				return nil, nil, fmt.Errorf("generate online keys on the server: %w", err)
			}
			list = append(list, gen...)
		}
	}
	out := map[string]tufrepo.RoleKeys{}
	var used []client.OnlineKey
	for _, role := range signing.OnlineRoles {
		k := pickOnline(list, role, fresh)
		if k == nil {
			return nil, nil, fmt.Errorf("no usable %s key among the online keys%s", role, map[bool]string{true: " that root does not list yet", false: ""}[fresh])
		}
		out[role] = tufrepo.RoleKeys{Keys: []*metadata.Key{k.PublicKey}, Threshold: 1}
		used = append(used, *k)
	}
	return out, used, nil
}

func pickOnline(list []client.OnlineKey, role string, fresh bool) *client.OnlineKey {
	var best *client.OnlineKey
	for i := range list {
		k := &list[i]
		if k.Role != role || k.PublicKey == nil || (!k.Usable && k.Problem != "") || (fresh && k.InRoot) {
			continue
		}
		if best == nil || !k.CreatedAt.Before(best.CreatedAt) {
			best = k
		}
	}
	return best
}

func keysInitCommand() *command {
	var (
		dir, passphraseFile, keyType string
		rootKeys, rootThreshold      int
		targetsKeys, targetsThresh   int
		lines                        []string
		rootExpires, targetsExpires  time.Duration
		online                       onlineSource
	)
	return &command{
		name:  "init",
		short: "create the root, targets and release keys and the first signed metadata",
		help: `Runs the key ceremony with every offline key holder present: generates the
root keys (--root-keys, signed by all of them, --root-threshold needed
later), the top-level targets key and one release-signing key per --line,
and writes root version 1 and targets version 1, which delegates each
line's paths ("<line>/*/*/*") to its key. Root lists the server's online
keys: with --online-to-server they are taken from (or generated on) the
server and the metadata is uploaded at once; with --online-keys FILE the
ceremony needs no network and prints what to upload.

  updraft keys init --dir keys --root-keys 3 --root-threshold 2 --line gw-200 --line gw-300 --online-to-server

Ship DIR/metadata/1.root.json with every device; keep DIR offline.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "keys", "keys `directory` to create")
			fs.IntVar(&rootKeys, "root-keys", 1, "number of root keys")
			fs.IntVar(&rootThreshold, "root-threshold", 1, "root keys needed to sign a new root")
			fs.IntVar(&targetsKeys, "targets-keys", 1, "number of top-level targets keys")
			fs.IntVar(&targetsThresh, "targets-threshold", 1, "targets keys needed to sign top-level targets")
			fs.Var(listFlag{&lines}, "line", "product `line` (device type) to delegate to its own release key (repeatable)")
			fs.StringVar(&keyType, "key-type", "ed25519", "key `type`: ed25519 or ecdsa-p256")
			fs.StringVar(&passphraseFile, "passphrase-file", "", "encrypt the key files with the passphrase in this `file`")
			fs.DurationVar(&rootExpires, "root-expires", defaultRootLifetime, "root lifetime")
			fs.DurationVar(&targetsExpires, "targets-expires", defaultTargetsLifetime, "top-level targets lifetime")
			online.register(fs)
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := online.check(); err != nil {
				return err
			}
			if err := checkThreshold("root", rootKeys, rootThreshold); err != nil {
				return err
			}
			if err := checkThreshold("targets", targetsKeys, targetsThresh); err != nil {
				return err
			}
			for _, l := range lines {
				if !tufmeta.ValidRoleName(l) {
					return usageErrorf("invalid value %q for flag --line: a device type such as gw-200", l)
				}
			}
			if rootExpires <= 0 || targetsExpires <= 0 {
				return usageErrorf("lifetimes must be positive")
			}
			d, err := e.keyDir(dir, passphraseFile)
			if err != nil {
				return err
			}
			if _, err := os.Stat(filepath.Join(dir, "root")); err == nil {
				return fmt.Errorf("%s already holds root keys; rotate them with updraft keys rotate root", dir)
			}
			onlineKeys, used, err := online.keys(ctx, e, false)
			if err != nil {
				return err
			}
			kt := tufrepo.KeyType(keyType)
			roots, rootPaths, err := d.newKeys(metadata.ROOT, rootKeys, kt)
			if err != nil {
				return err
			}
			targets, targetPaths, err := d.newKeys(metadata.TARGETS, targetsKeys, kt)
			if err != nil {
				return err
			}
			var dels []tufrepo.Delegation
			linePaths := map[string][]string{}
			for _, l := range lines {
				ks, ps, err := d.newKeys(l, 1, kt)
				if err != nil {
					return err
				}
				linePaths[l] = ps
				pub, err := tufrepo.SignerKeys(ks...)
				if err != nil {
					return err
				}
				dels = append(dels, tufrepo.Delegation{Name: l, Paths: tufmeta.DelegationPaths(l), Keys: pub, Threshold: 1})
			}
			now := e.Clock.Now()
			root, top, err := tufrepo.Init(tufrepo.InitSpec{
				Root: roots, RootThreshold: rootThreshold, Targets: targets, TargetsThreshold: targetsThresh,
				Snapshot: onlineKeys[metadata.SNAPSHOT], Timestamp: onlineKeys[metadata.TIMESTAMP], Director: onlineKeys[tufmeta.RoleDirector],
				RootExpires: now.Add(rootExpires), TargetsExpires: now.Add(targetsExpires), Delegations: dels,
			})
			if err != nil {
				return err
			}
			rootFile, err := d.writeMetadata(metadata.ROOT, root)
			if err != nil {
				return err
			}
			topFile, err := d.writeMetadata(metadata.TARGETS, top)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "Offline keys in %s (files 0600; keep the directory offline):\n", dir)
			fmt.Fprintf(e.Stdout, "  root     %s  (%d of %d sign a new root)\n", strings.Join(rootPaths, " "), rootThreshold, rootKeys)
			fmt.Fprintf(e.Stdout, "  targets  %s\n", strings.Join(targetPaths, " "))
			for _, l := range lines {
				fmt.Fprintf(e.Stdout, "  %-8s %s  (for the CI job that signs %s releases: updraft release sign --role %s)\n", l, strings.Join(linePaths[l], " "), l, l)
			}
			fmt.Fprintf(e.Stdout, "Online keys (held by the server):")
			for _, k := range used {
				fmt.Fprintf(e.Stdout, " %s %s", k.Role, k.KeyID[:12])
			}
			fmt.Fprintf(e.Stdout, "\nSigned metadata:\n  %s  (ship it with every device as the trusted root)\n  %s\n", rootFile, topFile)
			if !online.toServer {
				fmt.Fprintf(e.Stdout, "Upload it to the server with:\n  updraft release upload-metadata %s %s\n", rootFile, topFile)
				return nil
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.ApplyMetadata(ctx, [][]byte{root}, []client.RoleMetadata{{Role: metadata.TARGETS, Metadata: top}})
			if err != nil {
				return fmt.Errorf("upload the first root and targets (they are in %s; retry with updraft release upload-metadata): %w", filepath.Dir(rootFile), err)
			}
			printStored(e, res)
			return nil
		},
	}
}

func checkThreshold(role string, n, m int) error {
	if n < 1 || m < 1 || m > n {
		return usageErrorf("%s: want 1 <= threshold <= keys, got %d of %d", role, m, n)
	}
	return nil
}

// printStored reports what an upload stored.
func printStored(e *Env, res client.MetadataStored) {
	var parts []string
	for _, s := range res.Stored {
		parts = append(parts, fmt.Sprintf("%s %d", s.Role, s.Version))
	}
	fmt.Fprintf(e.Stdout, "Uploaded %s; ", strings.Join(parts, ", "))
	if res.Published {
		fmt.Fprintf(e.Stdout, "devices now see snapshot %d, timestamp %d.\n", res.Snapshot, res.Timestamp)
	} else {
		fmt.Fprintf(e.Stdout, "the server's publisher re-signs snapshot and timestamp within its interval.\n")
	}
}

func keysOnlineCommand() *command {
	var (
		generate        []string
		importRole, key string
	)
	return &command{
		name:  "online",
		short: "show, generate or import the server's online keys",
		help: `Lists the server's online keys (snapshot, timestamp, director): their key
ids, whether the latest root lists them, and whether this replica can use
them. "-o json" writes the file that keys init and keys rotate online take
as --online-keys for a ceremony without network.

  updraft keys online --generate snapshot,timestamp,director
  updraft keys online --import director --key-file director.pem`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.Var(listFlag{&generate}, "generate", "`roles` to generate a new key for on the server (admin)")
			fs.StringVar(&importRole, "import", "", "upload the private key in --key-file as this online `role` (admin)")
			fs.StringVar(&key, "key-file", "", "PKCS#8 PEM private key `file` for --import")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if (importRole == "") != (key == "") {
				return usageErrorf("--import and --key-file go together")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			if len(generate) > 0 {
				if _, err := c.GenerateOnlineKeys(ctx, generate); err != nil {
					return err
				}
			}
			if importRole != "" {
				b, err := readSmallFile(key)
				if err != nil {
					return err
				}
				if _, err := c.ImportOnlineKey(ctx, importRole, b); err != nil {
					return err
				}
			}
			keys, err := c.OnlineKeys(ctx)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(keys)
			}
			tw := e.table()
			fmt.Fprintln(tw, "ROLE\tKEY ID\tIN ROOT\tUSABLE\tCREATED")
			for _, k := range keys {
				usable := "yes"
				if !k.Usable {
					usable = "no: " + k.Problem
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", k.Role, k.KeyID, k.InRoot, usable, fmtTime(k.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

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

// current returns the role's keys and threshold in root.
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

func keysDelegateCommand() *command {
	var (
		dir, passphraseFile, keyType string
		paths, keyFiles              []string
		threshold                    int
		expires                      time.Duration
		upload                       bool
	)
	return &command{
		name:  "delegate",
		args:  "LINE",
		short: "delegate a product line's target paths to a release-signing key",
		help: `Writes top-level targets N+1 (signed by the targets keys in DIR) that
delegates --paths (default "LINE/*/*/*": every target of device type LINE)
to the public keys in --key-file (PEM, e.g. from an HSM or a CI secret
store), or to a key generated in DIR/lines/LINE.

  updraft keys delegate gw-300 --upload`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dir, "dir", "keys", "keys `directory`")
			fs.StringVar(&passphraseFile, "passphrase-file", "", "`file` with the passphrase of the key files")
			fs.Var(listFlag{&paths}, "paths", "target path `patterns` (segment by segment; default LINE/*/*/*)")
			fs.Var(listFlag{&keyFiles}, "key-file", "PEM public key `file` of the release key (repeatable; default: generate one)")
			fs.IntVar(&threshold, "threshold", 1, "keys needed to sign the line's metadata")
			fs.StringVar(&keyType, "key-type", "ed25519", "key `type` of a generated key")
			fs.DurationVar(&expires, "expires", defaultTargetsLifetime, "lifetime of the new top-level targets")
			fs.BoolVar(&upload, "upload", false, "upload the result to the server")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			line := args[0]
			if !tufmeta.ValidRoleName(line) {
				return usageErrorf("LINE %q is not a role name such as gw-200", line)
			}
			if len(paths) == 0 {
				paths = tufmeta.DelegationPaths(line)
			}
			d, err := e.keyDir(dir, passphraseFile)
			if err != nil {
				return err
			}
			var c *client.Client
			if upload {
				if c, err = e.client(); err != nil {
					return err
				}
				if err := e.syncMetadata(ctx, c, d, metadata.TARGETS); err != nil {
					return err
				}
			}
			var keys []*metadata.Key
			var generated []string
			for _, f := range keyFiles {
				k, err := publicKeyFile(f)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			if len(keys) == 0 {
				signers, ps, err := d.newKeys(line, 1, tufrepo.KeyType(keyType))
				if err != nil {
					return err
				}
				if keys, err = tufrepo.SignerKeys(signers...); err != nil {
					return err
				}
				generated = ps
			}
			if err := checkThreshold(line, len(keys), threshold); err != nil {
				return err
			}
			cur, err := d.latest(metadata.TARGETS)
			if err != nil {
				return err
			}
			r := rotation{e: e, d: d, now: e.Clock.Now(), expires: expires}
			ch, err := r.delegate(cur, tufrepo.Delegation{Name: line, Paths: paths, Keys: keys, Threshold: threshold})
			if err != nil {
				return err
			}
			ch.note = fmt.Sprintf("Delegated %s to %d key(s), threshold %d.", strings.Join(paths, ", "), len(keys), threshold)
			if len(generated) > 0 {
				ch.note += fmt.Sprintf(" The release key is %s: give it to the CI job that signs %s releases.", strings.Join(generated, " "), line)
			}
			return ch.finish(ctx, e, c, upload)
		},
	}
}

// publicKeyFile reads a PEM public key (or takes the public half of a
// private key file) as a TUF key record.
func publicKeyFile(path string) (*metadata.Key, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var pub crypto.PublicKey
	switch blk.Type {
	case "PUBLIC KEY":
		if pub, err = x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case "PRIVATE KEY":
		k, err := tufrepo.ParsePrivateKey(b, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pub = k.Public()
	default:
		return nil, fmt.Errorf("%s: a %s, want a PUBLIC KEY", path, blk.Type)
	}
	return tufrepo.PublicKey(pub)
}
