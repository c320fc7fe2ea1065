package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
)

// TestSimEnrollsAcceptedDevices runs "updraft sim" against a real server
// with the first-start admin token: every simulated device is
// preauthorized, enrolls and is accepted; cancelling stops the command
// cleanly with exit status 0.
func TestSimEnrollsAcceptedDevices(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, stopServer := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: t.TempDir(), Addr: addr, PublicURL: "http://" + addr, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		stopServer()
		<-served
	}()
	ia := srv.Initial()
	body := `{"current_password":"` + ia.Password + `","password":"a-new-long-passphrase"}`
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/users/admin/password", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ia.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("change the one-time password: %s", resp.Status)
	}

	simCtx, stopSim := context.WithCancel(context.Background())
	var out strings.Builder
	code := make(chan int, 1)
	go func() {
		code <- Main(simCtx, []string{"sim", "--server", "http://" + addr, "--token", ia.Token, "--devices", "12", "--progress", "50ms"},
			Env{Stdout: &out, Stderr: io.Discard})
	}()
	var wall clock.Real
	deadline := wall.Now().Add(30 * time.Second)
	for {
		n, err := srv.Store().CountDevicesByState(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n[store.DefaultTenant][store.DeviceAccepted] == 12 {
			break
		}
		if wall.Now().After(deadline) {
			t.Fatalf("devices by state %v after 30 s", n)
		}
		clock.Sleep(wall, 20*time.Millisecond, nil)
	}
	stopSim()
	if c := <-code; c != 0 {
		t.Fatalf("sim exited %d:\n%s", c, out.String())
	}
	if !strings.Contains(out.String(), "simulating 12 devices") || !strings.Contains(out.String(), "stopped") {
		t.Fatalf("output:\n%s", out.String())
	}
}
