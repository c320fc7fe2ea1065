package boot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// envStore reads and writes a bootloader environment.
type envStore interface {
	// load returns at least the named variables (absent ones may be
	// missing from the map).
	load(ctx context.Context, names []string) (vars, error)
	// store applies all changes at once, durably: after a power cut the
	// environment holds either all of them or none.
	store(ctx context.Context, ch []change) error
}

// envBackend implements Backend with a scheme over an environment store.
// Its mutex keeps this process's read-modify-write cycles apart; other
// programs editing the same environment concurrently are not guarded
// against.
type envBackend struct {
	mu      sync.Mutex
	slots   slotSet
	sch     scheme
	st      envStore
	current CurrentFunc
	log     *slog.Logger
	what    string // backend name for errors
}

func (b *envBackend) Current(ctx context.Context) (string, error) {
	s, err := b.current(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: current slot: %w", b.what, err)
	}
	if err := b.slots.check(s); err != nil {
		return "", fmt.Errorf("%s: current slot: %w", b.what, err)
	}
	return s, nil
}

func (b *envBackend) Primary(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.st.load(ctx, b.sch.names())
	if err != nil {
		return "", fmt.Errorf("%s: primary: %w", b.what, err)
	}
	p, err := b.sch.primary(v)
	if err != nil {
		return "", fmt.Errorf("%s: primary: %w", b.what, err)
	}
	return p, nil
}

func (b *envBackend) SetPrimary(ctx context.Context, slot string) error {
	if err := b.slots.check(slot); err != nil {
		return fmt.Errorf("%s: set primary: %w", b.what, err)
	}
	return b.update(ctx, "set primary "+slot, func(v vars) []change { return b.sch.setPrimary(v, slot) })
}

func (b *envBackend) State(ctx context.Context, slot string) (State, error) {
	if err := b.slots.check(slot); err != nil {
		return "", fmt.Errorf("%s: state: %w", b.what, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.st.load(ctx, b.sch.names())
	if err != nil {
		return "", fmt.Errorf("%s: state of %s: %w", b.what, slot, err)
	}
	return b.sch.state(v, slot), nil
}

func (b *envBackend) SetState(ctx context.Context, slot string, s State) error {
	if err := b.slots.check(slot); err != nil {
		return fmt.Errorf("%s: set state: %w", b.what, err)
	}
	if s != Good && s != Bad {
		return fmt.Errorf("%s: set state of %s: invalid state %q", b.what, slot, s)
	}
	return b.update(ctx, fmt.Sprintf("mark %s %s", slot, s), func(v vars) []change { return b.sch.setState(v, slot, s) })
}

// update reads the scheme's variables, computes the changes and writes the
// ones that alter anything in one store.
func (b *envBackend) update(ctx context.Context, what string, f func(vars) []change) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, err := b.st.load(ctx, b.sch.names())
	if err != nil {
		return fmt.Errorf("%s: %s: %w", b.what, what, err)
	}
	ch := effective(v, f(v))
	if len(ch) == 0 {
		return nil
	}
	if err := b.st.store(ctx, ch); err != nil {
		return fmt.Errorf("%s: %s: %w", b.what, what, err)
	}
	b.log.Debug("boot environment changed", "backend", b.what, "op", what, "vars", changeAttrs(ch))
	return nil
}

func changeAttrs(ch []change) []string {
	out := make([]string, len(ch))
	for i, c := range ch {
		out[i] = c.name + "=" + c.value
	}
	return out
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// simulateBoot plays the bootloader at power-on against the environment:
// it runs the scheme's boot script, saves what the script saves, and runs
// it again after a board reset. The simulated bootloader uses it, and
// tests use it to boot real U-Boot and GRUB environments.
func (b *envBackend) simulateBoot(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range 2 {
		v, err := b.st.load(ctx, b.sch.names())
		if err != nil {
			return "", fmt.Errorf("%s: simulated boot: %w", b.what, err)
		}
		slot, ch := b.sch.boot(v)
		if ch = effective(v, ch); len(ch) > 0 {
			if err := b.st.store(ctx, ch); err != nil {
				return "", fmt.Errorf("%s: simulated boot: save environment: %w", b.what, err)
			}
		}
		if slot != "" {
			b.log.Debug("simulated boot", "backend", b.what, "slot", slot)
			return slot, nil
		}
		b.log.Debug("simulated boot found no slot; resetting", "backend", b.what)
	}
	return "", ErrNoBootableSlot
}
