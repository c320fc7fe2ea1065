package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// filter sets the audit filters of o (without paging) on q.
func (o AuditListOptions) filter(q url.Values) url.Values {
	for k, v := range map[string]string{"action": o.Action, "object_type": o.ObjectType, "object_id": o.ObjectID, "actor": o.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.UTC().Format(time.RFC3339Nano))
	}
	return q
}

// ExportAudit streams every audit entry matching o's filters (its paging
// is ignored), newest first, in format "csv" or "json". The caller reads
// and closes the body; a transfer the server aborted ends in a read error,
// never in a clean end of file. Client.Timeout does not apply: an export
// takes as long as the log is big, bounded by ctx.
func (c *Client) ExportAudit(ctx context.Context, o AuditListOptions, format string) (io.ReadCloser, error) {
	q := o.filter(url.Values{})
	q.Set("format", format)
	return c.stream(ctx, q, "audit", "export")
}

// ComplianceOptions select a compliance report (docs/compliance.md).
type ComplianceOptions struct {
	// At is an RFC 3339 time or a date (YYYY-MM-DD, the end of that day
	// in UTC); empty means now.
	At         string
	Release    string   // a version or release id
	Severities []string // fix release severities (default high, critical)
	CVE        string
	// Exposed is nil for the server's default (exposed devices only when
	// Severities or CVE is set).
	Exposed *bool
	ListOptions
}

func (o ComplianceOptions) values() url.Values {
	q := o.ListOptions.values()
	if o.At != "" {
		q.Set("at", o.At)
	}
	if o.Release != "" {
		q.Set("release", o.Release)
	}
	if len(o.Severities) > 0 {
		q.Set("severity", strings.Join(o.Severities, ","))
	}
	if o.CVE != "" {
		q.Set("cve", o.CVE)
	}
	if o.Exposed != nil {
		q.Set("exposed", fmt.Sprint(*o.Exposed))
	}
	return q
}

// ComplianceReport is one page of the compliance report.
type ComplianceReport struct {
	At          time.Time             `json:"at"`
	Release     string                `json:"release,omitempty"`
	Severities  []store.Severity      `json:"severities"`
	CVE         string                `json:"cve,omitempty"`
	ExposedOnly bool                  `json:"exposed_only"`
	Items       []store.DeviceVersion `json:"items"`
	Next        string                `json:"next,omitempty"`
}

// Compliance returns one JSON page of the compliance report.
func (c *Client) Compliance(ctx context.Context, o ComplianceOptions) (ComplianceReport, error) {
	var out ComplianceReport
	err := c.call(ctx, http.MethodGet, o.values(), nil, &out, "reports", "compliance")
	return out, err
}

// ComplianceCSV streams the whole compliance report as CSV (o's paging is
// ignored); see ExportAudit for reading the body.
func (c *Client) ComplianceCSV(ctx context.Context, o ComplianceOptions) (io.ReadCloser, error) {
	o.ListOptions = ListOptions{}
	q := o.values()
	q.Set("format", "csv")
	return c.stream(ctx, q, "reports", "compliance")
}

// stream sends a GET and returns the body of a successful response.
func (c *Client) stream(ctx context.Context, q url.Values, segs ...string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(q, api(segs...)...), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, &NetError{Server: c.base.String(), Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, readAPIError(resp)
	}
	return resp.Body, nil
}
