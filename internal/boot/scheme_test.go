package boot

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSchemeProperties drives every scheme through random calls, boots and
// corrupted variables, and checks what the Backend contract promises:
// Primary predicts what the boot script boots, SetPrimary and SetState take
// effect, a slot marked bad is not primary while another slot is good, and
// repeating a call writes nothing.
func TestSchemeProperties(t *testing.T) {
	t.Parallel()
	slots := slotSet{"A", "B", "rescue"}
	junk := []string{"", "0", "1", "2", "3", "9", "-1", "x", "A", "B", "C", "A B", "B A", "rescue A", "B B A"}
	for _, kind := range []Scheme{SchemeRAUCUBoot, SchemeRAUCGRUB, SchemeBootcount} {
		for _, attempts := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d", kind, attempts), func(t *testing.T) {
				t.Parallel()
				sch, err := newScheme(kind, slots, attempts)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(uint64(attempts), 1))
				v := vars{}
				for step := range 5000 {
					x := slots[r.IntN(len(slots))]
					var ch []change
					var what string
					switch r.IntN(6) {
					case 0:
						what = "set primary " + x
						ch = sch.setPrimary(v, x)
					case 1:
						what = "mark good " + x
						ch = sch.setState(v, x, Good)
					case 2:
						what = "mark bad " + x
						ch = sch.setState(v, x, Bad)
					case 3, 4:
						what = "boot"
						var slot string
						slot, ch = sch.boot(v)
						want, perr := sch.primary(v)
						after := apply(v, ch)
						if slot == "" {
							var ch2 []change
							slot, ch2 = sch.boot(after)
							after = apply(after, ch2)
						}
						if perr == nil && slot != want {
							t.Fatalf("step %d: Primary said %q but the script booted %q (vars %v)", step, want, slot, v)
						}
						if perr != nil && slot != "" {
							t.Fatalf("step %d: Primary failed (%v) but the script booted %q", step, perr, slot)
						}
						v = after
						continue
					case 5:
						names := sch.names()
						n := names[r.IntN(len(names))]
						what = "corrupt " + n
						ch = []change{{n, junk[r.IntN(len(junk))]}}
					}
					next := apply(v, ch)
					switch what[:4] {
					case "set ":
						if p, err := sch.primary(next); err != nil || p != x || sch.state(next, x) != Good {
							t.Fatalf("step %d: after %s: primary %q, %v, state %s (vars %v)", step, what, p, err, sch.state(next, x), next)
						}
					case "mark":
						st := Good
						if what[5:8] == "bad" {
							st = Bad
						}
						if got := sch.state(next, x); got != st {
							t.Fatalf("step %d: after %s: state %s (vars %v)", step, what, got, next)
						}
						otherGood := slices.ContainsFunc(slots, func(y string) bool { return y != x && sch.state(next, y) == Good })
						if p, err := sch.primary(next); st == Bad && otherGood && err == nil && p == x {
							t.Fatalf("step %d: after %s it is still primary though another slot is good (vars %v)", step, what, next)
						}
					}
					if what[:4] != "corr" {
						var again []change
						if what[:4] == "set " {
							again = sch.setPrimary(next, x)
						} else {
							again = sch.setState(next, x, sch.state(next, x))
						}
						if e := effective(next, again); len(e) > 0 {
							t.Fatalf("step %d: repeating %s would write %v (vars %v)", step, what, e, next)
						}
					}
					v = next
				}
			})
		}
	}
}

func TestEffectiveDropsNoOps(t *testing.T) {
	t.Parallel()
	v := vars{"a": "1", "b": "2"}
	got := effective(v, []change{{"a", "1"}, {"b", "3"}, {"c", ""}, {"d", "4"}, {"d", ""}, {"b", "2"}})
	if len(got) != 0 {
		t.Fatalf("effective = %v, want nothing", got)
	}
	got = effective(v, []change{{"a", ""}, {"c", "5"}})
	want := []change{{"a", ""}, {"c", "5"}}
	if !slices.Equal(got, want) {
		t.Fatalf("effective = %v, want %v", got, want)
	}
	if a := apply(v, got); !maps.Equal(a, vars{"b": "2", "c": "5"}) {
		t.Fatalf("apply = %v", a)
	}
}
