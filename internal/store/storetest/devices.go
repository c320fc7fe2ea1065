package storetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

const pendingTTL = 24 * time.Hour

// regKey returns a fresh Ed25519 public key credential, as the device API
// hands it to the store after verifying an enrollment.
func regKey(t *testing.T) store.Credential {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return store.Credential{
		TenantID:    store.DefaultTenant,
		Kind:        store.CredPublicKey,
		Algorithm:   "ed25519",
		Fingerprint: hex.EncodeToString(sum[:]),
		Material:    string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}
}

func regParams(serial string, key store.Credential, now time.Time) store.EnrollParams {
	return store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: "gw-200", HWRev: "B",
		Region: "eu-west", TimeZone: "Europe/Berlin", Attributes: map[string]string{"mac": "00:11:22:33:44:55"},
		Protocol: store.ProtocolNative, Key: key, Now: now, PendingTTL: pendingTTL, MaxPending: 100,
	}
}

func regEnroll(t *testing.T, s *sqlstore.Store, p store.EnrollParams) store.Device {
	t.Helper()
	d, err := s.Enroll(context.Background(), p)
	if err != nil {
		t.Fatalf("enroll %s: %v", p.Serial, err)
	}
	return d
}

// regAccepted enrolls a device and accepts it.
func regAccepted(t *testing.T, s *sqlstore.Store, serial string, now time.Time) (store.Device, store.Credential) {
	t.Helper()
	key := regKey(t)
	d := regEnroll(t, s, regParams(serial, key, now))
	d, err := s.AcceptDevice(context.Background(), store.DefaultTenant, d.ID, Admin, now)
	if err != nil {
		t.Fatal(err)
	}
	return d, key
}

// regState is what a failed call must leave unchanged.
type regState struct{ devices, credentials, audit int }

