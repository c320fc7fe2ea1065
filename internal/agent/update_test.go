package agent_test

import (
	"bytes"
	"context"
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
	vars, err := d.boot.Vars(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if vars["BOOT_ORDER"] != "B A" || vars["BOOT_B_LEFT"] != "3" {
		t.Fatalf("boot environment %v: want B first with its attempts reset", vars)
	}
	_ = agent.PhaseIdle
}
