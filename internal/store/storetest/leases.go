package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func testLeases(t *testing.T, h Harness) {
	t.Run("TakeRenewExpireFence", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		ttl := 30 * time.Second
		a, err := s.AcquireLease(ctx, "engine", "replica-a", ttl, T0)
		if err != nil || !a.Held("replica-a", T0) || a.Epoch != 1 {
			t.Fatalf("first acquire = %+v, %v; want held with epoch 1", a, err)
		}
		b, err := s.AcquireLease(ctx, "engine", "replica-b", ttl, T0.Add(time.Second))
		if err != nil || b.Held("replica-b", T0.Add(time.Second)) || b.Holder != "replica-a" {
			t.Fatalf("acquire while held by another = %+v, %v; want a's lease", b, err)
		}
		renewed, err := s.AcquireLease(ctx, "engine", "replica-a", ttl, T0.Add(20*time.Second))
		if err != nil || renewed.Epoch != 1 || !renewed.ExpiresAt.Equal(T0.Add(50*time.Second)) {
			t.Fatalf("renew = %+v, %v; want epoch 1 until T0+50s", renewed, err)
		}
		if err := s.CheckLease(ctx, renewed, T0.Add(40*time.Second)); err != nil {
			t.Fatalf("check while held: %v", err)
		}
		// a pauses past its expiry; b takes over with a new epoch.
		late := T0.Add(51 * time.Second)
		b, err = s.AcquireLease(ctx, "engine", "replica-b", ttl, late)
		if err != nil || !b.Held("replica-b", late) || b.Epoch != 2 {
			t.Fatalf("takeover = %+v, %v; want b with epoch 2", b, err)
		}
		if err := s.CheckLease(ctx, renewed, late); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("old leader's check after takeover: %v, want ErrLeaseLost", err)
		}
		// The old leader cannot renew its way back while b holds it.
		again, err := s.AcquireLease(ctx, "engine", "replica-a", ttl, late.Add(time.Second))
		if err != nil || again.Holder != "replica-b" {
			t.Fatalf("old leader re-acquire = %+v, %v; want b to keep it", again, err)
		}
		if err := s.ReleaseLease(ctx, "engine", "replica-b"); err != nil {
			t.Fatal(err)
		}
		c, err := s.AcquireLease(ctx, "engine", "replica-a", ttl, late.Add(2*time.Second))
		if err != nil || !c.Held("replica-a", late.Add(2*time.Second)) || c.Epoch != 3 {
			t.Fatalf("acquire after release = %+v, %v; want a with epoch 3", c, err)
		}
		if _, err := s.AcquireLease(ctx, "", "x", ttl, T0); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("nameless lease: %v, want ErrInvalidRequest", err)
		}
	})
	t.Run("ConcurrentClaimantsOneLeader", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		leases := make([]store.Lease, 8)
		errs := make([]error, 8)
		for i := range leases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				leases[i], errs[i] = s.AcquireLease(ctx, "publisher", fmt.Sprintf("r%d", i), time.Minute, T0)
			}()
		}
		wg.Wait()
		leaders := 0
		for i, l := range leases {
			if errs[i] != nil {
				t.Fatalf("claimant %d: %v", i, errs[i])
			}
			if l.Held(fmt.Sprintf("r%d", i), T0) {
				leaders++
			}
		}
		if leaders != 1 {
			t.Fatalf("%d claimants believe they lead, want exactly 1", leaders)
		}
	})
}
