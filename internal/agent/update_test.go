package agent_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/updraft/updraft/internal/agent"
)

// TestUpdateHappyPath: enroll, get an assignment, download into slot B,
// reboot into it, pass the health check, commit and report every step.
func TestUpdateHappyPath(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{})
	id := d.deviceID()
	img := image("GOOD", 3<<20+123, 1)
	rel := srv.image("2.0.0", img)
	asg := srv.assign(id, rel)
	d.finished(asg.ID)

	if got := srv.assignment(asg.ID); got.State != "succeeded" {
		t.Fatalf("assignment %+v", got)
	}
	want := "downloading,downloading,downloading,downloading,installing,rebooting,verifying,succeeded"
	if got := joined(srv.states(asg.ID)); got != want {
		t.Fatalf("reported %s\nwant     %s", got, want)
	}
	st := d.a.Status()
	sum := sha256.Sum256(img)
	if st.Version != "2.0.0" || st.Slot != "B" || st.Installed == nil || st.Installed.SHA256 != hex.EncodeToString(sum[:]) || st.Installed.Length != int64(len(img)) {
		t.Fatalf("status %+v installed %+v", st, st.Installed)
	}
	if !bytes.Equal(d.slotContent("B")[:len(img)], img) {
		t.Fatal("slot B does not hold the image")
	}
	if _, ok := d.boot.left["B"]; !ok || d.boot.left["B"] != 3 || d.boot.order[0] != "B" {
		t.Fatalf("boot state: order %v left %v (want B first and good)", d.boot.order, d.boot.left)
	}
	_ = agent.PhaseIdle
}