func regSnapshot(t *testing.T, s *sqlstore.Store) regState {
	t.Helper()
	var st regState
	ctx := context.Background()
	for q, dst := range map[string]*int{
		`SELECT COUNT(*) FROM devices`:            &st.devices,
		`SELECT COUNT(*) FROM device_credentials`: &st.credentials,
		`SELECT COUNT(*) FROM audit_log`:          &st.audit,
	} {
		if err := s.DB().QueryRowContext(ctx, q).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// regAudits returns the tenant's audit entries with this action, newest first.
func regAudits(t *testing.T, s *sqlstore.Store, action string) []store.AuditEntry {
	t.Helper()
	var out []store.AuditEntry
	after := ""
	for {
		page, next, err := s.ListAudit(context.Background(), store.DefaultTenant, store.AuditQuery{Action: action, Page: store.Page{After: after}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		after = next
	}
}

// regVerifyAudit checks that the chain verifies.
func regVerifyAudit(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	if n, err := s.VerifyAudit(context.Background(), store.DefaultTenant); err != nil {
		t.Fatalf("audit chain after %d entries: %v", n, err)
	}
}

func testDevices(t *testing.T, h Harness) {
	t.Run("EnrollPendingAndRepeat", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		key := regKey(t)
		d := regEnroll(t, s, regParams("SN-1", key, T0))
		if d.State != store.DevicePending || d.ID == "" || d.Serial != "SN-1" || d.DeviceType != "gw-200" || d.HWRev != "B" ||
			d.Region != "eu-west" || d.Protocol != store.ProtocolNative || d.Attributes["mac"] != "00:11:22:33:44:55" {
			t.Fatalf("enrolled device = %+v", d)
		}
		if d.PendingExpiresAt == nil || !d.PendingExpiresAt.Equal(T0.Add(pendingTTL)) || !d.CreatedAt.Equal(T0) {
			t.Fatalf("pending expiry %v, created %v; want %v, %v", d.PendingExpiresAt, d.CreatedAt, T0.Add(pendingTTL), T0)
		}
		got, cred, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredPublicKey, key.Fingerprint)
		if err != nil || got.ID != d.ID || cred.State != store.CredActive || cred.DeviceID != d.ID || cred.Material != key.Material {
			t.Fatalf("DeviceByCredential = %+v, %+v, %v", got, cred, err)
		}
		entries := regAudits(t, s, "device.enroll")
		if len(entries) != 1 || entries[0].Actor.Kind != store.ActorDevice || entries[0].Actor.ID != d.ID || entries[0].ObjectID != d.ID {
			t.Fatalf("enroll audit entries = %+v", entries)
		}
		before := regSnapshot(t, s)
		later := T0.Add(time.Hour)
		again := regEnroll(t, s, regParams("SN-1", key, later))
		if again.ID != d.ID || again.State != store.DevicePending || !again.PendingExpiresAt.Equal(later.Add(pendingTTL)) {
			t.Fatalf("repeated enrollment = %+v; want the same pending device with a fresh expiry", again)
		}
		if stored, _ := s.Device(ctx, store.DefaultTenant, d.ID); !stored.PendingExpiresAt.Equal(later.Add(pendingTTL)) {
			t.Fatalf("stored expiry %v, want %v", stored.PendingExpiresAt, later.Add(pendingTTL))
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("repeated enrollment changed counts %+v → %+v", before, after)
		}
		if _, err := s.Device(ctx, store.DefaultTenant, "no-such-device"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown device: %v, want ErrNotFound", err)
		}
		if _, _, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredPublicKey, regKey(t).Fingerprint); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown key: %v, want ErrNotFound", err)
		}
		regVerifyAudit(t, s)
	})

	t.Run("EnrollPreauthorized", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		key := regKey(t)
		pre, err := s.PreauthorizeKey(ctx, key, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		if pre.State != store.CredPreauthorized || pre.DeviceID != "" || pre.ID == "" {
			t.Fatalf("preauthorized credential = %+v", pre)
		}
		if _, err := s.PreauthorizeKey(ctx, key, Admin, T0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("preauthorizing a key twice: %v, want ErrConflict", err)
		}
		d := regEnroll(t, s, regParams("SN-1", key, T0.Add(time.Minute)))
		if d.State != store.DeviceAccepted || d.PendingExpiresAt != nil {
			t.Fatalf("device with a preauthorized key = %+v; want accepted at once", d)
		}
		creds, err := s.ListCredentials(ctx, store.DefaultTenant, d.ID)
		if err != nil || len(creds) != 1 || creds[0].ID != pre.ID || creds[0].State != store.CredActive || creds[0].DeviceID != d.ID {
			t.Fatalf("credentials after preauthorized enrollment = %+v, %v", creds, err)
		}
		if len(regAudits(t, s, "credential.preauthorize")) != 1 || len(regAudits(t, s, "device.enroll")) != 1 {
			t.Fatal("preauthorization and enrollment must each leave one audit entry")
		}

		// A key pinned to a serial admits only that serial.
		pinned := regKey(t)
		pinned.PreauthSerial = "SN-PINNED"
		if _, err := s.PreauthorizeKey(ctx, pinned, Admin, T0); err != nil {
			t.Fatal(err)
		}
		before := regSnapshot(t, s)
		if _, err := s.Enroll(ctx, regParams("SN-OTHER", pinned, T0)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("pinned key, other serial: %v, want ErrConflict", err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused enrollment changed counts %+v → %+v", before, after)
		}
		if d := regEnroll(t, s, regParams("SN-PINNED", pinned, T0)); d.State != store.DeviceAccepted {
			t.Fatalf("pinned key, its serial: %s, want accepted", d.State)
		}

		// Re-keying: after an operator revokes a device's key, a new key
		// enrolls for the same serial only once preauthorized.
		if err := s.RevokeCredential(ctx, store.DefaultTenant, pre.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		newKey := regKey(t)
		if _, err := s.Enroll(ctx, regParams("SN-1", newKey, T0)); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("new key without preauthorization: %v, want ErrConflict", err)
		}
		if _, err := s.PreauthorizeKey(ctx, newKey, Admin, T0); err != nil {
			t.Fatal(err)
		}
		rekeyed := regEnroll(t, s, regParams("SN-1", newKey, T0))
		if rekeyed.ID != d.ID || rekeyed.State != store.DeviceAccepted || rekeyed.CredentialEpoch != d.CredentialEpoch+1 {
			t.Fatalf("re-keyed device = %+v; want device %s, accepted, epoch %d", rekeyed, d.ID, d.CredentialEpoch+1)
		}
		regVerifyAudit(t, s)
	})

	t.Run("ConflictingEnrollmentChangesNothing", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		keyA, keyB := regKey(t), regKey(t)
		regEnroll(t, s, regParams("SN-1", keyA, T0))
		before := regSnapshot(t, s)
		for _, tc := range []struct {
			name   string
			serial string
			key    store.Credential
		}{
			{"same serial, other key", "SN-1", keyB},
			{"same key, other serial", "SN-2", keyA},
		} {
			_, err := s.Enroll(ctx, regParams(tc.serial, tc.key, T0))
			var ce *store.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, store.ErrConflict) {
				t.Fatalf("%s: err = %v, want a *store.ConflictError", tc.name, err)
			}
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("conflicting enrollments changed counts %+v → %+v", before, after)
		}
		if _, _, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredPublicKey, keyB.Fingerprint); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refused key is findable: %v", err)
		}
		bad := regParams("SN-3", regKey(t), T0)
		bad.Protocol = "carrier-pigeon"
		if _, err := s.Enroll(ctx, bad); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("unknown protocol: %v, want ErrInvalidRequest", err)
		}
		bad = regParams("", regKey(t), T0)
		if _, err := s.Enroll(ctx, bad); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("empty serial: %v, want ErrInvalidRequest", err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("invalid enrollments changed counts %+v → %+v", before, after)
		}
	})

	t.Run("PendingCapAndExpiry", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		enroll := func(serial string, key store.Credential, now time.Time) (store.Device, error) {
			p := regParams(serial, key, now)
			p.MaxPending = 3
			return s.Enroll(ctx, p)
		}
		var devs []store.Device
		keys := map[string]store.Credential{}
		for i := range 3 {
			serial := fmt.Sprintf("SN-%d", i)
			keys[serial] = regKey(t)
			d, err := enroll(serial, keys[serial], T0)
			if err != nil {
				t.Fatal(err)
			}
			devs = append(devs, d)
		}
		before := regSnapshot(t, s)
		if _, err := enroll("SN-3", regKey(t), T0); !errors.Is(err, store.ErrPendingLimit) {
			t.Fatalf("enrollment over the cap: %v, want ErrPendingLimit", err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused enrollment changed counts %+v → %+v", before, after)
		}
		// A repeated enrollment of a pending device is not a new one.
		if _, err := enroll("SN-0", keys["SN-0"], T0.Add(time.Hour)); err != nil {
			t.Fatalf("repeated enrollment at the cap: %v", err)
		}
		// Accepting frees a slot.
		if _, err := s.AcceptDevice(ctx, store.DefaultTenant, devs[2].ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, err := enroll("SN-3", regKey(t), T0); err != nil {
			t.Fatalf("enrollment after accepting one: %v", err)
		}
		// Expired enrollments do not count; SN-0 was refreshed an hour later.
		expired := T0.Add(pendingTTL)
		if _, err := enroll("SN-4", regKey(t), expired); err != nil {
			t.Fatalf("enrollment after two of three expired: %v", err)
		}
		// An expired device coming back with its key takes a slot again.
		key1 := keys["SN-1"]
		if d, err := enroll("SN-1", key1, expired); err != nil || d.ID != devs[1].ID || !d.PendingExpiresAt.Equal(expired.Add(pendingTTL)) {
			t.Fatalf("revived enrollment = %+v, %v; want device %s pending until %v", d, err, devs[1].ID, expired.Add(pendingTTL))
		}
		// Replacing the stale enrollment of a serial (a device back with a
		// new key) still honours the cap; the refused call leaves the stale
		// enrollment in place.
		d, err := enroll("SN-3", regKey(t), T0.Add(pendingTTL+time.Second))
		if !errors.Is(err, store.ErrPendingLimit) {
			t.Fatalf("cap reached by SN-0, SN-1, SN-4 (SN-3 expired): %+v, %v; want ErrPendingLimit", d, err)
		}
		n, err := s.ExpirePending(ctx, T0.Add(pendingTTL+time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("ExpirePending = %d, %v; want 2 (SN-0 and SN-3)", n, err)
		}
		if _, err := s.Device(ctx, store.DefaultTenant, devs[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired device still there: %v", err)
		}
		if _, _, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredPublicKey, keys["SN-0"].Fingerprint); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired device's key still works: %v", err)
		}
		if d, err := s.Device(ctx, store.DefaultTenant, devs[2].ID); err != nil || d.State != store.DeviceAccepted {
			t.Fatalf("accepted device after expiry: %+v, %v", d, err)
		}
		if got := regAudits(t, s, "device.expire"); len(got) != 2 || got[0].Actor.Kind != store.ActorSystem {
			t.Fatalf("expiry audit entries = %+v", got)
		}
		if n, err := s.ExpirePending(ctx, T0.Add(pendingTTL+time.Hour)); err != nil || n != 0 {
			t.Fatalf("second ExpirePending = %d, %v; want 0", n, err)
		}
		regVerifyAudit(t, s)
	})

	t.Run("ExpiredSerialReenrollsWithNewKey", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		old := regEnroll(t, s, regParams("SN-1", regKey(t), T0))
		if _, err := s.SetTags(ctx, store.DefaultTenant, old.ID, []string{"lab"}, nil, Admin, T0); err != nil {
			t.Fatal(err)
		}
		fresh := regEnroll(t, s, regParams("SN-1", regKey(t), T0.Add(pendingTTL)))
		if fresh.ID == old.ID || fresh.State != store.DevicePending || len(fresh.Tags) != 0 {
			t.Fatalf("re-enrollment after expiry = %+v; want a new pending device", fresh)
		}
		if _, err := s.Device(ctx, store.DefaultTenant, old.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("stale enrollment: %v, want ErrNotFound", err)
		}
		regVerifyAudit(t, s)
	})

	t.Run("RejectedAndDecommissionedStaySo", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		key := regKey(t)
		d := regEnroll(t, s, regParams("SN-R", key, T0))
		if _, err := s.RejectDevice(ctx, store.DefaultTenant, d.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		before := regSnapshot(t, s)
		for _, k := range []store.Credential{key, regKey(t)} {
			if got := regEnroll(t, s, regParams("SN-R", k, T0)); got.ID != d.ID || got.State != store.DeviceRejected {
				t.Fatalf("enrolling a rejected device = %+v; want it, still rejected", got)
			}
		}
		dd, _ := regAccepted(t, s, "SN-D", T0)
		if _, err := s.DecommissionDevice(ctx, store.DefaultTenant, dd.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if got := regEnroll(t, s, regParams("SN-D", regKey(t), T0)); got.ID != dd.ID || got.State != store.DeviceDecommissioned {
			t.Fatalf("enrolling a decommissioned device = %+v; want it, still decommissioned", got)
		}
		if after := regSnapshot(t, s); after.devices != before.devices+1 || after.credentials != before.credentials+1 {
			t.Fatalf("counts %+v → %+v: enrolling rejected or decommissioned devices must add nothing", before, after)
		}
	})

	t.Run("Transitions", testDeviceTransitions(h))
	t.Run("DecommissionRevokesEverything", testDecommission(h))
	t.Run("Credentials", testCredentials(h))
	t.Run("Search", testDeviceSearch(h))
	t.Run("Report", testDeviceReport(h))
	t.Run("TagsAndGroups", testTagsAndGroups(h))
	t.Run("TouchLastSeen", testTouchLastSeen(h))
	t.Run("ConcurrentEnrollments", testConcurrentEnrollments(h))
}

