package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/verifier"
)

// Phase is the agent's update state. docs/device-integration.md draws the
// machine; the transitions live in update.go.
type Phase string

// Phases of an update. Committed, rolled-back and failed are terminal: the
// report is already in the outbox and only local clean-up remains before
// the agent is idle again.
const (
	PhaseIdle        Phase = "idle"
	PhaseDownloading Phase = "downloading"
	PhaseInstalling  Phase = "installing"
	PhaseRebooting   Phase = "rebooting"
	PhaseVerifying   Phase = "verifying"
	PhaseCommitted   Phase = "committed"
	PhaseRolledBack  Phase = "rolled-back"
	PhaseFailed      Phase = "failed"
)

// Installer kinds, chosen from the signed artifact type.
const (
	kindSlot     = "slot"      // raw image into the inactive A/B slot
	kindHashSlot = "hash-slot" // raw image into a hash-only slot
	kindFile     = "file"      // single file
	kindArchive  = "archive"   // tar (optionally compressed) into a directory
	kindCommand  = "command"   // script or hook command run on the staged file
)

// Record is what was installed: the base for later delta updates and what
// the agent reports as its version.
type Record struct {
	Version     string    `json:"version"`
	Length      int64     `json:"length,omitempty"`
	SHA256      string    `json:"sha256,omitempty"`
	Component   string    `json:"component,omitempty"`
	Slot        string    `json:"slot,omitempty"`
	Assignment  string    `json:"assignment_id,omitempty"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
}

// job is the assignment being worked on.
type job struct {
	AssignmentID string          `json:"assignment_id"`
	Target       verifier.Target `json:"target"`
	URL          string          `json:"url"`
	Kind         string          `json:"kind"`
	Dest         string          `json:"dest,omitempty"`    // file or directory for file/archive
	Command      []string        `json:"command,omitempty"` // for kindCommand
	FromSlot     string          `json:"from_slot,omitempty"`
	ToSlot       string          `json:"to_slot,omitempty"`
	Staging      string          `json:"staging,omitempty"`
	Downloaded   bool            `json:"downloaded,omitempty"`
	Restarts     int             `json:"restarts,omitempty"` // downloads restarted from zero
	// Prepared: "<dest>.new" is complete; HadPrevious: dest existed before.
	Prepared    bool `json:"prepared,omitempty"`
	HadPrevious bool `json:"had_previous,omitempty"`
	// Armed: SetPrimary(ToSlot) returned; ArmedBoot: the boot it happened in.
	Armed     bool   `json:"armed,omitempty"`
	ArmedBoot string `json:"armed_boot,omitempty"`
	// VerifyDeadline bounds the wait for the server after the new image came up.
	VerifyDeadline time.Time `json:"verify_deadline,omitzero"`
	// CancelNoted: a cancel arrived after the point of no return and was
	// answered with "too late".
	CancelNoted bool `json:"cancel_noted,omitempty"`
	// GateMsg is the last gate message reported, so it is sent once.
	GateMsg string `json:"gate_msg,omitempty"`
	// Reason says why a rolled-back or failed job ended.
	Reason string `json:"reason,omitempty"`
}

// bootRecord tracks boots for the reboot counters.
type bootRecord struct {
	ID       string `json:"id"`
	Count    int64  `json:"count"`
	Planned  bool   `json:"planned,omitempty"`  // the agent asked for the reboot
	Shutdown bool   `json:"shutdown,omitempty"` // the agent stopped cleanly
}

// counters are cumulative telemetry counters and how much of them the
// server has acknowledged.
type counters struct {
	Unexpected     int64 `json:"unexpected_reboots"`
	UnexpectedSent int64 `json:"unexpected_reboots_sent"`
	Crashes        int64 `json:"crashes"`
	CrashesSent    int64 `json:"crashes_sent"`
	CrashSource    int64 `json:"crash_source"` // last value read from the crash source
	// ReadAt is when the counters were last sampled, in this boot or
	// an earlier one.
	ReadAt time.Time `json:"read_at,omitzero"`
	// Held are unsent increments that belong to an earlier time than the
	// next send: those read after a gap in sampling (stamped at the gap's
	// start) and those left from an earlier boot (stamped at that boot's
	// last sample). They are part of the unsent totals above; the rest of
	// those totals is sent stamped with the send time.
	Held []wire.Point `json:"held,omitempty"`
	// SentAt is the time stamp of the last batch sent or tried.
	SentAt time.Time `json:"sent_at,omitzero"`
}

// notice is the last "notified" report for an assignment not started.
type notice struct {
	AssignmentID string `json:"assignment_id"`
	Message      string `json:"message"`
}

// persisted is the agent's state file. It holds the update state machine,
// the outbox and the sequence counter together, so a transition and its
// report are written in one atomic replace.
type persisted struct {
	Format   int               `json:"format"`
	DeviceID string            `json:"device_id,omitempty"`
	NextSeq  int64             `json:"next_seq"`
	Outbox   []wire.Report     `json:"outbox"`
	Phase    Phase             `json:"phase"`
	Job      *job              `json:"job,omitempty"`
	Version  string            `json:"version"`
	Slots    map[string]Record `json:"slots,omitempty"`
	Last     *Record           `json:"last_installed,omitempty"`
	Done     []string          `json:"done,omitempty"` // recently finished assignments
	Boot     bootRecord        `json:"boot"`
	Counters counters          `json:"counters"`
	Notice   *notice           `json:"notice,omitempty"`
	Result   *Outcome          `json:"result,omitempty"` // how the last job ended
}

// Outcome is how a job ended, as reported.
type Outcome struct {
	AssignmentID string `json:"assignment_id"`
	State        string `json:"state"` // succeeded, failed, rolled-back, canceled
	ErrorCode    string `json:"error_code,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

const stateFormat = 1

// Bounds on persisted lists.
const (
	maxDone   = 32
	maxOutbox = 1000
)

func (a *Agent) statePath() string    { return path.Join(a.cfg.Dir, "state.json") }
func (a *Agent) progressPath() string { return path.Join(a.cfg.Dir, "download.json") }
func (a *Agent) stagingDir() string   { return path.Join(a.cfg.Dir, "staging") }

// loadState reads the state file, or starts fresh when there is none.
func (a *Agent) loadState() error {
	b, err := devfs.ReadFile(a.cfg.FS, a.statePath(), 64<<20)
	if errors.Is(err, fs.ErrNotExist) {
		a.st = persisted{Format: stateFormat, NextSeq: 1, Phase: PhaseIdle, Version: a.cfg.Version}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read agent state: %w", err)
	}
	var st persisted
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("agent state %s is corrupt: %w", a.statePath(), err)
	}
	if st.Format != stateFormat {
		return fmt.Errorf("agent state %s has format %d, this agent reads %d", a.statePath(), st.Format, stateFormat)
	}
	if st.NextSeq < 1 {
		st.NextSeq = 1
	}
	if st.Phase == "" {
		st.Phase = PhaseIdle
	}
	a.st = st
	return nil
}

