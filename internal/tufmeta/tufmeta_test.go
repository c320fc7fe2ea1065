package tufmeta_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

func valid() tufmeta.TargetCustom {
	return tufmeta.TargetCustom{
		Version: "1.2.0", SecurityVersion: 3, DeviceType: "gw-200", HWRevs: []string{"A", "B"},
		ArtifactType: tufmeta.TypeRawImage, Compression: tufmeta.CompressionZstd, Component: "rootfs",
	}
}

func TestTargetCustomValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*tufmeta.TargetCustom)
		ok   bool
	}{
		{"valid", func(*tufmeta.TargetCustom) {}, true},
		{"delta with base", func(c *tufmeta.TargetCustom) { c.ArtifactType, c.FromVersion = tufmeta.TypeDelta, "1.1.0" }, true},
		{"no version", func(c *tufmeta.TargetCustom) { c.Version = "" }, false},
		{"negative security version", func(c *tufmeta.TargetCustom) { c.SecurityVersion = -1 }, false},
		{"device type with slash", func(c *tufmeta.TargetCustom) { c.DeviceType = "gw/200" }, false},
		{"no hardware revision", func(c *tufmeta.TargetCustom) { c.HWRevs = nil }, false},
		{"bad hardware revision", func(c *tufmeta.TargetCustom) { c.HWRevs = []string{"A B"} }, false},
		{"unknown artifact type", func(c *tufmeta.TargetCustom) { c.ArtifactType = "exe" }, false},
		{"unknown compression", func(c *tufmeta.TargetCustom) { c.Compression = "xz" }, false},
		{"bad component", func(c *tufmeta.TargetCustom) { c.Component = "" }, false},
		{"delta without base", func(c *tufmeta.TargetCustom) { c.ArtifactType = tufmeta.TypeDelta }, false},
		{"base without delta", func(c *tufmeta.TargetCustom) { c.FromVersion = "1.1.0" }, false},
	} {
		c := valid()
		tc.edit(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSuitsAndEqual(t *testing.T) {
	t.Parallel()
	c := valid()
	if !c.Suits("gw-200", "B") || c.Suits("gw-200", "C") || c.Suits("gw-300", "A") {
		t.Fatal("Suits")
	}
	d := valid()
	if !c.Equal(d) {
		t.Fatal("equal customs differ")
	}
	for _, edit := range []func(*tufmeta.TargetCustom){
		func(x *tufmeta.TargetCustom) { x.SecurityVersion++ },
		func(x *tufmeta.TargetCustom) { x.HWRevs = []string{"B", "A"} },
		func(x *tufmeta.TargetCustom) { x.Compression = "" },
		func(x *tufmeta.TargetCustom) { x.FromVersion = "1.0.0" },
	} {
		d := valid()
		edit(&d)
		if c.Equal(d) {
			t.Errorf("Equal missed a difference: %+v", d)
		}
	}
}

func TestTargetPathAndDelegation(t *testing.T) {
	t.Parallel()
	p := tufmeta.TargetPath("gw-200", "rootfs", "1.2.0+build.7", "image.bin")
	dt, comp, ver, name, err := tufmeta.SplitTargetPath(p)
	if err != nil || dt != "gw-200" || comp != "rootfs" || ver != "1.2.0+build.7" || name != "image.bin" {
		t.Fatalf("SplitTargetPath(%q) = %q %q %q %q %v", p, dt, comp, ver, name, err)
	}
	for _, bad := range []string{"gw-200/rootfs/1.0", "gw-200/rootfs/1.0/a/b", "gw-200//1.0/a", "gw-200/../1.0/a", "gw 200/r/1/a"} {
		if _, _, _, _, err := tufmeta.SplitTargetPath(bad); err == nil {
			t.Errorf("SplitTargetPath(%q) accepted", bad)
		}
	}
	// The delegation patterns match every target of the line and nothing else.
	role := metadata.DelegatedRole{Name: "gw-200", Paths: tufmeta.DelegationPaths("gw-200")}
	for path, want := range map[string]bool{p: true, "gw-300/rootfs/1.0.0/image.bin": false, "gw-200/image.bin": false} {
		if got, _ := role.IsDelegatedPath(path); got != want {
			t.Errorf("IsDelegatedPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestValidRoleName(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"gw-200": true, "gw-200-modem": true, "targets": false, "root": false, tufmeta.RoleDirector: false,
		"../x": false, ".hidden": false, "": false, "a/b": false,
	} {
		if got := tufmeta.ValidRoleName(name); got != want {
			t.Errorf("ValidRoleName(%q) = %v", name, got)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	l := tufmeta.Limits{Timestamp: 1}.WithDefaults()
	d := tufmeta.DefaultLimits()
	if l.Timestamp != 1 || l.Root != d.Root || l.Director != d.Director {
		t.Fatalf("WithDefaults = %+v", l)
	}
	if l.ForRole("targets") != d.Targets || l.ForRole("gw-200") != d.Delegated || l.ForRole("timestamp") != 1 {
		t.Fatal("ForRole")
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	w := tufmeta.Window{Days: []time.Weekday{time.Monday}, Start: "02:00", Duration: tufmeta.Duration(90 * time.Minute)}
	b, err := json.Marshal(w)
	if err != nil || string(b) != `{"days":[1],"start":"02:00","duration":"1h30m0s"}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var back tufmeta.Window
	if err := json.Unmarshal(b, &back); err != nil || back.Duration != w.Duration {
		t.Fatalf("unmarshal = %+v, %v", back, err)
	}
	for _, bad := range []string{`{"duration":90}`, `{"duration":"-1m"}`, `{"duration":"soon"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