func testDeviceTransitions(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		reach := map[store.DeviceState][]func(string) (store.Device, error){
			store.DevicePending:  nil,
			store.DeviceAccepted: {func(id string) (store.Device, error) { return s.AcceptDevice(ctx, store.DefaultTenant, id, Admin, T0) }},
			store.DeviceRejected: {func(id string) (store.Device, error) { return s.RejectDevice(ctx, store.DefaultTenant, id, Admin, T0) }},
			store.DeviceDecommissioned: {func(id string) (store.Device, error) {
				return s.DecommissionDevice(ctx, store.DefaultTenant, id, Admin, T0)
			}},
		}
		do := map[store.DeviceState]func(string) (store.Device, error){
			store.DeviceAccepted:       reach[store.DeviceAccepted][0],
			store.DeviceRejected:       reach[store.DeviceRejected][0],
			store.DeviceDecommissioned: reach[store.DeviceDecommissioned][0],
		}
		action := map[store.DeviceState]string{
			store.DeviceAccepted: "device.accept", store.DeviceRejected: "device.reject", store.DeviceDecommissioned: "device.decommission",
		}
		const ok, same, conflict = "ok", "no-op", "conflict"
		for i, tc := range []struct {
			from, to store.DeviceState
			want     string
		}{
			{store.DevicePending, store.DeviceAccepted, ok},
			{store.DevicePending, store.DeviceRejected, ok},
			{store.DevicePending, store.DeviceDecommissioned, ok},
			{store.DeviceAccepted, store.DeviceAccepted, same},
			{store.DeviceAccepted, store.DeviceRejected, ok},
			{store.DeviceAccepted, store.DeviceDecommissioned, ok},
			{store.DeviceRejected, store.DeviceAccepted, ok},
			{store.DeviceRejected, store.DeviceRejected, same},
			{store.DeviceRejected, store.DeviceDecommissioned, ok},
			{store.DeviceDecommissioned, store.DeviceAccepted, conflict},
			{store.DeviceDecommissioned, store.DeviceRejected, conflict},
			{store.DeviceDecommissioned, store.DeviceDecommissioned, same},
		} {
			name := fmt.Sprintf("%s→%s", tc.from, tc.to)
			d := regEnroll(t, s, regParams(fmt.Sprintf("SN-%d", i), regKey(t), T0))
			for _, step := range reach[tc.from] {
				var err error
				if d, err = step(d.ID); err != nil {
					t.Fatalf("%s: reach %s: %v", name, tc.from, err)
				}
			}
			before := regSnapshot(t, s)
			got, err := do[tc.to](d.ID)
			after := regSnapshot(t, s)
			switch tc.want {
			case ok:
				if err != nil || got.State != tc.to || got.PendingExpiresAt != nil || !got.UpdatedAt.Equal(T0) {
					t.Fatalf("%s: %+v, %v", name, got, err)
				}
				// Tokens stop working when the device loses its standing.
				var bump int64
				if tc.to == store.DeviceDecommissioned || tc.from == store.DeviceAccepted && tc.to == store.DeviceRejected {
					bump = 1
				}
				if got.CredentialEpoch != d.CredentialEpoch+bump {
					t.Fatalf("%s: credential epoch %d → %d, want +%d", name, d.CredentialEpoch, got.CredentialEpoch, bump)
				}
				entries := regAudits(t, s, action[tc.to])
				if after.audit != before.audit+1 || entries[0].ObjectID != d.ID || entries[0].Actor != Admin {
					t.Fatalf("%s: want one audit entry by %v on %s, got %+v", name, Admin, d.ID, entries[0])
				}
			case same:
				if err != nil || got.State != tc.to || after != before {
					t.Fatalf("%s: %+v, %v, counts %+v → %+v; want an unchanged device", name, got, err, before, after)
				}
			case conflict:
				if !errors.Is(err, store.ErrConflict) || after != before {
					t.Fatalf("%s: err %v, counts %+v → %+v; want ErrConflict and no change", name, err, before, after)
				}
			}
		}
		for _, f := range do {
			if _, err := f("no-such-device"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("transition of an unknown device: %v, want ErrNotFound", err)
			}
		}
		regVerifyAudit(t, s)
	}
}

