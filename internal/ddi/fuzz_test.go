package ddi

import (
	"testing"

	"github.com/updraft/updraft/internal/store"
)

// FuzzParseFeedback checks that any body either is refused or maps onto a
// status report the store accepts (apart from the sequence number the
// server assigns).
func FuzzParseFeedback(f *testing.F) {
	f.Add([]byte(`{"id":"","time":"20261128T003509","status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":2,"of":5}},"details":["Downloading"]}}`))
	f.Add([]byte(`{"timestamp":1627997501890,"status":{"execution":"closed","code":200,"result":{"finished":"failure"}}}`))
	f.Add([]byte(`{"status":{"execution":"canceled","result":{"finished":"none"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := parseFeedback(body)
		if err != nil {
			return
		}
		for _, h := range []handlingTypes{{download: typeAttempt, update: typeAttempt}, {download: typeAttempt, update: typeSkip}} {
			as := store.Assignment{ID: "a1", State: store.AssignNotified}
			r := deploymentReport(as, st, h)
			r.Seq = 1
			if err := r.Validate(); err != nil {
				t.Fatalf("parsed feedback %s maps to an invalid report %+v: %v", body, r, err)
			}
		}
	})
}
