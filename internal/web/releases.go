package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
)

// Release pages: the list and a release's detail — its artifacts per
// hardware, whether the offline keys signed them (which role, which keys,
// threshold, expiry), whether it is finalized, and its flags. The
// signature status is worked out here from the signed metadata the
// management API serves (GET /tuf, /tuf/metadata/{name}): the page checks
// the signatures itself rather than trusting a summary.

func (u *UI) releaseRoutes() []route {
	return []route{
		{http.MethodGet, "releases", signedIn, u.releaseList},
		{http.MethodGet, "releases/{id}", signedIn, u.releasePage},
		{http.MethodPost, "releases/{id}/{action}", write, u.releaseAction},
	}
}

const releaseListLimit = 50

type releaseListView struct {
	Items   []store.Release
	NextURL string
}

func (u *UI) releaseList(w http.ResponseWriter, r *http.Request, s *Session) error {
	q := url.Values{"limit": {strconv.Itoa(releaseListLimit)}}
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var out struct {
		Items []store.Release `json:"items"`
		Next  string          `json:"next"`
	}
	if err := s.API().Do(r.Context(), http.MethodGet, "/releases", q, nil, &out); err != nil {
		return err
	}
	return u.render(w, r, s, http.StatusOK, "releases.html", "Releases", releaseListView{Items: out.Items, NextURL: nextPage(r, out.Next)})
}

// hardwareGroup is a release's artifacts for one device type.
type hardwareGroup struct {
	DeviceType string
	Artifacts  []artifactRow
}

type artifactRow struct {
	store.Artifact
	Path string // the TUF target path the offline keys must sign
	// SignedBy is the role whose metadata lists the artifact; Problem says
	// what is wrong when it is not validly signed.
	SignedBy string
	Signed   bool
	Problem  string
	SizeText string
	ShortSum string
}

// roleStatus is one signed metadata file relevant to the release.
type roleStatus struct {
	Role         string
	Delegator    string
	Version      int64
	Expires      time.Time
	Expired      bool
	ExpiresSoon  bool
	Threshold    int
	Authorized   int
	Signers      []string // key ids whose signatures verify (shortened)
	ThresholdMet bool
	Problem      string
}

type finalizedStatus struct {
	At  time.Time
	By  string
	Via string // "release" or a campaign's name
	URL string
}

type signatureView struct {
	// Unavailable explains why there is no signature status at all.
	Unavailable string
	Roles       []roleStatus
	AllSigned   bool
	Unsigned    int
}

type campaignRef struct {
	ID, Name  string
	State     store.CampaignState
	Finalized *time.Time
}

type releaseView struct {
	R         store.Release
	Hardware  []hardwareGroup
	Sig       signatureView
	Finalized *finalizedStatus
	Campaigns []campaignRef
	// CampaignsCapped is set when only the newest campaigns were searched.
	CampaignsCapped bool
	TotalSize       string
	Notice, Error   string
}

func (u *UI) releasePage(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, err := u.loadRelease(r.Context(), s, r.PathValue("id"))
	if err != nil {
		return err
	}
	v.Notice = releaseNotice(r.URL.Query().Get("done"))
	return u.render(w, r, s, http.StatusOK, "release.html", "Release "+v.R.Version, v)
}