func testDeviceReport(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		t1 := T0.Add(time.Hour)
		got, err := s.UpdateDeviceReport(ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: "1.2.0", TimeZone: "Europe/Paris", Now: t1})
		if err != nil || got.Version != "1.2.0" || got.PreviousVersion != "" || got.VersionSince == nil || !got.VersionSince.Equal(t1) ||
			got.TimeZone != "Europe/Paris" || got.DeviceType != "gw-200" || got.Attributes["mac"] != d.Attributes["mac"] {
			t.Fatalf("first report = %+v, %v", got, err)
		}
		before := regSnapshot(t, s)
		same, err := s.UpdateDeviceReport(ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: "1.2.0", DeviceType: "gw-200", Now: t1.Add(time.Hour)})
		if err != nil || !same.UpdatedAt.Equal(t1) || !same.VersionSince.Equal(t1) {
			t.Fatalf("unchanged report = %+v, %v; want nothing written", same, err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("unchanged report changed counts %+v → %+v", before, after)
		}
		for _, v := range []string{"v1.3.0", "1.3", "latest"} {
			if _, err := s.UpdateDeviceReport(ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: v, Now: t1}); !errors.Is(err, store.ErrInvalidRequest) {
				t.Fatalf("version %q: %v, want ErrInvalidRequest", v, err)
			}
		}
		t2 := t1.Add(24 * time.Hour)
		got, err = s.UpdateDeviceReport(ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: "1.3.0-rc.1", HWRev: "C",
			Attributes: map[string]string{"uptime_class": "long"}, Now: t2})
		if err != nil || got.Version != "1.3.0-rc.1" || got.PreviousVersion != "1.2.0" || !got.VersionSince.Equal(t2) ||
			got.HWRev != "C" || len(got.Attributes) != 1 || got.Attributes["uptime_class"] != "long" || !got.UpdatedAt.Equal(t2) {
			t.Fatalf("second report = %+v, %v", got, err)
		}
		if stored, err := s.Device(ctx, store.DefaultTenant, d.ID); err != nil || stored.Version != got.Version || stored.PreviousVersion != "1.2.0" {
			t.Fatalf("stored device = %+v, %v", stored, err)
		}
		// The version key follows the version: the new version is found by a semver range.
		if n, err := s.CountDevices(ctx, store.DefaultTenant, filter.MustParse(`version > "1.2.0" and version < "1.3.0"`)); err != nil || n != 1 {
			t.Fatalf("devices between 1.2.0 and 1.3.0: %d, %v; want 1", n, err)
		}
		entries := regAudits(t, s, "device.report")
		if len(entries) != 2 || entries[0].Actor.Kind != store.ActorDevice || !strings.Contains(string(entries[0].Details), `"previous_version":"1.2.0"`) {
			t.Fatalf("report audit entries = %+v", entries)
		}
		if _, err := s.UpdateDeviceReport(ctx, store.DefaultTenant, "nope", store.DeviceReport{Version: "1.0.0", Now: t2}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("report of an unknown device: %v, want ErrNotFound", err)
		}
		regVerifyAudit(t, s)
	}
}

