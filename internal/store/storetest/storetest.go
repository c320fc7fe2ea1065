// Package storetest is the conformance suite every store implementation
// passes: internal/store/sqlite and internal/store/postgres run the same
// tests through Run. Tests here use a fixed clock value per test and fresh,
// empty databases.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// Harness opens stores for the suite.
type Harness struct {
	// Open returns a store on a fresh, empty, unmigrated database that is
	// removed when t ends.
	Open func(t *testing.T) *sqlstore.Store
}

// T0 is the time the suite's tests start at.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Admin is the actor the suite makes changes as.
var Admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}

// NewStore opens and fully migrates a fresh store.
func (h Harness) NewStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := h.Open(t)
	if _, err := s.Migrate(context.Background(), sqlstore.MigrateOptions{Now: T0}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

// Run runs the whole conformance suite.
func Run(t *testing.T, h Harness) {
	suites := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"Migrations", testMigrations},
		{"Audit", testAudit},
		{"Secrets", testSecrets},
		{"Leases", testLeases},
		{"Devices", testDevices},
		{"CountDevicesBy", testCountDevicesBy},
		{"Operators", testOperators},
		{"TouchAPITokens", testTouchAPITokens},
		{"Telemetry", testTelemetry},
		{"Releases", testReleases},
		{"Assignments", testAssignments},
		{"Reports", testReports},
		{"TUF", testTUF},
		{"CheckIn", testCheckIn},
		{"Campaigns", testCampaigns},
		{"DDI", testDDI},
		{"Compliance", testCompliance},
		{"FleetStats", testFleetStats},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) { s.fn(t, h) })
	}
}
