// Package health turns campaign evidence into rollout decisions: advance to
// the next wave, hold, or halt.
//
// Everything here is a pure function of its arguments. The package reads no
// clock (elapsed times are passed in), touches no database and keeps no
// package-level mutable state, so a decision can be recomputed from stored
// evidence and every value is safe for concurrent use. Randomness (drawing
// waves) comes only from a caller-supplied, seeded *rand.Rand.
//
// The building blocks are exact: binomial and Poisson tails through the
// regularized incomplete beta and gamma functions in log space, the exact
// binomial test with its power and canary size, Wald's sequential
// probability ratio test, the exact conditional test for two Poisson rates,
// and mixtures of likelihood ratios — for install failures against a
// baseline and for the canary:control rate ratio — that stay valid however
// often they are looked at (Ville's inequality). Evaluate combines them
// under one error budget split across strata and metrics (Bonferroni), a
// hard guardrail on bricked and rolled-back devices and a minimum soak.
// PlanWaves sizes waves from a power calculation and DrawWaves draws them at
// random within strata, holding back a control group.
//
// docs/rollout-safety.md gives the derivations, defaults, the evidence the
// engine must supply and benchmark figures.
package health
