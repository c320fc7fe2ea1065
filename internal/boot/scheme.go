package boot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Scheme selects the bootloader variables an environment backend uses and
// the boot script that reads them (docs/bootloaders.md has the scripts).
type Scheme string

// Variable schemes.
const (
	// SchemeRAUCUBoot is RAUC's U-Boot scheme: BOOT_ORDER lists the slots
	// in the order to try, BOOT_<slot>_LEFT counts the boots left. The
	// default for U-Boot and for the simulated bootloader.
	SchemeRAUCUBoot Scheme = "rauc-uboot"
	// SchemeRAUCGRUB is RAUC's GRUB scheme: ORDER, <slot>_OK and
	// <slot>_TRY (one try per slot).
	SchemeRAUCGRUB Scheme = "rauc-grub"
	// SchemeBootcount is U-Boot's CONFIG_BOOTCOUNT_LIMIT scheme:
	// boot_slot names the slot bootcmd boots, upgrade_available arms the
	// boot counter, bootcount/bootlimit count the tries, and altbootcmd
	// switches to boot_slot_alt when they run out; boot_<slot>_ok=0 marks
	// a slot bad.
	SchemeBootcount Scheme = "bootcount"
)

// vars is a snapshot of bootloader variables. A missing and an empty
// variable are the same thing, as for U-Boot's "test -n".
type vars map[string]string

// change sets a variable; an empty value removes it.
type change struct{ name, value string }

// scheme maps the Backend calls onto variables and simulates the boot
// script that reads them. Every method is a pure function of the snapshot,
// so the same code drives the simulated bootloader and checks the real
// tools' environments in tests.
type scheme interface {
	// names lists every variable the scheme reads.
	names() []string
	// primary returns the slot the next boot will start.
	primary(v vars) (string, error)
	setPrimary(v vars, slot string) []change
	state(v vars, slot string) State
	setState(v vars, slot string, s State) []change
	// boot runs the boot script once at power-on. It returns the slot
	// booted, or "" when the script resets the board instead, and the
	// variables it saves.
	boot(v vars) (string, []change)
}

func newScheme(kind Scheme, slots slotSet, attempts int) (scheme, error) {
	switch kind {
	case SchemeRAUCUBoot:
		return raucUBoot{slots, attempts}, nil
	case SchemeRAUCGRUB:
		return raucGRUB{slots}, nil
	case SchemeBootcount:
		return bootcount{slots, attempts}, nil
	}
	return nil, fmt.Errorf("unknown boot variable scheme %q", kind)
}

