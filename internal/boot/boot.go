// Package boot is the agent's view of the bootloader: which A/B slot is
// running, which one boots next, and whether a slot is good. The interface
// follows RAUC's bootchooser (current, primary, set primary with tries,
// state good/bad), so every backend — U-Boot environment, GRUB environment,
// RAUC's custom-backend command protocol, and a file-backed simulated
// bootloader for tests and the fleet simulator — means the same thing by
// each call.
//
// Install order the agent follows with any backend: SetState(target, Bad)
// before writing the slot; write, sync and verify it; then SetPrimary(target)
// which arms a limited number of boot tries. After rebooting into it and
// passing the health check the agent calls SetState(target, Good). If the
// slot never comes up the bootloader falls back on its own when the tries run
// out; the agent detects that because Current is not the slot it installed.
//
// Backends: Sim (a file-backed simulated bootloader whose Boot plays the
// boot script), UBoot (fw_printenv/fw_setenv, RAUC's BOOT_ORDER/BOOT_x_LEFT
// or U-Boot's bootcount scheme), GRUB (grub-editenv, RAUC's ORDER/x_OK/
// x_TRY) and Custom (RAUC's custom-backend handler protocol). Variable
// mappings and boot scripts are in docs/bootloaders.md.
//
// Two rules every user of a backend must follow, because the boot scripts
// count every boot, not only the first one after an update:
//
//   - after each boot that passes the health check, mark the running slot
//     good (RAUC's mark-good); otherwise the counters of even a long
//     committed slot run out and the bootloader switches away from it;
//   - when Current shows that the bootloader fell back, mark the slot that
//     failed bad; some schemes reset their counters once every slot has
//     been tried and would otherwise try the failed slot again.
//
// State reports whether the bootloader would start a slot again: a slot
// that is running on its last try reads bad until it is marked good.
// Backends serialize their own calls and are safe for concurrent use; they
// do not guard against other programs editing the same environment.
package boot

import (
	"context"
	"errors"
)

// State of a slot as the bootloader sees it.
type State string

// Slot states.
const (
	Good State = "good"
	Bad  State = "bad"
)

// Backend talks to one bootloader. Slot names are boot names ("A", "B",
// "system0", …) as the bootloader knows them. Implementations must make each
// call durable (written through to the environment storage) before
// returning.
type Backend interface {
	// Current returns the slot the system booted from.
	Current(ctx context.Context) (string, error)
	// Primary returns the slot the bootloader will try first.
	Primary(ctx context.Context) (string, error)
	// SetPrimary makes slot the first to try, with the backend's configured
	// number of attempts.
	SetPrimary(ctx context.Context, slot string) error
	// State returns whether slot is marked good or bad.
	State(ctx context.Context, slot string) (State, error)
	// SetState marks slot good (resetting its attempts) or bad (removing it
	// from the boot order).
	SetState(ctx context.Context, slot string, s State) error
}

// ErrUnknownSlot is returned for a slot name the backend does not know.
var ErrUnknownSlot = errors.New("unknown boot slot")
