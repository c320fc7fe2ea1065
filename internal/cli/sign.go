package cli

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

func releaseSignCommand() *command {
	var (
		role, metadataFile, out, passphraseFile                           string
		version, deviceType, hwRevs, typ, component, compression, fromVer string
		name                                                              string
		securityVersion                                                   int64
		keys, artifacts, remove                                           []string
		expires                                                           time.Duration
		cosign, combine                                                   bool
	)
	return &command{
		name:  "sign",
		args:  "[FILE...]",
		short: "sign a release's artifacts into a release role's metadata, offline",
		help: `Needs no server: reads the role's current metadata (--metadata; none for
its first version), computes the length and SHA-256 of each --artifact,
and writes the next version with those targets, their signed fields
(version, security version, hardware, type, compression, component) and
a new expiry, signed by --key. Target paths are
"<device type>/<component>/<version>/<name>" and must match the artifacts
uploaded with updraft release upload (same --device-type, --component,
--name, default the file's base name). Upload the result with updraft
release upload-metadata.

  updraft release sign --role gw-200 --key keys/lines/gw-200/1.pem \
      --metadata 4.gw-200.json --version 2.1.0 --security-version 7 \
      --hw-rev B,C --type raw-image --component rootfs --artifact gw200.img

Threshold signing: one holder signs, the others add their signature to
that file (--cosign FILE --key theirs), in turn or in parallel; copies
signed in parallel are merged with --combine A B ... Both work for any
metadata, including a new root.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "release-signing `role` (product line), e.g. gw-200")
			fs.StringVar(&metadataFile, "metadata", "", "the role's current metadata `file` (omit for its first version)")
			fs.Var(listFlag{&keys}, "key", "private key `file` to sign with (repeatable)")
			fs.StringVar(&passphraseFile, "passphrase-file", "", "`file` with the passphrase of encrypted key files")
			fs.Var(listFlag{&artifacts}, "artifact", "artifact `file` to add (repeatable)")
			fs.StringVar(&version, "version", "", "the release's semantic `version`")
			fs.Int64Var(&securityVersion, "security-version", 0, "anti-rollback security `version`")
			fs.StringVar(&deviceType, "device-type", "", "device `type` (default: the role)")
			fs.StringVar(&hwRevs, "hw-rev", "", "comma-separated hardware `revisions` the artifacts suit")
			fs.StringVar(&typ, "type", "", "artifact `type`: raw-image, file, archive, script, swu, rauc-bundle, mender or delta")
			fs.StringVar(&component, "component", "", "`component` the artifacts update (default: the main one)")
			fs.StringVar(&compression, "compression", "", "`compression` of the content: gzip or zstd (default none)")
			fs.StringVar(&fromVer, "from-version", "", "`version` a delta artifact applies to")
			fs.StringVar(&name, "name", "", "artifact `name` (one --artifact only; default the file's base name)")
			fs.Var(listFlag{&remove}, "remove", "target `path` to drop from the role (retired releases)")
			fs.DurationVar(&expires, "expires", defaultReleaseLifetime, "lifetime of the new version")
			fs.StringVar(&out, "out", "", "output `file` (default N.<role>.json in the current directory)")
			fs.BoolVar(&cosign, "cosign", false, "add --key's signature to the metadata FILE")
			fs.BoolVar(&combine, "combine", false, "merge the signatures of the copies FILE... of one metadata")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			var signers []tufrepo.Signer
			loadKeys := func() error {
				d, err := e.keyDir("", passphraseFile)
				if err != nil {
					return err
				}
				for _, k := range keys {
					s, err := loadSigner(k, d.passphrase)
					if err != nil {
						return err
					}
					signers = append(signers, s)
				}
				return nil
			}
			switch {
			case cosign && combine:
				return usageErrorf("--cosign and --combine do different things; give one")
			case combine:
				if len(args) < 2 {
					return usageErrorf("--combine needs at least two files")
				}
				var docs [][]byte
				for _, a := range args {
					b, err := os.ReadFile(a)
					if err != nil {
						return err
					}
					docs = append(docs, b)
				}
				b, err := tufrepo.Combine(docs...)
				if err != nil {
					return err
				}
				return e.writeSigned(b, out, args[0], "combined")
			case cosign:
				if len(args) != 1 || len(keys) == 0 {
					return usageErrorf("--cosign needs one FILE and --key")
				}
				if err := loadKeys(); err != nil {
					return err
				}
				b, err := os.ReadFile(args[0])
				if err != nil {
					return err
				}
				if b, err = tufrepo.Sign(b, signers...); err != nil {
					return err
				}
				return e.writeSigned(b, out, args[0], "signed by "+strings.Join(keyIDs(signers), " "))
			}
			if len(args) > 0 {
				return usageErrorf("unexpected argument %q (files go with --cosign or --combine)", args[0])
			}
			switch {
			case role == "":
				return usageErrorf("--role is required")
			case !tufmeta.ValidRoleName(role):
				return usageErrorf("invalid value %q for flag --role: a release role such as gw-200", role)
			case len(keys) == 0:
				return usageErrorf("--key is required")
			case len(artifacts) == 0 && len(remove) == 0:
				return usageErrorf("nothing to sign: give --artifact (or --remove)")
			case name != "" && len(artifacts) != 1:
				return usageErrorf("--name goes with exactly one --artifact")
			case expires <= 0:
				return usageErrorf("--expires must be positive")
			}
			if deviceType == "" {
				deviceType = role
			}
			var targets []tufrepo.Target
			if len(artifacts) > 0 {
				if _, err := semver.Parse(version); err != nil {
					return usageErrorf("--version %q is not a semantic version: %v", version, err)
				}
				custom := tufmeta.TargetCustom{Version: version, SecurityVersion: securityVersion, DeviceType: deviceType,
					HWRevs: splitList(hwRevs), ArtifactType: typ, Compression: compression, Component: signing.Component(component), FromVersion: fromVer}
				if err := custom.Validate(); err != nil {
					return usageErrorf("%s", strings.TrimPrefix(err.Error(), "target custom: "))
				}
				for _, a := range artifacts {
					t, err := e.target(ctx, a, name, custom)
					if err != nil {
						return err
					}
					targets = append(targets, t)
				}
			}
			var current []byte
			if metadataFile != "" {
				b, err := os.ReadFile(metadataFile)
				if err != nil {
					return err
				}
				info, err := tufrepo.Describe(b)
				if err != nil {
					return fmt.Errorf("%s: %w", metadataFile, err)
				}
				if info.Type != metadata.TARGETS {
					return fmt.Errorf("%s is %s metadata, not a release role's", metadataFile, info.Type)
				}
				current = b
			}
			if err := loadKeys(); err != nil {
				return err
			}
			b, err := tufrepo.NextTargets(current, tufrepo.TargetsEdit{Expires: e.Clock.Now().Add(expires), Add: targets, Remove: remove})
			if err != nil {
				return err
			}
			if b, err = tufrepo.Sign(b, signers...); err != nil {
				return err
			}
			info, _ := tufrepo.Describe(b)
			if out == "" {
				out = fmt.Sprintf("%d.%s.json", info.Version, role)
			}
			if err := atomicfile.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]any{"file": out, "role": role, "version": info.Version, "targets": targets})
			}
			fmt.Fprintf(e.Stdout, "Wrote %s: %s version %d, signed by %s, expires %s\n", out, role, info.Version,
				strings.Join(keyIDs(signers), " "), info.Expires.UTC().Format(time.RFC3339))
			for _, t := range targets {
				fmt.Fprintf(e.Stdout, "  + %s  %s  sha256 %s\n", t.Path, fmtBytes(t.Length), t.SHA256)
			}
			for _, p := range remove {
				fmt.Fprintf(e.Stdout, "  - %s\n", p)
			}
			fmt.Fprintf(e.Stdout, "Upload with: updraft release upload-metadata %s\n", out)
			return nil
		},
	}
}

// target hashes an artifact file into a target with the signed fields.
func (e *Env) target(ctx context.Context, path, name string, custom tufmeta.TargetCustom) (tufrepo.Target, error) {
	f, err := os.Open(path)
	if err != nil {
		return tufrepo.Target{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return tufrepo.Target{}, err
	}
	if !st.Mode().IsRegular() {
		return tufrepo.Target{}, fmt.Errorf("%s is not a regular file", path)
	}
	if name == "" {
		name = filepath.Base(path)
	}
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return tufrepo.Target{}, fmt.Errorf("read %s: %w", path, err)
	}
	t := tufrepo.Target{
		Path:   tufmeta.TargetPath(custom.DeviceType, custom.Component, custom.Version, name),
		Length: n, SHA256: hex.EncodeToString(h.Sum(nil)), Custom: custom,
	}
	t.Custom.HWRevs = slices.Clone(custom.HWRevs)
	if err := t.Validate(); err != nil {
		return tufrepo.Target{}, usageErrorf("%s: %v", path, err)
	}
	return t, nil
}

// ctxReader stops a long hash when the command is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeSigned writes re-signed metadata to out, or over the input.
func (e *Env) writeSigned(b []byte, out, in, what string) error {
	if out == "" {
		out = in
	}
	if err := atomicfile.WriteFile(out, b, 0o644); err != nil {
		return err
	}
	info, err := tufrepo.Describe(b)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "Wrote %s: %s version %d, %s; signatures by %s\n", out, info.Type, info.Version, what, strings.Join(shortIDs(info.KeyIDs), " "))
	return nil
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[:min(12, len(id))]
	}
	return out
}

func releaseUploadMetadataCommand() *command {
	var role string
	return &command{
		name:  "upload-metadata",
		args:  "FILE...",
		short: "upload signed metadata (release roles, targets, new roots)",
		help: `Sends signed metadata written by updraft release sign or updraft keys.
The role comes from the file name ("5.gw-200.json") or --role. Several
files are one change, stored together or not at all (roots first, in
version order). The server refuses bad signatures, hashes or lengths that
differ from the uploaded artifacts, paths outside the role's delegation,
and answers a stale version with a conflict: fetch the current metadata
(updraft keys and the role's N.<role>.json from GET /api/v1/tuf/metadata)
and sign again.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "the `role` of a single FILE whose name does not say it")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if role != "" && len(args) != 1 {
				return usageErrorf("--role goes with exactly one FILE")
			}
			type file struct {
				role    string
				version int64
				data    []byte
			}
			var files []file
			for _, a := range args {
				b, err := os.ReadFile(a)
				if err != nil {
					return err
				}
				info, err := tufrepo.Describe(b)
				if err != nil {
					return fmt.Errorf("%s: %w", a, err)
				}
				r := role
				if r == "" {
					if info.Type == metadata.ROOT {
						r = metadata.ROOT
					} else if pr, _, err := signing.ParseName(filepath.Base(a)); err == nil && pr != metadata.SNAPSHOT && pr != metadata.TIMESTAMP {
						r = pr
					} else {
						return usageErrorf("%s: name the role with --role (the file name is not N.<role>.json)", a)
					}
				}
				if (r == metadata.ROOT) != (info.Type == metadata.ROOT) {
					return fmt.Errorf("%s is %s metadata, not %s", a, info.Type, r)
				}
				files = append(files, file{role: r, version: info.Version, data: b})
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			var res client.MetadataStored
			if len(files) == 1 {
				res, err = c.UploadRole(ctx, files[0].role, files[0].data)
			} else {
				var roots [][]byte
				var targets []client.RoleMetadata
				slices.SortStableFunc(files, func(a, b file) int {
					ra, rb := a.role == metadata.ROOT, b.role == metadata.ROOT
					switch {
					case ra && rb:
						return cmp.Compare(a.version, b.version)
					case ra:
						return -1
					case rb:
						return 1
					}
					return 0
				})
				for _, f := range files {
					if f.role == metadata.ROOT {
						roots = append(roots, f.data)
					} else {
						targets = append(targets, client.RoleMetadata{Role: f.role, Metadata: f.data})
					}
				}
				res, err = c.ApplyMetadata(ctx, roots, targets)
			}
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			printStored(e, res)
			return nil
		},
	}
}

func releaseFinalizeCommand() *command {
	return &command{
		name:  "finalize",
		args:  "RELEASE",
		short: "let devices running a release raise their security floor",
		help: `Do this once the release has proven itself. Devices that run it receive a
director-signed finalize document at their next check-in and raise their
security floor to the release's signed security version; after that they
refuse any build below it, so a fleet-wide rollback below this release is
no longer possible.`,
		api: true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			id, err := releaseID(ctx, c, args[0])
			if err != nil {
				return err
			}
			f, err := c.FinalizeRelease(ctx, id)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(f)
			}
			fmt.Fprintf(e.Stdout, "finalized release %s (security version %d) at %s: devices running it raise their floor at their next check-in\n",
				f.Version, f.SecurityVersion, fmtTime(f.FinalizedAt))
			return nil
		},
	}
}