// order returns the known slots listed in value, in order and without
// repeats, or all slots when value is empty.
func order(slots slotSet, value string) []string {
	fields := strings.Fields(value)
	if len(fields) == 0 {
		return slices.Clone(slots)
	}
	var out []string
	for _, f := range fields {
		if slices.Contains(slots, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// promote puts slot first, followed by the rest of cur and then any known
// slot cur lacks.
func promote(slots slotSet, cur []string, slot string) []string {
	out := []string{slot}
	for _, s := range cur {
		if s != slot {
			out = append(out, s)
		}
	}
	for _, s := range slots {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// count parses a counter variable: empty means def, garbage means 0 (a
// U-Boot "test -gt" on it fails), negatives clamp to 0.
func count(value string, def int) int {
	if value == "" {
		return def
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// raucUBoot: the boot script walks BOOT_ORDER, boots the first slot whose
// BOOT_x_LEFT is above zero after decrementing it, and when none is left
// resets every counter and resets the board. A missing BOOT_ORDER means all
// slots, a missing counter means the full number of attempts.
type raucUBoot struct {
	slots    slotSet
	attempts int
}

func (s raucUBoot) left(x string) string { return "BOOT_" + x + "_LEFT" }

func (s raucUBoot) names() []string {
	n := []string{"BOOT_ORDER"}
	for _, x := range s.slots {
		n = append(n, s.left(x))
	}
	return n
}

func (s raucUBoot) tries(v vars, x string) int { return count(v[s.left(x)], s.attempts) }

func (s raucUBoot) primary(v vars) (string, error) {
	o := order(s.slots, v["BOOT_ORDER"])
	for _, x := range o {
		if s.tries(v, x) > 0 {
			return x, nil
		}
	}
	if len(o) == 0 {
		return "", fmt.Errorf("BOOT_ORDER=%q names no known slot", v["BOOT_ORDER"])
	}
	// Nothing left: the script resets the counters and the board, then
	// boots the first slot in the order.
	return o[0], nil
}

func (s raucUBoot) setPrimary(v vars, slot string) []change {
	o := promote(nil, order(s.slots, v["BOOT_ORDER"]), slot)
	return []change{
		{s.left(slot), strconv.Itoa(s.attempts)},
		{"BOOT_ORDER", strings.Join(o, " ")},
	}
}

func (s raucUBoot) state(v vars, slot string) State {
	if slices.Contains(order(s.slots, v["BOOT_ORDER"]), slot) && s.tries(v, slot) > 0 {
		return Good
	}
	return Bad
}

func (s raucUBoot) setState(v vars, slot string, st State) []change {
	o := order(s.slots, v["BOOT_ORDER"])
	if st == Good {
		ch := []change{{s.left(slot), strconv.Itoa(s.attempts)}}
		if !slices.Contains(o, slot) {
			ch = append(ch, change{"BOOT_ORDER", strings.Join(append(o, slot), " ")})
		}
		return ch
	}
	ch := []change{{s.left(slot), "0"}}
	// An empty BOOT_ORDER means every slot to the boot script, so the last
	// slot stays listed; its zero counter keeps it from booting.
	if o = slices.DeleteFunc(o, func(x string) bool { return x == slot }); len(o) > 0 {
		ch = append(ch, change{"BOOT_ORDER", strings.Join(o, " ")})
	}
	return ch
}

func (s raucUBoot) boot(v vars) (string, []change) {
	var ch []change
	if v["BOOT_ORDER"] == "" {
		ch = append(ch, change{"BOOT_ORDER", strings.Join(s.slots, " ")})
	}
	for _, x := range s.slots {
		if v[s.left(x)] == "" {
			ch = append(ch, change{s.left(x), strconv.Itoa(s.attempts)})
		}
	}
	for _, x := range order(s.slots, v["BOOT_ORDER"]) {
		if n := s.tries(v, x); n > 0 {
			return x, append(ch, change{s.left(x), strconv.Itoa(n - 1)})
		}
	}
	for _, x := range s.slots {
		ch = append(ch, change{s.left(x), strconv.Itoa(s.attempts)})
	}
	return "", ch
}

// raucGRUB: the boot script walks ORDER and boots the first slot with
// x_OK=1 and x_TRY=0, setting x_TRY=1 first; marking the slot good clears
// it again. When every good slot has been tried it clears their tries and
// boots the first good one; when none is good it boots the first in ORDER
// as a last resort. Missing variables mean ORDER of all slots, x_OK=1 and
// x_TRY=0.
type raucGRUB struct{ slots slotSet }

func (s raucGRUB) names() []string {
	n := []string{"ORDER"}
	for _, x := range s.slots {
		n = append(n, x+"_OK", x+"_TRY")
	}
	return n
}

func (s raucGRUB) ok(v vars, x string) bool { return v[x+"_OK"] == "" || v[x+"_OK"] == "1" }

func (s raucGRUB) tried(v vars, x string) bool { return v[x+"_TRY"] != "" && v[x+"_TRY"] != "0" }

func (s raucGRUB) primary(v vars) (string, error) {
	o := order(s.slots, v["ORDER"])
	if len(o) == 0 {
		return "", fmt.Errorf("ORDER=%q names no known slot", v["ORDER"])
	}
	for _, x := range o {
		if s.ok(v, x) && !s.tried(v, x) {
			return x, nil
		}
	}
	for _, x := range o {
		if s.ok(v, x) {
			return x, nil
		}
	}
	return o[0], nil
}

func (s raucGRUB) setPrimary(v vars, slot string) []change {
	return []change{
		{slot + "_OK", "1"},
		{slot + "_TRY", "0"},
		{"ORDER", strings.Join(promote(s.slots, order(s.slots, v["ORDER"]), slot), " ")},
	}
}

func (s raucGRUB) state(v vars, slot string) State {
	if slices.Contains(order(s.slots, v["ORDER"]), slot) && s.ok(v, slot) && !s.tried(v, slot) {
		return Good
	}
	return Bad
}

func (s raucGRUB) setState(v vars, slot string, st State) []change {
	if st == Bad {
		return []change{{slot + "_OK", "0"}, {slot + "_TRY", "0"}}
	}
	ch := []change{{slot + "_OK", "1"}, {slot + "_TRY", "0"}}
	if o := order(s.slots, v["ORDER"]); !slices.Contains(o, slot) {
		ch = append(ch, change{"ORDER", strings.Join(append(o, slot), " ")})
	}
	return ch
}

func (s raucGRUB) boot(v vars) (string, []change) {
	o := order(s.slots, v["ORDER"])
	for _, x := range o {
		if s.ok(v, x) && !s.tried(v, x) {
			return x, []change{{x + "_TRY", "1"}}
		}
	}
	var ch []change
	for _, x := range s.slots {
		if s.ok(v, x) && s.tried(v, x) {
			ch = append(ch, change{x + "_TRY", "0"})
		}
	}
	for _, x := range o {
		if s.ok(v, x) {
			return x, append(ch, change{x + "_TRY", "1"})
		}
	}
	if len(o) > 0 {
		return o[0], ch
	}
	return "", ch
}

// bootcount: U-Boot increments bootcount at every boot while
// upgrade_available=1 and runs altbootcmd instead of bootcmd once it
// exceeds bootlimit. bootcmd boots boot_slot (the first slot when unset);
// altbootcmd marks boot_slot bad, switches to boot_slot_alt and disarms the
// counter.
type bootcount struct {
	slots    slotSet
	attempts int
}

func (s bootcount) ok(x string) string { return "boot_" + x + "_ok" }

func (s bootcount) names() []string {
	n := []string{"boot_slot", "boot_slot_alt", "upgrade_available", "bootcount", "bootlimit"}
	for _, x := range s.slots {
		n = append(n, s.ok(x))
	}
	return n
}

// slot returns the slot bootcmd boots.
func (s bootcount) slot(v vars) (string, error) {
	b := v["boot_slot"]
	if b == "" {
		return s.slots[0], nil
	}
	if !slices.Contains(s.slots, b) {
		return "", fmt.Errorf("boot_slot=%q is not a known slot", b)
	}
	return b, nil
}

// alt returns the slot altbootcmd would switch to, or "".
func (s bootcount) alt(v vars, cur string) string {
	a := v["boot_slot_alt"]
	if a == cur || !slices.Contains(s.slots, a) {
		return ""
	}
	return a
}

func (s bootcount) trial(v vars) bool { return v["upgrade_available"] == "1" }

func (s bootcount) exhausted(v vars, extra int) bool {
	limit := count(v["bootlimit"], 0)
	return s.trial(v) && limit > 0 && count(v["bootcount"], 0)+extra > limit
}

func (s bootcount) primary(v vars) (string, error) {
	b, err := s.slot(v)
	if err != nil {
		return "", err
	}
	if a := s.alt(v, b); a != "" && s.exhausted(v, 1) {
		return a, nil
	}
	return b, nil
}

func (s bootcount) setPrimary(v vars, slot string) []change {
	b, err := s.slot(v)
	ch := []change{{s.ok(slot), "1"}}
	if err == nil && slot == b {
		if s.trial(v) {
			ch = append(ch, change{"bootcount", "0"}, change{"bootlimit", strconv.Itoa(s.attempts)})
		}
		return ch
	}
	alt := b
	if err != nil {
		alt = ""
	}
	return append(ch,
		change{"boot_slot_alt", alt},
		change{"boot_slot", slot},
		change{"bootcount", "0"},
		change{"bootlimit", strconv.Itoa(s.attempts)},
		change{"upgrade_available", "1"},
	)
}

func (s bootcount) state(v vars, slot string) State {
	if v[s.ok(slot)] == "0" {
		return Bad
	}
	if b, err := s.slot(v); err == nil && b == slot && s.exhausted(v, 1) {
		return Bad
	}
	return Good
}

func (s bootcount) setState(v vars, slot string, st State) []change {
	b, err := s.slot(v)
	running := err == nil && b == slot
	if st == Good {
		ch := []change{{s.ok(slot), "1"}}
		if running && s.trial(v) {
			ch = append(ch, change{"upgrade_available", "0"}, change{"bootcount", "0"}, change{"boot_slot_alt", ""})
		}
		return ch
	}
	ch := []change{{s.ok(slot), "0"}}
	if !running {
		if err == nil && s.alt(v, b) == slot {
			// altbootcmd must not fall back to a slot marked bad.
			ch = append(ch, change{"boot_slot_alt", ""})
		}
		return ch
	}
	fallback := s.alt(v, slot)
	if fallback == "" || v[s.ok(fallback)] == "0" {
		fallback = ""
		for _, x := range s.slots {
			if x != slot && v[s.ok(x)] != "0" {
				fallback = x
				break
			}
		}
	}
	if fallback != "" {
		ch = append(ch, change{"boot_slot", fallback})
	}
	return append(ch, change{"upgrade_available", "0"}, change{"bootcount", "0"}, change{"boot_slot_alt", ""})
}

func (s bootcount) boot(v vars) (string, []change) {
	b, err := s.slot(v)
	if err != nil {
		return "", nil
	}
	var ch []change
	if v["boot_slot"] == "" {
		ch = append(ch, change{"boot_slot", b})
	}
	if !s.trial(v) {
		return b, ch
	}
	n := count(v["bootcount"], 0) + 1
	if !s.exhausted(v, 1) {
		return b, append(ch, change{"bootcount", strconv.Itoa(n)})
	}
	// altbootcmd
	ch = append(ch, change{s.ok(b), "0"})
	if a := s.alt(v, b); a != "" {
		b = a
		ch = append(ch, change{"boot_slot", a})
	}
	return b, append(ch, change{"boot_slot_alt", ""}, change{"upgrade_available", "0"}, change{"bootcount", "0"})
}

// apply returns v with ch applied.
func apply(v vars, ch []change) vars {
	out := make(vars, len(v)+len(ch))
	for k, x := range v {
		if x != "" {
			out[k] = x
		}
	}
	for _, c := range ch {
		if c.value == "" {
			delete(out, c.name)
		} else {
			out[c.name] = c.value
		}
	}
	return out
}

// effective drops changes that do not alter v, so a call that changes
// nothing writes nothing (environment storage is often flash).
func effective(v vars, ch []change) []change {
	final := apply(v, ch)
	var out []change
	seen := map[string]bool{}
	for i := len(ch) - 1; i >= 0; i-- {
		n := ch[i].name
		if seen[n] {
			continue
		}
		seen[n] = true
		if final[n] != v[n] {
			out = append(out, change{n, final[n]})
		}
	}
	slices.Reverse(out)
	return out
}
