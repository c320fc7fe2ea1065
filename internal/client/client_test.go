package client_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/client/clienttest"
	"github.com/updraft/updraft/internal/store"
)

func TestParseServerURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"https://updraft.example.com/", "https://updraft.example.com", ""},
		{"https://ops.example.com/updraft/", "https://ops.example.com/updraft", ""},
		{"http://[::1]:8080", "http://[::1]:8080", ""},
		{"", "", "empty"},
		{"127.0.0.1:8080", "", "scheme must be http or https"},
		{"ftp://example.com", "", "scheme must be http or https"},
		{"http://", "", "no host"},
		{"http://:8080", "", "no host"},
		{"http://admin:pw@example.com", "", "credentials belong in the token"},
		{"http://example.com/?x=1", "", "must not have a query"},
		{"http://example.com/#top", "", "must not have a fragment"},
		{"http://example.com:0", "", "bad port"},
		{"http://example.com:99999", "", "bad port"},
		{"http://example.com:http", "", "invalid"},
		{"http://exa mple.com", "", "invalid"},
	}
	for _, tt := range tests {
		u, err := client.ParseServerURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseServerURL(%q) error %v, want one containing %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || u.String() != tt.want {
			t.Errorf("ParseServerURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
}

func newClient(t *testing.T, s *clienttest.Server, token string) *client.Client {
	t.Helper()
	c, err := client.New(s.URL, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiError(t *testing.T, err error) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return ae
}

// TestAgainstServer drives the client through the real management API.
func TestAgainstServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := clienttest.NewServer(t)
	c := newClient(t, s, s.Admin)

	dev := s.Enroll(clienttest.Device{Serial: "SN-1", DeviceType: "gw-200", HWRev: "B", Region: "eu-west"})
	for i := range 3 {
		s.Enroll(clienttest.Device{Serial: "SN-X" + string(rune('a'+i)), DeviceType: "gw-100", HWRev: "A", Accept: true})
	}

	t.Run("devices", func(t *testing.T) {
		l, err := c.ListDevices(ctx, client.DeviceListOptions{Filter: `device_type == "gw-200"`})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 1 || l.Items[0].ID != dev.ID || l.Next != "" {
			t.Fatalf("filtered list = %+v", l)
		}
		// Paging: pages of two, following the cursor, see every device once.
		seen := map[string]bool{}
		o := client.DeviceListOptions{ListOptions: client.ListOptions{Limit: 2}}
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("paging does not end")
			}
			l, err := c.ListDevices(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range l.Items {
				if seen[d.ID] {
					t.Fatalf("device %s on two pages", d.ID)
				}
				seen[d.ID] = true
			}
			if l.Next == "" {
				break
			}
			o.After = l.Next
		}
		if len(seen) != 4 {
			t.Fatalf("paging saw %d devices, want 4", len(seen))
		}
		n, err := c.CountDevices(ctx, `hw_rev == "A"`)
		if err != nil || n != 3 {
			t.Fatalf("CountDevices = %d, %v; want 3", n, err)
		}

		d, err := c.AcceptDevice(ctx, dev.ID)
		if err != nil || d.State != store.DeviceAccepted {
			t.Fatalf("AcceptDevice = %+v, %v", d, err)
		}
		d, err = c.TagDevice(ctx, dev.ID, []string{"lab", "canary"}, nil)
		if err != nil || strings.Join(d.Tags, ",") != "canary,lab" {
			t.Fatalf("TagDevice = %v, %v", d.Tags, err)
		}
		dd, err := c.Device(ctx, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if dd.Serial != "SN-1" || len(dd.Credentials) != 1 || dd.Credentials[0].Kind != store.CredPublicKey || dd.ActiveAssignment != nil {
			t.Fatalf("Device = %+v", dd)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, err := c.Device(ctx, "no-such-device")
		ae := apiError(t, err)
		if ae.Status != 404 || ae.Code != "not_found" || !client.IsNotFound(err) {
			t.Fatalf("missing device: %#v", ae)
		}
		if got := ae.Error(); !strings.HasSuffix(got, "(not_found)") || !strings.Contains(got, "no-such-device") {
			t.Fatalf("Error() = %q", got)
		}
		_, err = c.ListDevices(ctx, client.DeviceListOptions{Filter: `version <`})
		if ae := apiError(t, err); ae.Status != 400 || ae.Code != "bad_filter" || !strings.Contains(ae.Message, "column") {
			t.Fatalf("bad filter: %#v", ae)
		}
		anon := newClient(t, s, "")
		_, err = anon.ListReleases(ctx, client.ListOptions{})
		if ae := apiError(t, err); ae.Status != 401 || ae.Code != "unauthorized" {
			t.Fatalf("no token: %#v", ae)
		}
		viewer := newClient(t, s, s.Token(store.RoleViewer, ""))
		_, err = viewer.CreateRelease(ctx, client.NewRelease{Version: "9.9.9"})
		if ae := apiError(t, err); ae.Status != 403 || ae.Code != "forbidden" {
			t.Fatalf("viewer writes: %#v", ae)
		}
	})

	t.Run("releases", func(t *testing.T) {
		rel, err := c.CreateRelease(ctx, client.NewRelease{Version: "1.2.0", Notes: "n", SecurityVersion: 4, Severity: "high", CVEs: []string{"CVE-2026-0001"}})
		if err != nil {
			t.Fatal(err)
		}
		if rel.State != store.ReleaseDraft || rel.SecurityVersion != 4 || rel.Severity != store.SeverityHigh {
			t.Fatalf("CreateRelease = %+v", rel)
		}
		content := bytes.Repeat([]byte("firmware"), 100_000)
		sum := sha256.Sum256(content)
		var (
			mu       sync.Mutex
			progress []int64
		)
		a, err := c.UploadArtifact(ctx, "1.2.0", client.Upload{
			DeviceType: "gw-200", HWRevs: []string{"B", "C"}, Type: "raw-image", Name: "fw.img",
			SHA256: hex.EncodeToString(sum[:]), Size: int64(len(content)), Body: bytes.NewReader(content),
			Progress: func(n int64) { mu.Lock(); progress = append(progress, n); mu.Unlock() },
		})
		if err != nil {
			t.Fatal(err)
		}
		if a.SHA256 != hex.EncodeToString(sum[:]) || a.Size != int64(len(content)) || strings.Join(a.HWRevs, ",") != "B,C" {
			t.Fatalf("UploadArtifact = %+v", a)
		}
		mu.Lock()
		if len(progress) == 0 || progress[len(progress)-1] != int64(len(content)) {
			t.Errorf("progress callbacks %v do not end at %d", progress, len(content))
		}
		for i := 1; i < len(progress); i++ {
			if progress[i] <= progress[i-1] {
				t.Errorf("progress not increasing: %v", progress)
				break
			}
		}
		mu.Unlock()
		if up := s.Uploads(); len(up) != 1 || up[0].Header.Get("X-Updraft-SHA256") != hex.EncodeToString(sum[:]) || up[0].ContentLength != int64(len(content)) {
			t.Fatalf("uploads seen by the server: %+v", up)
		}
		if _, err := s.Blobs.Stat(ctx, a.SHA256); err != nil {
			t.Fatalf("blob not stored: %v", err)
		}

		// A digest that does not match stores nothing.
		other := []byte("other content")
		_, err = c.UploadArtifact(ctx, rel.ID, client.Upload{
			DeviceType: "gw-100", HWRevs: []string{"A"}, Type: "raw-image", Name: "x.img",
			SHA256: hex.EncodeToString(sum[:]), Size: int64(len(other)), Body: bytes.NewReader(other),
		})
		if ae := apiError(t, err); ae.Code != "digest_mismatch" {
			t.Fatalf("mismatched digest: %#v", ae)
		}
		// A body shorter than its declared size is the caller's fault, named as such.
		_, err = c.UploadArtifact(ctx, rel.ID, client.Upload{
			DeviceType: "gw-100", HWRevs: []string{"A"}, Type: "raw-image", Name: "x.img",
			Size: 100, Body: strings.NewReader("short"),
		})
		if err == nil || !strings.Contains(err.Error(), "content ended after 5 of 100 bytes") {
			t.Fatalf("short body: %v", err)
		}

		rel, err = c.PublishRelease(ctx, "1.2.0")
		if err != nil || rel.State != store.ReleasePublished || len(rel.Artifacts) != 1 {
			t.Fatalf("PublishRelease = %+v, %v", rel, err)
		}
		_, err = c.UploadArtifact(ctx, rel.ID, client.Upload{DeviceType: "gw-100", HWRevs: []string{"A"}, Type: "file", Name: "y", Size: 1, Body: strings.NewReader("y")})
		if ae := apiError(t, err); ae.Status != 409 || ae.Code != "immutable" {
			t.Fatalf("upload to published: %#v", ae)
		}
		rel, err = c.MarkBad(ctx, rel.ID, client.MarkBadRequest{Bad: true, Reason: "boot loop"})
		if err != nil || !rel.Bad || rel.BadReason != "boot loop" {
			t.Fatalf("MarkBad = %+v, %v", rel, err)
		}
		_, err = c.AssignRelease(ctx, dev.ID, client.AssignRequest{Release: "1.2.0"})
		if ae := apiError(t, err); ae.Status != 409 {
			t.Fatalf("assigning a bad release: %#v", ae)
		}
		res, err := c.AssignRelease(ctx, dev.ID, client.AssignRequest{Release: "1.2.0", AllowBad: true})
		if err != nil || res.Assignment.DeviceID != dev.ID || res.Assignment.Version != "1.2.0" || res.Superseded != nil {
			t.Fatalf("AssignRelease = %+v, %v", res, err)
		}
		rel, err = c.MarkAffected(ctx, rel.ID, []string{"CVE-2026-0002"})
		if err != nil || strings.Join(rel.AffectedBy, ",") != "CVE-2026-0002" {
			t.Fatalf("MarkAffected = %+v, %v", rel, err)
		}
		l, err := c.ListReleases(ctx, client.ListOptions{})
		if err != nil || len(l.Items) != 1 || l.Items[0].Version != "1.2.0" {
			t.Fatalf("ListReleases = %+v, %v", l, err)
		}
		al, err := c.ListAssignments(ctx, dev.ID, client.ListOptions{})
		if err != nil || len(al.Items) != 1 || al.Items[0].ID != res.Assignment.ID {
			t.Fatalf("ListAssignments = %+v, %v", al, err)
		}
	})

	t.Run("operators", func(t *testing.T) {
		tok, err := c.CreateToken(ctx, client.NewToken{Name: "ci", Role: "operator", ExpiresIn: 90 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.Token, "updraft_"+tok.ID+"_") || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(clienttest.Start().Add(90*time.Minute)) {
			t.Fatalf("CreateToken = %+v", tok)
		}
		ci := newClient(t, s, tok.Token)
		if _, err := ci.ListDevices(ctx, client.DeviceListOptions{}); err != nil {
			t.Fatalf("new token does not work: %v", err)
		}
		if err := c.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		_, err = ci.ListDevices(ctx, client.DeviceListOptions{})
		if ae := apiError(t, err); ae.Status != 401 {
			t.Fatalf("revoked token: %#v", ae)
		}

		u, err := c.CreateUser(ctx, client.NewUser{Name: "alice", Role: "viewer"})
		if err != nil || u.Password == "" || !u.MustChangePassword {
			t.Fatalf("CreateUser = %+v, %v", u, err)
		}
		if err := c.SetPassword(ctx, u.ID, client.SetPasswordRequest{Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
		ul, err := c.ListUsers(ctx, client.ListOptions{})
		if err != nil || len(ul.Items) != 1 || ul.Items[0].Name != "alice" {
			t.Fatalf("ListUsers = %+v, %v", ul, err)
		}
		audit, err := c.ListAudit(ctx, client.AuditListOptions{ObjectType: "release"})
		if err != nil || len(audit.Items) == 0 {
			t.Fatalf("ListAudit = %+v, %v", audit, err)
		}
		for _, e := range audit.Items {
			if e.ObjectType != "release" {
				t.Fatalf("audit filter let through %+v", e)
			}
		}
		v, err := c.VerifyAudit(ctx)
		if err != nil || !v.OK || v.Checked == 0 {
			t.Fatalf("VerifyAudit = %+v, %v", v, err)
		}
	})
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := client.New("http://"+addr, client.Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListReleases(context.Background(), client.ListOptions{})
	var ne *client.NetError
	if !errors.As(err, &ne) {
		t.Fatalf("error %v (%T) is not a *NetError", err, err)
	}
	if want := "cannot reach server http://" + addr + ": connection refused"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// TestCanceledUpload checks that canceling the context stops an upload and
// reports the cancellation, not a network failure.
func TestCanceledUpload(t *testing.T) {
	t.Parallel()
	s := clienttest.NewServer(t)
	c := newClient(t, s, s.Admin)
	ctx, cancel := context.WithCancel(context.Background())
	rel, err := c.CreateRelease(ctx, client.NewRelease{Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	body := &cancelingReader{after: 1 << 16, cancel: cancel}
	_, err = c.UploadArtifact(ctx, rel.ID, client.Upload{DeviceType: "d", HWRevs: []string{"A"}, Type: "file", Name: "f", Size: 1 << 30, Body: body})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled upload: %v", err)
	}
	r, err := c.Release(context.Background(), "2.0.0")
	if err != nil || len(r.Artifacts) != 0 {
		t.Fatalf("after a canceled upload the release has %+v, %v", r.Artifacts, err)
	}
}

// cancelingReader yields zeros and calls cancel once it has yielded after
// bytes, like an operator pressing ^C in the middle of an upload.
type cancelingReader struct {
	n, after int
	cancel   func()
}

func (r *cancelingReader) Read(p []byte) (int, error) {
	r.n += len(p)
	if r.n >= r.after {
		r.cancel()
	}
	clear(p)
	return len(p), nil
}
