package agent_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/store"
)

// runner runs one device's agent with Run in its own goroutine, restarting
// it after every reboot, as init would.
type runner struct {
	d  *device
	mu sync.Mutex
	a  *agent.Agent
	wg sync.WaitGroup
}

func (r *runner) status() agent.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.a.Status()
}

func (r *runner) run(ctx context.Context, t *testing.T) {
	r.a = r.d.a
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			r.mu.Lock()
			a := r.a
			r.mu.Unlock()
			err := a.Run(ctx)
			if !errors.Is(err, agent.ErrRebooted) {
				if err != nil {
					t.Errorf("run: %v", err)
				}
				return
			}
			r.d.powerCycle()
			r.mu.Lock()
			r.a = r.d.a
			r.mu.Unlock()
		}
	}()
}

// TestTwoAgentsOneProcess runs two real agents concurrently with Run, each
// holding a long-poll open, on one fake clock; assignments wake them at
// once and both update, reboot and commit.
func TestTwoAgentsOneProcess(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{longPoll: true})
	var runners []*runner
	for i := range 2 {
		d := newDevice(t, srv, deviceOptions{serial: fmt.Sprintf("SN-TWO-%d", i), seed: uint64(300 + i), configure: func(c *agent.Config) {
			c.Timing.DisableLongPoll = false
		}})
		runners = append(runners, &runner{d: d})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		for _, r := range runners {
			r.wg.Wait()
		}
	}()
	for _, r := range runners {
		r.run(ctx, t)
	}
	const baseTimers = 2 // the device API's flush and maintenance loops
	quiet := func() bool { return srv.clock.Waiters() >= baseTimers+len(runners) }
	// drive advances the fake clock whenever every agent is waiting on it
	// (asleep, or in a long-poll the server holds), until cond.
	drive := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v / %+v", what, runners[0].status(), runners[1].status())
			}
			if quiet() {
				srv.clock.Advance(time.Second)
			}
			runtime.Gosched()
		}
	}
	drive("both enrolled and long-polling", func() bool {
		return runners[0].status().DeviceID != "" && runners[1].status().DeviceID != "" && srv.hub.Waiting() == 2
	})
	var asgs []store.Assignment
	for i, r := range runners {
		rel := srv.image(fmt.Sprintf("2.0.%d", i), image("GOOD", 200<<10, uint64(i)))
		asgs = append(asgs, srv.assign(r.status().DeviceID, rel))
	}
	drive("both committed", func() bool {
		for i, r := range runners {
			st := r.status()
			if st.Phase != agent.PhaseIdle || st.Outbox != 0 || st.Version != fmt.Sprintf("2.0.%d", i) {
				return false
			}
		}
		return true
	})
	for _, a := range asgs {
		if got := srv.assignment(a.ID); got.State != store.AssignSucceeded {
			t.Fatalf("assignment %s: %s", a.ID, got.State)
		}
	}
}