// loadRelease reads a release and everything its page shows.
func (u *UI) loadRelease(ctx context.Context, s *Session, id string) (releaseView, error) {
	var v releaseView
	var total int64
	if err := s.API().Do(ctx, http.MethodGet, "/releases/"+url.PathEscape(id), nil, nil, &v.R); err != nil {
		return v, err
	}
	byType := map[string]*hardwareGroup{}
	var types []string
	for _, a := range v.R.Artifacts {
		g := byType[a.DeviceType]
		if g == nil {
			g = &hardwareGroup{DeviceType: a.DeviceType}
			byType[a.DeviceType] = g
			types = append(types, a.DeviceType)
		}
		g.Artifacts = append(g.Artifacts, artifactRow{Artifact: a, Path: signing.TargetPath(a, v.R.Version),
			SizeText: releaseSize(a.Size), ShortSum: shortKey(a.SHA256)})
		total += a.Size
	}
	v.TotalSize = releaseSize(total)
	slices.Sort(types)
	for _, t := range types {
		g := byType[t]
		slices.SortFunc(g.Artifacts, func(a, b artifactRow) int {
			return cmp.Or(cmp.Compare(strings.Join(a.HWRevs, ","), strings.Join(b.HWRevs, ",")),
				cmp.Compare(a.Component, b.Component), cmp.Compare(a.Type, b.Type))
		})
		v.Hardware = append(v.Hardware, *g)
	}
	var err error
	if v.Sig, err = u.signatureStatus(ctx, s, v.Hardware); err != nil {
		return v, err
	}
	if v.Finalized, err = releaseFinalized(ctx, s, v.R.ID); err != nil {
		return v, err
	}
	if v.Campaigns, v.CampaignsCapped, err = releaseCampaigns(ctx, s, v.R.ID); err != nil {
		return v, err
	}
	if v.Finalized == nil {
		for _, c := range v.Campaigns {
			if c.Finalized != nil {
				v.Finalized = &finalizedStatus{At: *c.Finalized, Via: "campaign " + c.Name, URL: Prefix + "campaigns/" + url.PathEscape(c.ID)}
				break
			}
		}
	}
	return v, nil
}

// releaseAction runs a writer's action on a release through the
// management API; a refusal is shown on the release's page.
func (u *UI) releaseAction(w http.ResponseWriter, r *http.Request, s *Session) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	path := "/releases/" + url.PathEscape(id) + "/"
	var body any
	switch action {
	case "publish", "finalize":
		path += action
	case "mark-bad":
		path += action
		body = map[string]any{"bad": true, "reason": strings.TrimSpace(r.PostFormValue("reason"))}
	case "clear-bad":
		path += "mark-bad"
		body = map[string]any{"bad": false}
	default:
		return &APIError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("There is no release action %q.", action)}
	}
	err := s.API().Do(r.Context(), http.MethodPost, path, nil, body, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusNotFound && ae.Status < 500 {
		v, lerr := u.loadRelease(r.Context(), s, id)
		if lerr != nil {
			return err
		}
		v.Error = ae.Message
		return u.render(w, r, s, ae.Status, "release.html", "Release "+v.R.Version, v)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"releases/"+url.PathEscape(id)+"?done="+url.QueryEscape(action), http.StatusSeeOther)
	return nil
}

func releaseNotice(action string) string {
	switch action {
	case "publish":
		return "Published. The release can now be rolled out; it no longer takes artifacts."
	case "finalize":
		return "Finalized. Devices running the release raise their security floor at their next check-in."
	case "mark-bad":
		return "Marked bad. No new campaign may use the release."
	case "clear-bad":
		return "The bad mark is cleared."
	}
	return ""
}

// expiryWarning matches the server's readiness warning window.
const expiryWarning = 30 * 24 * time.Hour

