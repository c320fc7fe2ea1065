// Package testenv finds the external services and tools that some tests need
// (PostgreSQL, an MQTT broker, nginx, Chromium, SWUpdate, …).
//
// When a service is missing the test is skipped with a message that says what
// is missing and how to provide it, unless UPDRAFT_REQUIRE_SERVICES=1 is set
// (as .ci/run does), in which case the test fails: CI must never pass by
// silently skipping. The package is imported only from tests and benchmarks.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// RequireServices reports whether missing services must fail tests.
func RequireServices() bool { return os.Getenv("UPDRAFT_REQUIRE_SERVICES") == "1" }

// Missing skips t, or fails it when services are required, explaining what
// is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireServices() {
		t.Fatalf("required service missing (UPDRAFT_REQUIRE_SERVICES=1): %s", msg)
	}
	t.Skipf("skipping: %s (set UPDRAFT_REQUIRE_SERVICES=1 to make this a failure)", msg)
}

// PostgresBaseURL is the server the tests create their databases on:
// UPDRAFT_TEST_POSTGRES_URL, or the local trust-auth default.
func PostgresBaseURL() string {
	if u := os.Getenv("UPDRAFT_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Postgres creates a fresh, empty database for this test and returns its
// connection URL; the database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	base := PostgresBaseURL()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		Missing(t, "PostgreSQL at %s: %v", redact(base), err)
	}
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		Missing(t, "PostgreSQL at %s is not reachable: %v (start it or set UPDRAFT_TEST_POSTGRES_URL)", redact(base), err)
	}
	name := "updraft_test_" + randomHex(6)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", redact(base), err)
	}
	u.Path = "/" + name
	return u.String()
}

// Command returns the path of an executable, or skips/fails the test with a
// hint naming the script that installs it.
func Command(t testing.TB, name, installHint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s is not installed (%s)", name, installHint)
	}
	return p
}

// TCP checks that something listens at addr, or skips/fails the test.
func TCP(t testing.TB, service, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		Missing(t, "%s is not reachable at %s: %v", service, addr, err)
	}
	c.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
