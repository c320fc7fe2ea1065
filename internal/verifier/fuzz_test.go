package verifier_test

import (
	"context"
	"testing"

	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/verifier"
)

// FuzzVerifyAssignment runs arbitrary director documents through the full
// verification of a device that trusts a real repository.
func FuzzVerifyAssignment(f *testing.F) {
	e := setup(f)
	f.Add(e.repo.Assign(deviceID, e.v1[0]))
	f.Fuzz(func(t *testing.T, doc []byte) {
		tg, err := e.dev.VerifyAssignment(context.Background(), doc)
		if err != nil {
			return
		}
		if tg.Path != e.v1[0].Target.Path || tg.SHA256 != e.v1[0].Target.SHA256 {
			t.Fatalf("accepted a target the repository never signed: %+v", tg)
		}
	})
}

// FuzzRefreshMetadata serves arbitrary bytes as the timestamp and as the
// next root: loading them must never panic, and anything but the genuine
// files must be refused.
func FuzzRefreshMetadata(f *testing.F) {
	e := setup(f)
	genuine := string(e.repo.Server.File("timestamp.json"))
	f.Add([]byte(genuine), false)
	f.Add(e.repo.TrustedRoot(), true)
	f.Fuzz(func(t *testing.T, b []byte, asRoot bool) {
		name := "timestamp.json"
		if asRoot {
			name = "2.root.json"
		}
		saved := e.repo.Server.File(name)
		e.repo.Server.Put(name, b)
		defer func() {
			if saved == nil {
				e.repo.Server.Delete(name)
			} else {
				e.repo.Server.Put(name, saved)
			}
		}()
		err := e.dev.Refresh(context.Background())
		if err == nil && (asRoot || !sameMetadata(b, []byte(genuine))) {
			t.Fatalf("accepted %d arbitrary bytes as %s", len(b), name)
		}
	})
}

// sameMetadata reports whether a and b encode the same signed metadata
// (JSON whitespace and key order aside).
func sameMetadata(a, b []byte) bool {
	ia, errA := tufrepo.Describe(a)
	ib, errB := tufrepo.Describe(b)
	return errA == nil && errB == nil && ia.Type == ib.Type && ia.Version == ib.Version
}

// FuzzStreamState resumes streams from arbitrary persisted states.
func FuzzStreamState(f *testing.F) {
	e := setup(f)
	tg, err := e.dev.VerifyAssignment(context.Background(), e.repo.Assign(deviceID, e.v1[0]))
	if err != nil {
		f.Fatal(err)
	}
	s, _ := verifier.NewStream(tg, nil)
	if _, err := s.Write(e.v1[0].Data[:100]); err != nil {
		f.Fatal(err)
	}
	state, _ := s.State()
	f.Add(state)
	f.Fuzz(func(t *testing.T, state []byte) {
		s, err := verifier.NewStream(tg, state)
		if err != nil {
			return
		}
		if s.Offset() < 0 || s.Offset() > tg.Length {
			t.Fatalf("resumed at offset %d of %d", s.Offset(), tg.Length)
		}
		if _, err := s.Write(e.v1[0].Data[s.Offset():]); err != nil {
			t.Fatal(err)
		}
		_ = s.Finish()
	})
}
