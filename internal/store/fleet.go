package store

import (
	"context"
	"time"
)

// FleetStats are the counts behind the fleet overview: how many devices
// checked in recently, and which assignments ended badly lately. Both read
// the whole tenant with a fixed number of queries.
type FleetStats interface {
	// CountDevicesSeen counts the tenant's devices per state by when they
	// were last seen: at or after since (Recent), before it (Earlier), or
	// never. Last-seen times are written in batches (TouchLastSeen), so
	// they trail check-ins by up to the flush interval.
	CountDevicesSeen(ctx context.Context, tenant string, since time.Time) (map[DeviceState]SeenCounts, error)
	// AssignmentOutcomes counts the assignments in one of q.States whose
	// last change (UpdatedAt: for a terminal state, when it was reached)
	// is at or after q.Since, per state, and lists the newest q.Recent of
	// them, newest first. An empty q.States counts nothing.
	AssignmentOutcomes(ctx context.Context, tenant string, q OutcomeQuery) (map[AssignmentState]int, []Assignment, error)
}

// SeenCounts splits devices by their last check-in.
type SeenCounts struct {
	Recent  int `json:"recent"`
	Earlier int `json:"earlier"`
	Never   int `json:"never"`
}

// Total is the number of devices counted.
func (c SeenCounts) Total() int { return c.Recent + c.Earlier + c.Never }

// OutcomeQuery selects assignments by state and recency.
type OutcomeQuery struct {
	States []AssignmentState
	Since  time.Time
	// Recent is how many of the newest matching assignments to return
	// (0: none; at most MaxPageLimit).
	Recent int
}

// FailedStates are the assignment states that count as failures on the
// overview: the device failed, rolled back, or never finished in time.
func FailedStates() []AssignmentState {
	return []AssignmentState{AssignFailed, AssignRolledBack, AssignTimedOut}
}
