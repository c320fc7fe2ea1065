// Package notify wakes long-polling device requests when something about a
// device changes (a new assignment, a cancel, a decommission).
//
// Notifier is what writers call after committing a change; Hub is the
// in-process implementation that device API handlers subscribe to. A
// message-broker-backed Notifier (MQTT) can later fan the same calls out to
// other replicas, which feed them into their own Hub.
//
// Notifications carry no data: a woken waiter re-reads the store. So a
// notification may be spurious and several changes may coalesce into one
// wake-up, but a change committed before Notify is never missed by a waiter
// that subscribed before it read the store. Hub is safe for concurrent use;
// its zero value is not usable, create one with NewHub.
package notify

import "sync"

// Notifier is told that a device's pending work may have changed. Callers
// invoke it after the change is committed. Implementations must not block
// for long and must be safe for concurrent use.
type Notifier interface {
	Notify(tenant, deviceID string)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(tenant, deviceID string)

// Notify calls f.
func (f NotifierFunc) Notify(tenant, deviceID string) { f(tenant, deviceID) }

// Fanout notifies every Notifier in order.
type Fanout []Notifier

// Notify calls Notify on each member.
func (fs Fanout) Notify(tenant, deviceID string) {
	for _, n := range fs {
		n.Notify(tenant, deviceID)
	}
}

type key struct{ tenant, device string }

// subscription is one waiter; ch is closed by Notify. done (guarded by
// Hub.mu) is set once the subscription has been notified or cancelled.
type subscription struct {
	ch   chan struct{}
	done bool
}

// Hub is an in-process Notifier that long-poll handlers wait on.
type Hub struct {
	mu   sync.Mutex
	subs map[key]map[*subscription]struct{}
	n    int // active subscriptions
}

// NewHub returns an empty Hub.
func NewHub() *Hub {
	return &Hub{subs: make(map[key]map[*subscription]struct{})}
}

// Subscribe registers interest in one device. The returned channel is
// closed at the first Notify for that device after Subscribe returned.
// cancel releases the subscription; it must be called and is idempotent.
// A cancelled subscription's channel is never closed.
//
// Subscribe before reading the state the waiter wants to watch, so that a
// change committed between the read and the wait still wakes it.
func (h *Hub) Subscribe(tenant, deviceID string) (<-chan struct{}, func()) {
	k := key{tenant, deviceID}
	s := &subscription{ch: make(chan struct{})}
	h.mu.Lock()
	m := h.subs[k]
	if m == nil {
		m = make(map[*subscription]struct{}, 1)
		h.subs[k] = m
	}
	m[s] = struct{}{}
	h.n++
	h.mu.Unlock()
	return s.ch, func() { h.release(k, s) }
}

func (h *Hub) release(k key, s *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.done {
		return
	}
	s.done = true
	h.n--
	if m := h.subs[k]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.subs, k)
		}
	}
}

// Notify wakes every current subscriber of the device. It never blocks on
// subscribers.
func (h *Hub) Notify(tenant, deviceID string) {
	k := key{tenant, deviceID}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[k]
	for s := range m {
		s.done = true
		close(s.ch)
		h.n--
	}
	delete(h.subs, k)
}

// Waiting returns the number of subscriptions that have been neither
// notified nor cancelled.
func (h *Hub) Waiting() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
