package notify_test

import (
	"sync"
	"testing"

	"github.com/updraft/updraft/internal/notify"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestHubWakesOnlyTheNotifiedDevice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		tenant, device string
		wake           bool
	}{
		{"same device", "default", "d1", true},
		{"other device", "default", "d2", false},
		{"same id in another tenant", "other", "d1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := notify.NewHub()
			ch, cancel := h.Subscribe("default", "d1")
			defer cancel()
			h.Notify(tt.tenant, tt.device)
			if got := closed(ch); got != tt.wake {
				t.Fatalf("woken = %v, want %v", got, tt.wake)
			}
		})
	}
}

func TestHubNotifyBeforeSubscribeIsNotSeen(t *testing.T) {
	t.Parallel()
	h := notify.NewHub()
	h.Notify("default", "d1")
	ch, cancel := h.Subscribe("default", "d1")
	defer cancel()
	if closed(ch) {
		t.Fatal("a notification sent before Subscribe woke the new subscriber")
	}
}

func TestHubWakesEverySubscriberOnceAndCounts(t *testing.T) {
	t.Parallel()
	h := notify.NewHub()
	a, cancelA := h.Subscribe("default", "d1")
	b, cancelB := h.Subscribe("default", "d1")
	c, cancelC := h.Subscribe("default", "d2")
	if got := h.Waiting(); got != 3 {
		t.Fatalf("Waiting = %d, want 3", got)
	}
	h.Notify("default", "d1")
	if !closed(a) || !closed(b) || closed(c) {
		t.Fatalf("after notify d1: a=%v b=%v c=%v, want true true false", closed(a), closed(b), closed(c))
	}
	if got := h.Waiting(); got != 1 {
		t.Fatalf("Waiting after notify = %d, want 1", got)
	}
	// Cancelling after being notified, twice, must not panic or miscount.
	cancelA()
	cancelA()
	cancelB()
	cancelC()
	cancelC()
	if got := h.Waiting(); got != 0 {
		t.Fatalf("Waiting after cancel = %d, want 0", got)
	}
	if closed(c) {
		t.Fatal("cancel closed the channel")
	}
	h.Notify("default", "d2") // nobody left: must not panic on a cancelled subscription
}

func TestHubConcurrentUse(t *testing.T) {
	t.Parallel()
	h := notify.NewHub()
	var wg sync.WaitGroup
	const n = 50
	ready := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, cancel := h.Subscribe("default", "d1")
			defer cancel()
			ready <- struct{}{}
			<-ch
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	h.Notify("default", "d1")
	wg.Wait()
	if got := h.Waiting(); got != 0 {
		t.Fatalf("Waiting = %d, want 0", got)
	}
}

func TestFanoutAndFunc(t *testing.T) {
	t.Parallel()
	var got []string
	f := notify.Fanout{
		notify.NotifierFunc(func(tenant, dev string) { got = append(got, "a:"+tenant+"/"+dev) }),
		notify.NotifierFunc(func(tenant, dev string) { got = append(got, "b:"+tenant+"/"+dev) }),
	}
	var n notify.Notifier = f
	n.Notify("default", "d9")
	if len(got) != 2 || got[0] != "a:default/d9" || got[1] != "b:default/d9" {
		t.Fatalf("fanout calls = %v", got)
	}
}
