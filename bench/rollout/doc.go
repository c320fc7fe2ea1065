// Package rolloutbench measures the quality of rollout decisions: how often
// internal/health's policy halts a good release, how often and how early it
// halts a bad one, and the same for a fixed-threshold rule of the kind
// hawkBit and AWS IoT Jobs offer (halt when more than 5 % of at least 50
// devices failed to install), on the same simulated fleets.
//
// Each simulated campaign runs a synthetic fleet of 10,000 devices in three
// hardware revisions (50 %, 30 %, 20 %) through the waves health.PlanWaves
// derives, drawn by health.DrawWaves with a 1 % hold-back control. Devices
// fail to install at a base rate of 1 %, crash at 0.002 and reboot
// unexpectedly at 0.001 per device-hour, both following a daily cycle
// shared by the whole fleet; 0.5 % of devices crash-loop (capped at 3
// counted crashes per device-day, as the policy's EventCap says). Bad
// releases raise the install-failure or the crash rate by 1.5×, 2× or 3×,
// fleet-wide or on the smallest revision only; one more scenario repeats the
// doubled crash rate under a rate tolerance of 1.5 instead of the default
// 1.25. The policy is evaluated every 30 minutes while a wave installs and
// every 2 hours while it soaks; the fixed rule is checked after every single
// install, which favours it.
//
// Run it with
//
//	go test -run '^$' -bench . ./bench/rollout
//
// It prints a table and reports, per scenario, policy-halt-% and
// fixed-halt-% (the false-halt rate for the good release, the detection
// rate otherwise) and policy-exposed and fixed-exposed (mean devices
// updated when a halt came). Every campaign's seed is fixed and printed, so
// the figures are the same on every run.
package rolloutbench