func testTagsAndGroups(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		for _, kind := range []struct {
			name   string
			set    func(add, remove []string) (store.Device, error)
			labels func(store.Device) []string
			action string
		}{
			{"tags", func(add, remove []string) (store.Device, error) {
				return s.SetTags(ctx, store.DefaultTenant, d.ID, add, remove, Admin, T0)
			}, func(d store.Device) []string { return d.Tags }, "device.tags"},
			{"groups", func(add, remove []string) (store.Device, error) {
				return s.SetGroups(ctx, store.DefaultTenant, d.ID, add, remove, Admin, T0)
			}, func(d store.Device) []string { return d.Groups }, "device.groups"},
		} {
			for i, step := range []struct {
				add, remove []string
				want        []string
				err         error
				audited     bool
			}{
				{add: []string{"lab", "eu:berlin", "rack-7", "lab"}, want: []string{"eu:berlin", "lab", "rack-7"}, audited: true},
				{add: []string{"lab"}, want: []string{"eu:berlin", "lab", "rack-7"}},
				{remove: []string{"rack-7", "absent"}, want: []string{"eu:berlin", "lab"}, audited: true},
				{remove: []string{"absent"}, want: []string{"eu:berlin", "lab"}},
				{add: []string{"has space"}, err: store.ErrInvalidRequest},
				{add: []string{""}, err: store.ErrInvalidRequest},
				{add: []string{strings.Repeat("x", 65)}, err: store.ErrInvalidRequest},
				{add: []string{"a"}, remove: []string{"a"}, err: store.ErrInvalidRequest},
				{add: []string{"v1.2_x"}, remove: []string{"lab"}, want: []string{"eu:berlin", "v1.2_x"}, audited: true},
			} {
				before := regSnapshot(t, s)
				got, err := kind.set(step.add, step.remove)
				after := regSnapshot(t, s)
				if step.err != nil {
					if !errors.Is(err, step.err) || after != before {
						t.Fatalf("%s step %d: err %v, counts %+v → %+v; want %v and no change", kind.name, i, err, before, after, step.err)
					}
					continue
				}
				if err != nil || !slices.Equal(kind.labels(got), step.want) {
					t.Fatalf("%s step %d: %v, %v; want %v", kind.name, i, kind.labels(got), err, step.want)
				}
				if stored, _ := s.Device(ctx, store.DefaultTenant, d.ID); !slices.Equal(kind.labels(stored), step.want) {
					t.Fatalf("%s step %d: stored %v, want %v", kind.name, i, kind.labels(stored), step.want)
				}
				if audited := after.audit == before.audit+1; audited != step.audited {
					t.Fatalf("%s step %d: audited %v, want %v", kind.name, i, audited, step.audited)
				}
			}
			if n := len(regAudits(t, s, kind.action)); n != 3 {
				t.Fatalf("%d %s entries, want 3", n, kind.action)
			}
		}
		if got, err := s.Device(ctx, store.DefaultTenant, d.ID); err != nil || !slices.Equal(got.Tags, got.Groups) {
			t.Fatalf("tags and groups are separate sets that took the same steps: %v, %v (%v)", got.Tags, got.Groups, err)
		}
		if _, err := s.SetTags(ctx, store.DefaultTenant, "nope", []string{"x"}, nil, Admin, T0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tagging an unknown device: %v, want ErrNotFound", err)
		}
		regVerifyAudit(t, s)
	}
}

