package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Campaigns (store.Campaigns). The store keeps the spec, plan and engine
// bookkeeping as opaque JSON text; it enforces the row's identity, the
// release it points at and the states. UpdateCampaign locks the row, so an
// operator's command and the engine's write never interleave: each sees
// the other's committed change and the version grows by one per write.

const campaignSelect = `SELECT c.tenant_id, c.id, c.name, c.kind, c.release_id, r.version, c.rollback_of, c.spec, c.plan, c.engine,
	c.state, c.state_reason, c.step, c.approved_step, c.retry_requested, c.seed, c.version, c.created_at, c.updated_at,
	c.started_at, c.finished_at, c.finalized_at
	FROM campaigns c JOIN releases r ON r.tenant_id = c.tenant_id AND r.id = c.release_id`

func scanCampaign(row interface{ Scan(...any) error }) (store.Campaign, error) {
	var c store.Campaign
	var spec, plan, engine, state string
	var created, updated int64
	var started, finished, finalized sql.NullInt64
	if err := row.Scan(&c.TenantID, &c.ID, &c.Name, &c.Kind, &c.ReleaseID, &c.Version, &c.RollbackOf, &spec, &plan, &engine,
		&state, &c.StateReason, &c.Step, &c.ApprovedStep, &c.RetryRequested, &c.Seed, &c.Revision, &created, &updated,
		&started, &finished, &finalized); err != nil {
		return c, err
	}
	c.Spec, c.Plan, c.Engine = json.RawMessage(spec), json.RawMessage(plan), json.RawMessage(engine)
	c.State = store.CampaignState(state)
	c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
	c.StartedAt, c.FinishedAt, c.FinalizedAt = timePtr(started), timePtr(finished), timePtr(finalized)
	return c, nil
}

// jsonOr returns raw as text, or def when raw is empty; raw must be JSON.
func jsonOr(field string, raw json.RawMessage, def string) (string, error) {
	if len(raw) == 0 {
		return def, nil
	}
	if !json.Valid(raw) {
		return "", invalidf("campaign %s is not valid JSON", field)
	}
	return string(raw), nil
}

func checkCampaign(c store.Campaign) error {
	if err := checkLabel("campaign name", c.Name, true); err != nil {
		return err
	}
	if len(c.Name) > 200 {
		return invalidf("campaign name is longer than 200 bytes")
	}
	if c.Kind != store.CampaignKindRollout && c.Kind != store.CampaignKindRollback {
		return invalidf("campaign kind %q is not rollout or rollback", c.Kind)
	}
	if !c.State.Known() {
		return invalidf("campaign state %q is unknown", c.State)
	}
	return checkText("campaign state reason", c.StateReason, maxReasonLen)
}