// save writes the whole state atomically. Every transition calls it
// before acting on the new phase.
func (a *Agent) save() error {
	b, err := json.Marshal(&a.st)
	if err != nil {
		return fmt.Errorf("encode agent state: %w", err)
	}
	if err := devfs.WriteFileAtomic(a.cfg.FS, a.statePath(), b, 0o600); err != nil {
		return fmt.Errorf("save agent state: %w", err)
	}
	a.publish()
	return nil
}

// enqueue adds a report to the outbox with the next sequence number. The
// caller saves the state (usually together with a transition).
func (a *Agent) enqueue(r wire.Report) {
	r.Seq = a.st.NextSeq
	a.st.NextSeq++
	r.ReportedAt = a.clock.Now().UTC()
	r.Message = truncate(cleanText(r.Message, false), wire.MaxMessageLen)
	r.LogTail = tail(cleanText(r.LogTail, true), wire.MaxLogTailLen)
	if r.ErrorCode != "" {
		r.ErrorCode = sanitizeCode(r.ErrorCode)
	}
	a.st.Outbox = append(a.st.Outbox, r)
	if over := len(a.st.Outbox) - maxOutbox; over > 0 {
		// Drop the oldest progress reports first; a terminal report is
		// never dropped. The server records the gaps.
		kept := a.st.Outbox[:0]
		for _, q := range a.st.Outbox {
			if over > 0 && !terminalState(q.State) {
				over--
				continue
			}
			kept = append(kept, q)
		}
		a.st.Outbox = kept
	}
}

func terminalState(s string) bool {
	switch s {
	case "succeeded", "failed", "rolled-back", "skipped", "canceled":
		return true
	}
	return false
}

// markDone remembers a finished assignment so a late copy of it from the
// server is not started again.
func (a *Agent) markDone(id string) {
	if id == "" || slices.Contains(a.st.Done, id) {
		return
	}
	a.st.Done = append(a.st.Done, id)
	if len(a.st.Done) > maxDone {
		a.st.Done = a.st.Done[len(a.st.Done)-maxDone:]
	}
}

// progress is the download checkpoint: bytes [0, Offset) are durable in
// the sink and Stream is the verifier's state after exactly those bytes.
type progress struct {
	AssignmentID string `json:"assignment_id"`
	Offset       int64  `json:"offset"`
	Stream       []byte `json:"stream"`
	ETag         string `json:"etag,omitempty"`
}

func (a *Agent) loadProgress(assignment string) progress {
	b, err := devfs.ReadFile(a.cfg.FS, a.progressPath(), 1<<20)
	if err != nil {
		return progress{AssignmentID: assignment}
	}
	var p progress
	if json.Unmarshal(b, &p) != nil || p.AssignmentID != assignment || p.Offset < 0 {
		return progress{AssignmentID: assignment}
	}
	return p
}

func (a *Agent) saveProgress(p progress) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return devfs.WriteFileAtomic(a.cfg.FS, a.progressPath(), b, 0o600)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary.
	for n > 0 && n < len(s) && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && s[i]&0xc0 == 0x80 {
		i++
	}
	return s[i:]
}

// cleanText makes s acceptable to the device API: valid UTF-8 without
// NUL, and for messages (log false) no control characters but line breaks
// and tabs.
func cleanText(s string, log bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == 0 || r == utf8.RuneError:
			return '?'
		case log, r == '\n', r == '\t', r == '\r':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return ' '
		}
		return r
	}, s)
}

// sanitizeCode keeps an error code within the wire's alphabet.
func sanitizeCode(s string) string {
	b := []byte(truncate(s, wire.MaxErrorCodeLen))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}