// signatureStatus checks which role signed each artifact, with which keys,
// whether they reach the role's threshold, and when the metadata expires.
// It fills in the rows of hw.
func (u *UI) signatureStatus(ctx context.Context, s *Session, hw []hardwareGroup) (signatureView, error) {
	var sv signatureView
	var st struct {
		Initialized bool `json:"initialized"`
	}
	err := s.API().Do(ctx, http.MethodGet, "/tuf", nil, nil, &st)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		sv.Unavailable = "Signed updates are not set up on this server: devices verify transport only."
		return sv, nil
	case err != nil:
		return sv, err
	case !st.Initialized:
		sv.Unavailable = "No signing keys yet: run updraft keys init, then sign the release with updraft release sign and upload the metadata with updraft release upload-metadata."
		return sv, nil
	}
	fetch := func(role string) ([]byte, error) {
		resp, err := s.API().Raw(ctx, http.MethodGet, "/tuf/metadata/"+url.PathEscape(role+".json"), nil)
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return resp.Body.Bytes(), nil
	}
	rootB, err := fetch(metadata.ROOT)
	if err != nil {
		return sv, err
	}
	topB, err := fetch(metadata.TARGETS)
	if err != nil {
		return sv, err
	}
	root, rerr := metadata.Root().FromBytes(rootB)
	top, terr := metadata.Targets().FromBytes(topB)
	if rerr != nil || terr != nil {
		sv.Unavailable = "The server's signed metadata could not be read."
		return sv, nil
	}
	now := u.now()
	status := func(name, delegator string, expires time.Time, version int64) roleStatus {
		return roleStatus{Role: name, Delegator: delegator, Version: version, Expires: expires,
			Expired: !now.Before(expires), ExpiresSoon: now.Before(expires) && expires.Sub(now) < expiryWarning}
	}
	// Root signs itself; show its expiry and signers as the chain's anchor.
	rs := status(metadata.ROOT, "root", root.Signed.Expires, root.Signed.Version)
	if rr := root.Signed.Roles[metadata.ROOT]; rr != nil {
		rs.Threshold, rs.Authorized = rr.Threshold, len(rr.KeyIDs)
		rs.Signers = validSigners(root.Signed.Keys, rr.KeyIDs, metadata.ROOT, root, true)
		rs.ThresholdMet = root.VerifyDelegate(metadata.ROOT, root) == nil
	}
	ts := status(metadata.TARGETS, "root", top.Signed.Expires, top.Signed.Version)
	if tr := root.Signed.Roles[metadata.TARGETS]; tr != nil {
		ts.Threshold, ts.Authorized = tr.Threshold, len(tr.KeyIDs)
		ts.Signers = validSigners(root.Signed.Keys, tr.KeyIDs, metadata.TARGETS, top, true)
		ts.ThresholdMet = root.VerifyDelegate(metadata.TARGETS, top) == nil
	}
	sv.Roles = []roleStatus{rs, ts}

	// Release roles, fetched once each.
	type loaded struct {
		meta *metadata.Metadata[metadata.TargetsType]
		idx  int // in sv.Roles; -1 until used
	}
	roles := map[string]*loaded{}
	load := func(d metadata.DelegatedRole) (*loaded, error) {
		if l, ok := roles[d.Name]; ok {
			return l, nil
		}
		l := &loaded{idx: -1}
		roles[d.Name] = l
		b, err := fetch(d.Name)
		if err != nil || b == nil {
			return l, err
		}
		if m, err := metadata.Targets().FromBytes(b); err == nil {
			l.meta = m
		}
		return l, nil
	}
	use := func(d metadata.DelegatedRole, l *loaded) *roleStatus {
		if l.idx < 0 {
			rst := roleStatus{Role: d.Name, Delegator: metadata.TARGETS, Threshold: d.Threshold, Authorized: len(d.KeyIDs)}
			if l.meta == nil {
				rst.Problem = "not uploaded yet"
			} else {
				rst = status(d.Name, metadata.TARGETS, l.meta.Signed.Expires, l.meta.Signed.Version)
				rst.Threshold, rst.Authorized = d.Threshold, len(d.KeyIDs)
				rst.Signers = validSigners(top.Signed.Delegations.Keys, d.KeyIDs, d.Name, l.meta, false)
				rst.ThresholdMet = top.VerifyDelegate(d.Name, l.meta) == nil
			}
			sv.Roles = append(sv.Roles, rst)
			l.idx = len(sv.Roles) - 1
		}
		return &sv.Roles[l.idx]
	}
	sv.AllSigned = true
	for gi := range hw {
		for ai := range hw[gi].Artifacts {
			a := &hw[gi].Artifacts[ai]
			if f, ok := top.Signed.Targets[a.Path]; ok {
				a.SignedBy = metadata.TARGETS
				judgeTarget(a, f, &sv.Roles[1])
			} else if top.Signed.Delegations != nil {
				for _, d := range top.Signed.Delegations.Roles {
					if ok, _ := d.IsDelegatedPath(a.Path); !ok {
						continue
					}
					l, err := load(d)
					if err != nil {
						return sv, err
					}
					rst := use(d, l)
					if l.meta == nil {
						a.SignedBy, a.Problem = d.Name, "role "+d.Name+" has no metadata on the server yet"
						break
					}
					if f, ok := l.meta.Signed.Targets[a.Path]; ok {
						a.SignedBy = d.Name
						judgeTarget(a, f, rst)
						break
					}
					a.SignedBy, a.Problem = d.Name, "not in role "+d.Name+": sign it with updraft release sign --role "+d.Name
					if d.Terminating {
						break
					}
				}
			}
			if a.SignedBy == "" {
				a.Problem = "no role is delegated " + a.Path + ": updraft keys delegate " + a.DeviceType
			}
			if !a.Signed {
				sv.AllSigned = false
				sv.Unsigned++
			}
		}
	}
	return sv, nil
}

