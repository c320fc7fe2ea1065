package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

func releaseUploadCommand() *command {
	var (
		deviceType, hwRevs, typ, component, compression, name, fromVersion string
	)
	return &command{
		name:  "upload",
		args:  "RELEASE FILE",
		short: "upload an artifact into a draft release",
		help: `The file is hashed first and streamed to the server with its SHA-256, so
the server refuses content that changed or was damaged on the way. On a
terminal a progress bar shows percent, throughput and time left.

  updraft release upload 1.4.0 gw200-revB.img --device-type gw-200 --hw-rev B,C --type raw-image`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&deviceType, "device-type", "", "device `type` the artifact is for (required)")
			fs.StringVar(&hwRevs, "hw-rev", "", "comma-separated hardware `revisions` it suits (required)")
			fs.StringVar(&typ, "type", "", "artifact `type`: raw-image, file, archive, script, swu, rauc-bundle, mender or delta (required)")
			fs.StringVar(&component, "component", "", "`component` it updates (default: the main one)")
			fs.StringVar(&compression, "compression", "", "`compression` of the content, e.g. gzip, xz, zstd (default: none)")
			fs.StringVar(&name, "name", "", "artifact `name` (default: the file's base name)")
			fs.StringVar(&fromVersion, "from-version", "", "`version` a delta artifact applies to")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			switch {
			case deviceType == "":
				return usageErrorf("--device-type is required")
			case len(splitList(hwRevs)) == 0:
				return usageErrorf("--hw-rev is required")
			case typ == "":
				return usageErrorf("--type is required")
			}
			switch store.ArtifactType(typ) {
			case store.ArtifactRawImage, store.ArtifactFile, store.ArtifactArchive, store.ArtifactScript,
				store.ArtifactSWU, store.ArtifactRAUCBundle, store.ArtifactMender, store.ArtifactDelta:
			default:
				return usageErrorf("invalid value %q for flag --type: want raw-image, file, archive, script, swu, rauc-bundle, mender or delta", typ)
			}
			if (fromVersion != "") != (store.ArtifactType(typ) == store.ArtifactDelta) {
				return usageErrorf("--from-version goes with --type delta, and only with it")
			}
			path := args[1]
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			if !st.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", path)
			}
			if name == "" {
				name = filepath.Base(path)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			// Resolve the release before reading a large file, so a typo
			// fails at once.
			rel, err := c.Release(ctx, args[0])
			if err != nil {
				return err
			}

			size := st.Size()
			sum, err := e.hashFile(ctx, f, size, name)
			if err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			bar := e.newProgress("upload", size)
			a, err := c.UploadArtifact(ctx, rel.ID, client.Upload{
				DeviceType:  deviceType,
				HWRevs:      splitList(hwRevs),
				Type:        typ,
				Component:   component,
				Name:        name,
				Compression: compression,
				FromVersion: fromVersion,
				SHA256:      sum,
				Size:        size,
				Body:        f,
				Progress:    bar.set,
			})
			bar.done(err == nil)
			if err != nil {
				return err
			}
			if a.SHA256 != sum || a.Size != size {
				return fmt.Errorf("server stored %d bytes with SHA-256 %s; sent %d bytes with SHA-256 %s", a.Size, a.SHA256, size, sum)
			}
			if e.json() {
				return e.printJSON(a)
			}
			fmt.Fprintf(e.Stdout, "uploaded %s to release %s: %s, %s rev %s, sha256 %s\n",
				a.Name, rel.Version, fmtBytes(a.Size), a.DeviceType, strings.Join(a.HWRevs, ","), a.SHA256)
			return nil
		},
	}
}

// hashFile computes the SHA-256 of the first size bytes of r, showing
// progress on a terminal.
func (e *Env) hashFile(ctx context.Context, r io.Reader, size int64, name string) (string, error) {
	bar := e.newProgress("sha256", size)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	for n < size {
		if err := ctx.Err(); err != nil {
			bar.done(false)
			return "", err
		}
		m, err := r.Read(buf[:min(int64(len(buf)), size-n)])
		h.Write(buf[:m])
		n += int64(m)
		bar.set(n)
		if err == io.EOF && n < size {
			bar.done(false)
			return "", fmt.Errorf("%s shrank while reading: %d of %d bytes", name, n, size)
		}
		if err != nil && err != io.EOF {
			bar.done(false)
			return "", fmt.Errorf("read %s: %w", name, err)
		}
	}
	bar.done(true)
	return hex.EncodeToString(h.Sum(nil)), nil
}