func testTouchLastSeen(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		a, _ := regAccepted(t, s, "SN-A", T0)
		b, _ := regAccepted(t, s, "SN-B", T0)
		c, _ := regAccepted(t, s, "SN-C", T0)
		before := regSnapshot(t, s)
		// Unknown ids, ignored, that sort between the two real ones put
		// those into different statements of the batch.
		t1, t2 := T0.Add(time.Minute), T0.Add(2*time.Minute)
		seen := map[string]time.Time{}
		for i := range 600 {
			seen[min(a.ID, b.ID)+fmt.Sprintf("-%03d", i)] = t2
		}
		seen[a.ID], seen[b.ID] = t1, t2
		seen[c.ID] = time.Time{} // zero: not seen
		if err := s.TouchLastSeen(ctx, store.DefaultTenant, seen); err != nil {
			t.Fatal(err)
		}
		check := func(id string, want *time.Time) {
			t.Helper()
			d, err := s.Device(ctx, store.DefaultTenant, id)
			if err != nil {
				t.Fatal(err)
			}
			if (want == nil) != (d.LastSeenAt == nil) || want != nil && !d.LastSeenAt.Equal(*want) {
				t.Fatalf("device %s last seen %v, want %v", d.Serial, d.LastSeenAt, want)
			}
			if !d.UpdatedAt.Equal(T0) {
				t.Fatalf("last-seen changed updated_at to %v", d.UpdatedAt)
			}
		}
		check(a.ID, &t1)
		check(b.ID, &t2)
		check(c.ID, nil)
		// Never backwards: a late flush of an older time leaves the newer one.
		if err := s.TouchLastSeen(ctx, store.DefaultTenant, map[string]time.Time{a.ID: t2, b.ID: t1}); err != nil {
			t.Fatal(err)
		}
		check(a.ID, &t2)
		check(b.ID, &t2)
		// Tenants are separate.
		if err := s.TouchLastSeen(ctx, "other-tenant", map[string]time.Time{c.ID: t2}); err != nil {
			t.Fatal(err)
		}
		check(c.ID, nil)
		if err := s.TouchLastSeen(ctx, store.DefaultTenant, nil); err != nil {
			t.Fatal(err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("last-seen flushes changed counts %+v → %+v; they are not audited", before, after)
		}
	}
}