// judgeTarget checks a signed target against the artifact and its role's status.
func judgeTarget(a *artifactRow, f *metadata.TargetFiles, rs *roleStatus) {
	sum := ""
	if h, ok := f.Hashes["sha256"]; ok {
		sum = h.String()
	}
	switch {
	case f.Length != a.Size || !strings.EqualFold(sum, a.SHA256):
		a.Problem = "the signed length or SHA-256 differs from the uploaded file"
	case !rs.ThresholdMet:
		a.Problem = fmt.Sprintf("role %s has %d valid signatures of the %d it needs", rs.Role, len(rs.Signers), rs.Threshold)
	case rs.Expired:
		a.Problem = "role " + rs.Role + " expired " + fmtTime(rs.Expires) + ": devices refuse it until it is re-signed"
	default:
		a.Signed = true
	}
}

// validSigners lists the key ids, among keyIDs, whose signature on
// delegated verifies: each key is checked on its own by a delegator that
// trusts only it, with threshold 1.
func validSigners(keys map[string]*metadata.Key, keyIDs []string, role string, delegated any, byRoot bool) []string {
	var out []string
	for _, id := range keyIDs {
		k := keys[id]
		if k == nil {
			continue
		}
		var err error
		if byRoot {
			m := metadata.Root()
			m.Signed.Keys = map[string]*metadata.Key{id: k}
			m.Signed.Roles[role] = &metadata.Role{KeyIDs: []string{id}, Threshold: 1}
			err = m.VerifyDelegate(role, delegated)
		} else {
			m := metadata.Targets()
			m.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{id: k},
				Roles: []metadata.DelegatedRole{{Name: role, KeyIDs: []string{id}, Threshold: 1}}}
			err = m.VerifyDelegate(role, delegated)
		}
		if err == nil {
			out = append(out, shortKey(id))
		}
	}
	return out
}

// releaseFinalized reads who finalized the release from the audit log.
func releaseFinalized(ctx context.Context, s *Session, id string) (*finalizedStatus, error) {
	var out struct {
		Items []store.AuditEntry `json:"items"`
	}
	q := url.Values{"action": {"release.finalize"}, "object_type": {"release"}, "object_id": {id}, "limit": {"1"}}
	if err := s.API().Do(ctx, http.MethodGet, "/audit", q, nil, &out); err != nil {
		return nil, err
	}
	if len(out.Items) == 0 {
		return nil, nil
	}
	e := out.Items[len(out.Items)-1]
	return &finalizedStatus{At: e.At, By: e.Actor.Name, Via: "release"}, nil
}

// releaseCampaignPages bounds the campaigns searched for a release's own.
const releaseCampaignPages = 5

// releaseCampaigns lists the campaigns of a release among the newest
// releaseCampaignPages pages of campaigns; capped is set when there were more.
func releaseCampaigns(ctx context.Context, s *Session, id string) (refs []campaignRef, capped bool, err error) {
	after := ""
	for range releaseCampaignPages {
		var out struct {
			Items []store.Campaign `json:"items"`
			Next  string           `json:"next"`
		}
		q := url.Values{"limit": {strconv.Itoa(store.MaxPageLimit)}}
		if after != "" {
			q.Set("after", after)
		}
		if err := s.API().Do(ctx, http.MethodGet, "/campaigns", q, nil, &out); err != nil {
			return nil, false, err
		}
		for _, c := range out.Items {
			if c.ReleaseID == id {
				refs = append(refs, campaignRef{ID: c.ID, Name: c.Name, State: c.State, Finalized: c.FinalizedAt})
			}
		}
		if out.Next == "" {
			return refs, false, nil
		}
		after = out.Next
	}
	return refs, true, nil
}

// releaseSize formats a byte count for people.
func releaseSize(n int64) string {
	const unit = 1000
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// shortKey shortens a key id or digest for display.
func shortKey(s string) string {
	if len(s) <= 12 {
		return s
	}
	return s[:12]
}
