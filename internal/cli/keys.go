package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

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