func testConcurrentEnrollments(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		const maxPending, n = 5, 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			p := regParams(fmt.Sprintf("SN-%d", i), regKey(t), T0)
			p.MaxPending = maxPending
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Enroll(ctx, p)
			}()
		}
		// One device retrying its enrollment concurrently gets one device.
		key := regKey(t)
		ids := make([]string, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := regParams("SN-RETRY", key, T0)
				p.MaxPending = maxPending
				d, err := s.Enroll(ctx, p)
				if err != nil && !errors.Is(err, store.ErrPendingLimit) {
					t.Errorf("retrying enrollment: %v", err)
				}
				ids[i] = d.ID
			}()
		}
		wg.Wait()
		limited := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, store.ErrPendingLimit):
				limited++
			case err != nil:
				t.Fatalf("concurrent enrollment: %v", err)
			}
		}
		pending, err := s.CountDevices(ctx, store.DefaultTenant, filter.MustParse(`state == "pending"`))
		if err != nil || pending != maxPending {
			t.Fatalf("%d pending devices after concurrent enrollments (%d refused), %v; want the cap, %d", pending, limited, err, maxPending)
		}
		var distinct []string
		for _, id := range ids {
			if id != "" && !slices.Contains(distinct, id) {
				distinct = append(distinct, id)
			}
		}
		if len(distinct) > 1 {
			t.Fatalf("one key enrolled as %d devices: %v", len(distinct), distinct)
		}
		regVerifyAudit(t, s)
	}
}
