package ddi

import (
	"fmt"
	"time"
)

// JSON shapes of DDI v1, named after hawkBit's Ddi* resources.

type link struct {
	Href string `json:"href"`
}

type pollResponse struct {
	Config pollConfig      `json:"config"`
	Links  map[string]link `json:"_links,omitempty"`
}

type pollConfig struct {
	Polling polling `json:"polling"`
}

type polling struct {
	Sleep string `json:"sleep"`
}

type deploymentResponse struct {
	ID            string         `json:"id"`
	Deployment    deployment     `json:"deployment"`
	ActionHistory *actionHistory `json:"actionHistory,omitempty"`
}

type deployment struct {
	Download          string  `json:"download"`
	Update            string  `json:"update"`
	MaintenanceWindow string  `json:"maintenanceWindow,omitempty"`
	Chunks            []chunk `json:"chunks"`
}

type chunk struct {
	Part      string     `json:"part"`
	Version   string     `json:"version"`
	Name      string     `json:"name"`
	Artifacts []artifact `json:"artifacts"`
}

type artifact struct {
	Filename string          `json:"filename"`
	Hashes   hashes          `json:"hashes"`
	Size     int64           `json:"size"`
	Links    map[string]link `json:"_links"`
}

type hashes struct {
	SHA1   string `json:"sha1"`
	MD5    string `json:"md5"`
	SHA256 string `json:"sha256"`
}

type actionHistory struct {
	Status   string   `json:"status"`
	Messages []string `json:"messages"`
}

type cancelResponse struct {
	ID           string       `json:"id"`
	CancelAction cancelAction `json:"cancelAction"`
}

type cancelAction struct {
	StopID string `json:"stopId"`
}

// feedback is DdiActionFeedback. Unknown fields (legacy "id", "time") are
// ignored, as hawkBit does.
type feedback struct {
	Timestamp *int64  `json:"timestamp"`
	Status    *status `json:"status"`
}

type status struct {
	Execution string   `json:"execution"`
	Result    *result  `json:"result"`
	Code      *int     `json:"code"`
	Details   []string `json:"details"`
}

type result struct {
	Finished string    `json:"finished"`
	Progress *progress `json:"progress"`
}

type progress struct {
	Cnt int64  `json:"cnt"`
	Of  *int64 `json:"of"`
}

// configData is DdiConfigData; legacy clients also send id, time, status.
type configData struct {
	Mode string             `json:"mode"`
	Data *map[string]string `json:"data"`
}

// formatSleep writes d as HH:MM:SS, clamped to hawkBit's 00:00:30..23:59:59.
func formatSleep(d time.Duration) string {
	s := int64(d / time.Second)
	if s < 30 {
		s = 30
	}
	if s > 23*3600+59*60+59 {
		s = 23*3600 + 59*60 + 59
	}
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
