// Package preflight runs a campaign's plan against a statistical twin of
// the fleet it targets, before the campaign touches a device: the same
// strata, time zones, link quality and baseline health rates the registry
// and recent history show, under assumed release behaviours (a good
// release, and regressions of 1.5×, 2× and 3× fleet-wide or confined to
// the smallest stratum). Each scenario is repeated over many seeded runs
// and summarised as the expected duration, the devices exposed before a
// halt, the detection probability and the chance of a false halt.
//
// The twin models devices statistically: it draws counts per stratum, time
// zone and telemetry flag (how many of the devices handed the release in a
// five-minute step fail, time out, report in each later step; how many
// crashes their device-hours produce) instead of running agents. The full
// agent simulator is `updraft sim`. What it shares with the engine is what
// decides: waves are split over strata by health.Allocate, the engine's
// stratified draw; windows are judged by agent/gate.Inside in each zone;
// pacing follows the engine's token bucket and per-tick batch; and every
// decision is health.Evaluate under the campaign's policy, with the
// engine's soak rule and its confinement of a halt to the strata that
// rejected (widened by rollout.SpreadE).
//
// Everything here except Gather is a pure function of its input and seed:
// the same Input gives the same Report on every machine. Run is safe for
// concurrent use; it spreads the runs over GOMAXPROCS goroutines and
// stores results by run index, so scheduling does not change the figures.
package preflight
