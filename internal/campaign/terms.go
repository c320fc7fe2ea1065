package campaign

import (
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Terms are the campaign settings a device's director-signed assignment
// carries (tufmeta.AssignmentCustom's windows, gates and forced flag). The
// signing service calls AssignmentTerms when it signs an assignment whose
// CampaignID is set.
type Terms struct {
	// Windows are the maintenance windows, evaluated on the device in its
	// own time zone; empty means any time.
	Windows []tufmeta.Window
	// Gates are the campaign's gate overrides; the device may only narrow them.
	Gates tufmeta.GateOverrides
	// Forced is set for a critical release once the campaign's deadline
	// has passed: soft gates and windows no longer hold the device back
	// (hard gates still do).
	Forced bool
}

// AssignmentTerms returns the terms of campaign c for an assignment signed
// at now. rel is the campaign's release (its severity decides forcing).
func AssignmentTerms(c store.Campaign, rel store.Release, now time.Time) (Terms, error) {
	s, err := FromCampaign(c)
	if err != nil {
		return Terms{}, err
	}
	t := Terms{Windows: s.Schedule.Windows, Gates: s.Gates}
	if d := s.Schedule.Deadline; d != nil && !now.Before(*d) && rel.Severity == store.SeverityCritical {
		t.Forced = true
	}
	return t, nil
}