// CreateCampaign implements store.Campaigns.
func (s *Store) CreateCampaign(ctx context.Context, c store.Campaign, by store.Actor, now time.Time) (store.Campaign, error) {
	now = storedTime(now)
	if c.ID == "" {
		c.ID = newID()
	}
	if c.TenantID == "" || c.ReleaseID == "" {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", invalidf("a campaign needs a tenant and a release"))
	}
	if c.State == "" {
		c.State = store.CampaignDraft
	}
	if err := checkCampaign(c); err != nil {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	spec, err := jsonOr("spec", c.Spec, "{}")
	if err != nil {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	plan, err := jsonOr("plan", c.Plan, "{}")
	if err != nil {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	engine, err := jsonOr("engine", c.Engine, "{}")
	if err != nil {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	var out store.Campaign
	err = s.tx(ctx, func(t *txn) error {
		r, err := scanRelease(t.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND id = ?`, c.TenantID, c.ReleaseID))
		if err != nil {
			return notFound(err, "release "+c.ReleaseID)
		}
		if r.State != store.ReleasePublished {
			return store.Conflictf("release %s is a draft; publish it before starting a campaign", r.Version)
		}
		if _, err := t.exec(ctx, `INSERT INTO campaigns (tenant_id, id, name, kind, release_id, rollback_of, spec, plan, engine, state, state_reason,
			step, approved_step, retry_requested, seed, version, created_at, updated_at, started_at, finished_at, finalized_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 1, ?, ?, ?, NULL, NULL)`,
			c.TenantID, c.ID, c.Name, c.Kind, c.ReleaseID, c.RollbackOf, spec, plan, engine, string(c.State), c.StateReason,
			c.Step, c.ApprovedStep, c.Seed, micros(now), micros(now), nullMicros(c.StartedAt)); err != nil {
			if s.d.IsUniqueViolation(err) {
				return store.Conflictf("campaign %s already exists", c.ID)
			}
			return fmt.Errorf("insert campaign: %w", err)
		}
		if err := t.audit(ctx, c.TenantID, by, "campaign.create", "campaign", c.ID, map[string]any{
			"name": c.Name, "kind": c.Kind, "release_id": r.ID, "version": r.Version, "rollback_of": c.RollbackOf, "state": c.State,
		}, now); err != nil {
			return err
		}
		out, err = scanCampaign(t.queryRow(ctx, campaignSelect+` WHERE c.tenant_id = ? AND c.id = ?`, c.TenantID, c.ID))
		return err
	})
	if err != nil {
		return store.Campaign{}, fmt.Errorf("create campaign: %w", err)
	}
	return out, nil
}

// Campaign implements store.Campaigns.
func (s *Store) Campaign(ctx context.Context, tenant, id string) (store.Campaign, error) {
	c, err := scanCampaign(s.queryRow(ctx, campaignSelect+` WHERE c.tenant_id = ? AND c.id = ?`, tenant, id))
	if err != nil {
		return store.Campaign{}, notFound(err, "campaign "+id)
	}
	return c, nil
}

// ListCampaigns implements store.Campaigns: newest first.
func (s *Store) ListCampaigns(ctx context.Context, tenant string, q store.CampaignQuery) ([]store.Campaign, string, error) {
	where := `c.tenant_id = ?`
	args := []any{tenant}
	if len(q.States) > 0 {
		where += ` AND c.state IN (` + placeholders(len(q.States)) + `)`
		for _, st := range q.States {
			if !st.Known() {
				return nil, "", invalidf("unknown campaign state %q", st)
			}
			args = append(args, string(st))
		}
	}
	if q.Page.After != "" {
		at, id, err := decodeTimeCursor(q.Page.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (c.created_at < ? OR (c.created_at = ? AND c.id < ?))`
		args = append(args, at, at, id)
	}
	n := limit(q.Page)
	rows, err := s.query(ctx, campaignSelect+` WHERE `+where+` ORDER BY c.created_at DESC, c.id DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list campaigns: %w", err)
	}
	out, next, err := scanPage(rows, n, scanCampaign, func(v store.Campaign) string { return timeCursor(v.CreatedAt, v.ID) })
	if err != nil {
		return nil, "", fmt.Errorf("list campaigns: %w", err)
	}
	return out, next, nil
}

// ActiveCampaigns implements store.Campaigns.
func (s *Store) ActiveCampaigns(ctx context.Context) ([]store.Campaign, error) {
	rows, err := s.query(ctx, campaignSelect+` WHERE c.state IN (?, ?, ?, ?) OR (c.state = ? AND c.finished_at IS NULL) ORDER BY c.created_at, c.id`,
		string(store.CampaignRunning), string(store.CampaignWaitingApproval), string(store.CampaignPaused), string(store.CampaignHalted),
		string(store.CampaignAborted))
	if err != nil {
		return nil, fmt.Errorf("active campaigns: %w", err)
	}
	defer rows.Close()
	var out []store.Campaign
	for rows.Next() {
		c, err := scanCampaign(rows)
		if err != nil {
			return nil, fmt.Errorf("active campaigns: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateCampaign implements store.Campaigns.
func (s *Store) UpdateCampaign(ctx context.Context, tenant, id string, u store.CampaignUpdate) (store.Campaign, error) {
	now := storedTime(u.Now)
	var out store.Campaign
	err := s.tx(ctx, func(t *txn) error {
		if u.Lease != nil {
			if err := t.fence(ctx, *u.Lease, now); err != nil {
				return err
			}
		}
		// Lock the row first (PostgreSQL), then read it.
		res, err := t.exec(ctx, `UPDATE campaigns SET version = version WHERE tenant_id = ? AND id = ?`, tenant, id)
		if err != nil {
			return fmt.Errorf("lock campaign: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("campaign %s: %w", id, store.ErrNotFound)
		}
		c, err := scanCampaign(t.queryRow(ctx, campaignSelect+` WHERE c.tenant_id = ? AND c.id = ?`, tenant, id))
		if err != nil {
			return notFound(err, "campaign "+id)
		}
		before := c
		if u.Apply != nil {
			if err := u.Apply(&c); err != nil {
				return err
			}
		}
		if c.ID != before.ID || c.TenantID != before.TenantID || c.ReleaseID != before.ReleaseID || c.Kind != before.Kind {
			return invalidf("a campaign's identity, kind and release cannot change")
		}
		if err := checkCampaign(c); err != nil {
			return err
		}
		spec, err := jsonOr("spec", c.Spec, "{}")
		if err != nil {
			return err
		}
		plan, err := jsonOr("plan", c.Plan, "{}")
		if err != nil {
			return err
		}
		engine, err := jsonOr("engine", c.Engine, "{}")
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE campaigns SET name = ?, spec = ?, plan = ?, engine = ?, state = ?, state_reason = ?, step = ?,
			approved_step = ?, retry_requested = ?, version = version + 1, updated_at = ?, started_at = ?, finished_at = ?, finalized_at = ?
			WHERE tenant_id = ? AND id = ?`,
			c.Name, spec, plan, engine, string(c.State), c.StateReason, c.Step, c.ApprovedStep, c.RetryRequested, micros(now),
			nullMicros(c.StartedAt), nullMicros(c.FinishedAt), nullMicros(c.FinalizedAt), tenant, id); err != nil {
			return fmt.Errorf("update campaign: %w", err)
		}
		if d := u.Decision; d != nil {
			detail, err := jsonOr("decision detail", d.Detail, "{}")
			if err != nil {
				return err
			}
			if _, err := t.exec(ctx, `INSERT INTO campaign_decisions (tenant_id, campaign_id, seq, at, step, verdict, action, summary, detail)
				SELECT ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ? FROM campaign_decisions WHERE tenant_id = ? AND campaign_id = ?`,
				tenant, id, micros(now), d.Step, d.Verdict, d.Action, d.Summary, detail, tenant, id); err != nil {
				return fmt.Errorf("store decision: %w", err)
			}
		}
		for _, p := range u.RatePeriods {
			if _, err := t.exec(ctx, `INSERT INTO campaign_rate_periods (tenant_id, campaign_id, hour, stratum, metric, canary_events, canary_hours, control_events, control_hours)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, campaign_id, hour, stratum, metric) DO NOTHING`,
				tenant, id, micros(p.Hour), p.Stratum, p.Metric, p.CanaryEvents, p.CanaryHours, p.ControlEvents, p.ControlHours); err != nil {
				return fmt.Errorf("store rate period: %w", err)
			}
		}
		if err := t.enqueueWebhookEvents(ctx, tenant, u.Events, now); err != nil {
			return err
		}
		if u.Action != "" {
			if err := t.audit(ctx, tenant, u.By, u.Action, "campaign", id, u.Details, now); err != nil {
				return err
			}
		}
		out, err = scanCampaign(t.queryRow(ctx, campaignSelect+` WHERE c.tenant_id = ? AND c.id = ?`, tenant, id))
		return err
	})
	if err != nil {
		return store.Campaign{}, fmt.Errorf("update campaign %s: %w", id, err)
	}
	return out, nil
}

// ListCampaignDecisions implements store.Campaigns: newest first.
func (s *Store) ListCampaignDecisions(ctx context.Context, tenant, campaignID string, p store.Page) ([]store.CampaignDecision, string, error) {
	if _, err := s.Campaign(ctx, tenant, campaignID); err != nil {
		return nil, "", err
	}
	where := `tenant_id = ? AND campaign_id = ?`
	args := []any{tenant, campaignID}
	if p.After != "" {
		parts, err := decodeCursor(p.After, 1)
		if err != nil {
			return nil, "", err
		}
		seq, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return nil, "", invalidf("malformed page cursor")
		}
		where += ` AND seq < ?`
		args = append(args, seq)
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT seq, at, step, verdict, action, summary, detail FROM campaign_decisions WHERE `+where+
		` ORDER BY seq DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list decisions: %w", err)
	}
	defer rows.Close()
	out := []store.CampaignDecision{}
	for rows.Next() {
		var d store.CampaignDecision
		var at int64
		var detail string
		if err := rows.Scan(&d.Seq, &at, &d.Step, &d.Verdict, &d.Action, &d.Summary, &detail); err != nil {
			return nil, "", fmt.Errorf("list decisions: %w", err)
		}
		d.At, d.Detail = fromMicros(at), json.RawMessage(detail)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list decisions: %w", err)
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = encodeCursor(strconv.FormatInt(out[n-1].Seq, 10))
	}
	return out, next, nil
}

// CampaignRatePeriods implements store.Campaigns, by hour.
func (s *Store) CampaignRatePeriods(ctx context.Context, tenant, campaignID string) ([]store.CampaignRatePeriod, error) {
	rows, err := s.query(ctx, `SELECT hour, stratum, metric, canary_events, canary_hours, control_events, control_hours
		FROM campaign_rate_periods WHERE tenant_id = ? AND campaign_id = ? ORDER BY hour, stratum, metric`, tenant, campaignID)
	if err != nil {
		return nil, fmt.Errorf("rate periods: %w", err)
	}
	defer rows.Close()
	var out []store.CampaignRatePeriod
	for rows.Next() {
		var p store.CampaignRatePeriod
		var hour int64
		if err := rows.Scan(&hour, &p.Stratum, &p.Metric, &p.CanaryEvents, &p.CanaryHours, &p.ControlEvents, &p.ControlHours); err != nil {
			return nil, fmt.Errorf("rate periods: %w", err)
		}
		p.Hour = fromMicros(hour)
		out = append(out, p)
	}
	return out, rows.Err()
}

// errNoRows reports whether err is sql.ErrNoRows.
func errNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
