package deviceapi

// ReportsWaiting is the number of report requests blocked in the group
// commit (queued or being committed).
func (a *API) ReportsWaiting() int { return int(a.committer.waiting.Load()) }

// ReportsQueued is the number of report requests not yet picked up by the
// committer.
func (a *API) ReportsQueued() int { return len(a.committer.in) }
