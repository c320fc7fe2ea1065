package web

// routes lists every dashboard page and action. Each area of the dashboard
// contributes its own list.
func (u *UI) routes() []route {
	var rs []route
	for _, area := range [][]route{
		u.sessionRoutes(),
		u.overviewRoutes(),
		u.deviceRoutes(),
		u.campaignRoutes(),
		u.campaignNewRoutes(),
		u.releaseRoutes(),
		u.auditRoutes(), u.reportRoutes(),
	} {
		rs = append(rs, area...)
	}
	return rs
}
