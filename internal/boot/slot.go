package boot

import (
	"errors"
	"fmt"
	"slices"
)

// defaultSlots are the boot names every backend assumes when none are
// configured, as in RAUC's example boot scripts.
func defaultSlots() []string { return []string{"A", "B"} }

// DefaultAttempts is how many boots a slot made primary (or marked good)
// gets before the bootloader gives up on it; RAUC's boot-attempts default.
const DefaultAttempts = 3

// ErrInvalidSlotName is returned for a slot name that is not 1 to 64
// characters of [A-Za-z0-9_-]. Names end up in environment variable names
// and command arguments, so nothing else is ever passed on.
var ErrInvalidSlotName = errors.New("invalid boot slot name")

// CheckSlotName reports whether name may be used as a boot slot name.
func CheckSlotName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("%w %q", ErrInvalidSlotName, name)
	}
	for _, r := range []byte(name) {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '-':
		default:
			return fmt.Errorf("%w %q", ErrInvalidSlotName, name)
		}
	}
	return nil
}

// slotSet is a backend's configured slots.
type slotSet []string

func newSlotSet(names []string) (slotSet, error) {
	if len(names) == 0 {
		names = defaultSlots()
	}
	for i, n := range names {
		if err := CheckSlotName(n); err != nil {
			return nil, err
		}
		if slices.Contains(names[:i], n) {
			return nil, fmt.Errorf("boot slot %q listed twice", n)
		}
	}
	return slices.Clone(names), nil
}

// check validates a slot name passed to the backend.
func (s slotSet) check(name string) error {
	if err := CheckSlotName(name); err != nil {
		return err
	}
	if !slices.Contains(s, name) {
		return fmt.Errorf("%w %q (known: %v)", ErrUnknownSlot, name, []string(s))
	}
	return nil
}

// attemptsOrDefault checks a configured number of boot attempts. At most
// 9: U-Boot's setexpr, which the boot scripts count down with, prints hex,
// and single digits read the same in both bases.
func attemptsOrDefault(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultAttempts, nil
	case n < 1 || n > 9:
		return 0, fmt.Errorf("boot attempts %d out of range 1..9", n)
	}
	return n, nil
}
