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
// regularized incomplete beta and gamma functions in log space, Wald's
// sequential probability ratio test for install failures, the exact
// conditional test for two Poisson rates, and a mixture likelihood ratio
// (an e-process) for the canary:control rate ratio that stays valid however
// often it is looked at. Evaluate combines them under one error budget split
// across strata and metrics (Bonferroni), a hard guardrail on bricked and
// rolled-back devices and a minimum soak. docs/rollout-safety.md gives the
// derivations, defaults and benchmark figures.
package health
