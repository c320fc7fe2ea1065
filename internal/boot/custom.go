package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// CustomConfig configures the custom backend.
type CustomConfig struct {
	// Command is the handler program and any leading arguments; the
	// protocol's subcommand and operands follow them.
	Command []string
	// Slots are the boot names; A and B when empty. Only these are ever
	// passed to the handler or accepted from it.
	Slots []string
	// Current, when set, reports the running slot instead of the
	// handler's optional get-current.
	Current CurrentFunc
	// Runner runs the handler; ExecRunner by default.
	Runner Runner
	// Timeout bounds each handler run; DefaultTimeout when 0.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Custom drives a board-specific handler program through RAUC's custom
// bootloader backend protocol:
//
//	<handler> get-primary              prints the primary slot
//	<handler> set-primary <slot>
//	<handler> get-state <slot>         prints "good" or "bad"
//	<handler> set-state <slot> good|bad
//	<handler> get-current              prints the running slot (optional)
//
// Exit status 0 means success; anything else is an error carrying the
// handler's standard error. The handler must make each set-* durable
// before exiting.
type Custom struct {
	mu      sync.Mutex // one handler run at a time
	cmd     []string
	slots   slotSet
	current CurrentFunc
	run     runner
	log     *slog.Logger
}

// NewCustom returns a custom backend; it runs nothing until called.
func NewCustom(cfg CustomConfig) (*Custom, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("boot: custom backend needs a handler command")
	}
	slots, err := newSlotSet(cfg.Slots)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	return &Custom{
		cmd:     append([]string(nil), cfg.Command...),
		slots:   slots,
		current: cfg.Current,
		run:     newRunner(cfg.Runner, cfg.Timeout),
		log:     logger(cfg.Logger),
	}, nil
}

func (c *Custom) call(ctx context.Context, args ...string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	argv := append(append([]string(nil), c.cmd[1:]...), args...)
	out, err := c.run.run(ctx, nil, c.cmd[0], argv...)
	if err != nil {
		return "", fmt.Errorf("custom bootloader %s: %w", args[0], err)
	}
	c.log.Debug("custom bootloader handler ran", "args", args)
	return string(out), nil
}

// slotOutput reads a slot name printed by the handler.
func (c *Custom) slotOutput(op, out string) (string, error) {
	s, err := singleWord(out)
	if err != nil {
		return "", fmt.Errorf("custom bootloader %s: %w", op, err)
	}
	if err := c.slots.check(s); err != nil {
		return "", fmt.Errorf("custom bootloader %s printed %w", op, err)
	}
	return s, nil
}

// singleWord returns the one word of a handler's output; surrounding
// whitespace (the trailing newline) is ignored.
func singleWord(out string) (string, error) {
	f := strings.Fields(out)
	if len(f) != 1 {
		return "", fmt.Errorf("want one word of output, got %.80q", out)
	}
	return f[0], nil
}

// Current implements Backend, through Current if configured, else the
// handler's get-current.
func (c *Custom) Current(ctx context.Context) (string, error) {
	if c.current != nil {
		s, err := c.current(ctx)
		if err != nil {
			return "", fmt.Errorf("custom bootloader: current slot: %w", err)
		}
		if err := c.slots.check(s); err != nil {
			return "", fmt.Errorf("custom bootloader: current slot: %w", err)
		}
		return s, nil
	}
	out, err := c.call(ctx, "get-current")
	if err != nil {
		return "", err
	}
	return c.slotOutput("get-current", out)
}

// Primary implements Backend.
func (c *Custom) Primary(ctx context.Context) (string, error) {
	out, err := c.call(ctx, "get-primary")
	if err != nil {
		return "", err
	}
	return c.slotOutput("get-primary", out)
}

// SetPrimary implements Backend.
func (c *Custom) SetPrimary(ctx context.Context, slot string) error {
	if err := c.slots.check(slot); err != nil {
		return fmt.Errorf("custom bootloader set-primary: %w", err)
	}
	_, err := c.call(ctx, "set-primary", slot)
	return err
}

// State implements Backend.
func (c *Custom) State(ctx context.Context, slot string) (State, error) {
	if err := c.slots.check(slot); err != nil {
		return "", fmt.Errorf("custom bootloader get-state: %w", err)
	}
	out, err := c.call(ctx, "get-state", slot)
	if err != nil {
		return "", err
	}
	w, err := singleWord(out)
	if err != nil {
		return "", fmt.Errorf("custom bootloader get-state %s: %w", slot, err)
	}
	switch State(w) {
	case Good, Bad:
		return State(w), nil
	}
	return "", fmt.Errorf("custom bootloader get-state %s printed %q, want good or bad", slot, w)
}

// SetState implements Backend.
func (c *Custom) SetState(ctx context.Context, slot string, s State) error {
	if err := c.slots.check(slot); err != nil {
		return fmt.Errorf("custom bootloader set-state: %w", err)
	}
	if s != Good && s != Bad {
		return fmt.Errorf("custom bootloader set-state %s: invalid state %q", slot, s)
	}
	_, err := c.call(ctx, "set-state", slot, string(s))
	return err
}
