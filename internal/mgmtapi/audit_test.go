package mgmtapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// verifyFailingStore is a store whose audit verification fails the way a
// database does, or reports a break, as told.
type verifyFailingStore struct {
	store.Store
	err error
}

func (s verifyFailingStore) VerifyAudit(context.Context, string) (int, error) { return 3, s.err }

// TestVerifyAuditTamperingVersusFailure checks that /audit/verify tells a
// broken chain (200, ok false, the store's own description) from a
// database failure (500, nothing of the cause in the body).
func TestVerifyAuditTamperingVersusFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name    string
		err     error
		status  int
		problem string
	}{
		{"broken chain", fmt.Errorf("verify: %w", &store.AuditBrokenError{Seq: 4, Problem: "previous hash does not match the chain"}),
			http.StatusOK, "audit entry 4: previous hash does not match the chain"},
		{"database failure", errors.New("pq: connection to 10.1.2.3 refused for user updraft"), http.StatusInternalServerError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api, err := New(Config{Store: verifyFailingStore{e.st, tt.err}, Blobs: e.blobs, Clock: e.clock, PasswordParams: testArgon2})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", Prefix+"/audit/verify", nil)
			r.Header.Set("Authorization", "Bearer "+e.viewer)
			rec := httptest.NewRecorder()
			api.Handler().ServeHTTP(rec, r)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status != http.StatusOK {
				var b apierror.Body
				if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code != "internal" || strings.Contains(rec.Body.String(), "10.1.2.3") {
					t.Fatalf("failure body %s (%v); want a generic internal error", rec.Body, err)
				}
				return
			}
			var v auditVerifyBody
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			if v.OK || v.Checked != 3 || v.Problem != tt.problem {
				t.Fatalf("verify = %+v, want not ok after 3 with %q", v, tt.problem)
			}
		})
	}
}
