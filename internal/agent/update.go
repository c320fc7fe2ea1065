package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent/install"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/verifier"
)

// jobError ends a job: the assignment failed (or, after the new image came
// up, rolled back) for the reason given.
type jobError struct {
	code   string
	msg    string
	output string // command output for the log tail
}

func (e *jobError) Error() string { return e.code + ": " + e.msg }

func failure(code, format string, args ...any) *jobError {
	return &jobError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handleNews acts on the last check-in answer: a cancel for the job, or a
// new assignment while idle.
func (a *Agent) handleNews(ctx context.Context) error {
	if c := a.cancel; c != nil {
		a.cancel = nil
		if j := a.st.Job; j != nil && j.AssignmentID == c.AssignmentID {
			if err := a.onCancel(ctx, c); err != nil {
				return err
			}
		}
	}
	off := a.offered
	if off == nil || a.st.Phase != PhaseIdle {
		return nil
	}
	if slices.Contains(a.st.Done, off.ID) {
		a.offered = nil
		return nil
	}
	return a.begin(ctx, off)
}

// report builds a status report for the current job.
func (a *Agent) report(state string, progress int, code, msg string, logTail string) *wire.Report {
	r := &wire.Report{State: state, Progress: progress, ErrorCode: code, Message: msg, LogTail: logTail}
	if a.st.Job != nil {
		r.AssignmentID = a.st.Job.AssignmentID
	}
	return r
}

// transition moves to phase p and queues rep in the same atomic write.
func (a *Agent) transition(p Phase, rep *wire.Report) error {
	a.log.Info("update phase", "from", a.st.Phase, "to", p, "assignment_id", a.jobID())
	a.st.Phase = p
	if rep != nil {
		a.enqueue(*rep)
	}
	return a.save()
}

func (a *Agent) jobID() string {
	if a.st.Job == nil {
		return ""
	}
	return a.st.Job.AssignmentID
}

// begin verifies a new assignment, checks the download gates and starts
// downloading.
func (a *Agent) begin(ctx context.Context, off *wire.Assignment) error {
	t, err := a.resolve(ctx, off)
	if err != nil {
		var je *jobError
		if !errors.As(err, &je) {
			// Metadata could not be fetched: try again at the next check-in.
			a.log.Warn("cannot verify the assignment yet", "assignment_id", off.ID, "err", err)
			return nil
		}
		return a.refuse(off.ID, je)
	}
	j, jerr := a.plan(t, off)
	if jerr != nil {
		return a.refuse(off.ID, jerr)
	}
	res := a.checkGates(ctx, j, true)
	if !res.OK() {
		msg := "waiting to download: " + res.Message()
		if a.st.Notice == nil || a.st.Notice.AssignmentID != off.ID || a.st.Notice.Message != msg {
			a.log.Info("install gate blocks the download", "assignment_id", off.ID, "gates", res.Message())
			a.st.Notice = &notice{AssignmentID: off.ID, Message: msg}
			a.enqueue(wire.Report{AssignmentID: off.ID, State: "notified", Message: msg})
			return a.save()
		}
		return nil
	}
	a.st.Notice = nil
	a.st.Job = j
	if err := a.transition(PhaseDownloading, a.report("downloading", 0, "", fmt.Sprintf("downloading %s %s (%d bytes)", j.Target.Custom.Version, j.Target.Path, j.Target.Length), "")); err != nil {
		return err
	}
	if a.verifier != nil {
		if err := a.verifier.Accept(&j.Target); err != nil {
			return a.fail(failure(string(verifier.ReasonRollback), "the verifier did not accept the assignment: %v", err))
		}
	}
	return nil
}

// refuse reports an assignment the agent will not work on.
func (a *Agent) refuse(id string, je *jobError) error {
	a.log.Error("assignment refused", "assignment_id", id, "code", je.code, "reason", je.msg)
	a.enqueue(wire.Report{AssignmentID: id, State: "failed", Progress: 0, ErrorCode: je.code, Message: je.msg, LogTail: a.logs.String()})
	a.st.Result = &Outcome{AssignmentID: id, State: "failed", ErrorCode: je.code, Reason: je.msg}
	a.st.Notice = nil
	a.markDone(id)
	a.offered = nil
	return a.save()
}

// resolve turns the server's assignment into a verified target.
func (a *Agent) resolve(ctx context.Context, off *wire.Assignment) (*verifier.Target, error) {
	v, err := a.openVerifier(ctx)
	if err != nil {
		return nil, failure("verifier", "cannot open the verifier: %v", err)
	}
	if v == nil {
		return unsignedTarget(off)
	}
	if len(off.Signed) == 0 {
		return nil, failure("unsigned", "the assignment carries no director-signed document and this device requires signed updates")
	}
	if err := a.verifier.Refresh(ctx); err != nil {
		if r := verifier.ReasonOf(err); r != "" {
			return nil, failure(string(r), "%v", err)
		}
		return nil, err
	}
	t, err := a.verifier.VerifyAssignment(ctx, off.Signed)
	if err != nil {
		if r := verifier.ReasonOf(err); r != "" {
			return nil, failure(string(r), "%v", err)
		}
		return nil, err
	}
	if t.AssignmentID != off.ID {
		return nil, failure(string(verifier.ReasonMismatch), "the signed document is for assignment %s, not %s", t.AssignmentID, off.ID)
	}
	return t, nil
}

// plan chooses the installer for a verified target.
func (a *Agent) plan(t *verifier.Target, off *wire.Assignment) (*job, *jobError) {
	j := &job{AssignmentID: off.ID, Target: *t, URL: off.Artifact.URL}
	sum := sha256.Sum256([]byte(off.ID))
	staging := path.Join(a.stagingDir(), hex.EncodeToString(sum[:8]))
	comp := a.cfg.Components[t.Custom.Component]
	switch t.Custom.ArtifactType {
	case tufmeta.TypeRawImage:
		if len(a.cfg.Slots) != 2 {
			return nil, failure("unsupported-artifact", "raw images need A/B slots, and this device has none configured")
		}
		from, to := a.cfg.Slots[0], a.cfg.Slots[1]
		switch a.current {
		case from.Name:
		case to.Name:
			from, to = to, from
		default:
			return nil, failure("unknown-slot", "the device booted from slot %q, which is not one of the configured slots", a.current)
		}
		j.FromSlot, j.ToSlot = from.Name, to.Name
		j.Kind = kindSlot
		if to.HashOnly {
			j.Kind = kindHashSlot
		}
	case tufmeta.TypeFile, tufmeta.TypeArchive:
		if comp.Path == "" {
			return nil, failure("unsupported-artifact", "no destination is configured for %s artifacts of component %q", t.Custom.ArtifactType, t.Custom.Component)
		}
		j.Kind, j.Dest, j.Staging = kindFile, comp.Path, staging
		if t.Custom.ArtifactType == tufmeta.TypeArchive {
			j.Kind = kindArchive
		}
	case tufmeta.TypeScript, tufmeta.TypeSWU, tufmeta.TypeRAUCBundle, tufmeta.TypeMender:
		cmd := comp.Command
		if len(cmd) == 0 && t.Custom.ArtifactType == tufmeta.TypeScript {
			cmd = []string{"/bin/sh", "{file}"}
		}
		if len(cmd) == 0 || a.cfg.Commands == nil {
			return nil, failure("unsupported-artifact", "no install command is configured for %s artifacts of component %q", t.Custom.ArtifactType, t.Custom.Component)
		}
		j.Kind, j.Command, j.Staging = kindCommand, cmd, staging
	default:
		return nil, failure("unsupported-artifact", "this agent does not install %q artifacts", t.Custom.ArtifactType)
	}
	return j, nil
}

// onCancel stops the job if it has not passed the point of no return, or
// answers "too late".
func (a *Agent) onCancel(ctx context.Context, c *wire.Cancel) error {
	j := a.st.Job
	abortable := a.st.Phase == PhaseDownloading ||
		(a.st.Phase == PhaseInstalling && j.Kind != kindCommand)
	if abortable {
		a.log.Info("assignment canceled before the point of no return", "assignment_id", j.AssignmentID, "reason", c.Reason)
		if j.Prepared {
			if err := install.Restore(a.cfg.FS, j.Dest, j.HadPrevious); err != nil {
				a.log.Error("cannot restore after cancel", "err", err)
				return nil
			}
		}
		msg := fmt.Sprintf("stopped: the server %s the assignment before the point of no return", cancelVerb(c.Reason))
		a.st.Result = &Outcome{AssignmentID: j.AssignmentID, State: "canceled", Reason: msg}
		rep := a.report("canceled", 0, c.Reason, msg, "")
		return a.finish(ctx, rep)
	}
	switch a.st.Phase {
	case PhaseCommitted, PhaseRolledBack, PhaseFailed:
		return nil // already ended; the final report says how
	}
	if j.CancelNoted {
		return nil
	}
	j.CancelNoted = true
	a.log.Warn("cancel arrived after the point of no return; finishing the update", "assignment_id", j.AssignmentID, "reason", c.Reason)
	a.enqueue(*a.report(string(a.st.Phase), 100, "too-late",
		fmt.Sprintf("too late to cancel (%s): the update passed the point of no return and will finish", c.Reason), ""))
	return a.save()
}

func cancelVerb(reason string) string {
	if reason == wire.CancelSuperseded {
		return "superseded"
	}
	return "canceled"
}

// advance runs the state machine until it has to wait.
func (a *Agent) advance(ctx context.Context) error {
	for range 16 {
		if ctx.Err() != nil {
			return nil
		}
		p := a.st.Phase
		var err error
		switch p {
		case PhaseIdle:
			return nil
		case PhaseDownloading:
			err = a.stepDownload(ctx)
		case PhaseInstalling:
			err = a.stepInstall(ctx)
		case PhaseRebooting:
			err = a.stepReboot(ctx)
		case PhaseVerifying:
			err = a.stepVerify(ctx)
		case PhaseCommitted:
			err = a.stepCommitted(ctx)
		case PhaseRolledBack:
			err = a.stepRolledBack(ctx)
		case PhaseFailed:
			err = a.finish(ctx, nil)
		default:
			return fmt.Errorf("agent: unknown phase %q in the state file", p)
		}
		if err != nil {
			return err
		}
		if a.st.Phase == p {
			// Waiting for something: the server, a gate, or a retry of a
			// failed local call.
			a.localAt = a.clock.Now().Add(a.cfg.Timing.BackoffMin)
			return nil
		}
	}
	return nil
}

func (a *Agent) stepDownload(ctx context.Context) error {
	j := a.st.Job
	if !j.Downloaded {
		if j.Kind == kindSlot || j.Kind == kindHashSlot {
			// The target slot is invalid while it is written.
			if err := a.cfg.Boot.SetState(ctx, j.ToSlot, boot.Bad); err != nil {
				a.log.Error("cannot mark the target slot bad; not writing it", "slot", j.ToSlot, "err", err)
				return nil
			}
		}
		err := a.download(ctx, j)
		var je *jobError
		switch {
		case err == nil:
		case errors.Is(err, errCanceled):
			return nil
		case errors.As(err, &je):
			return a.fail(je)
		case errors.Is(err, errFatal):
			return err
		default:
			a.log.Warn("download interrupted; will resume", "assignment_id", j.AssignmentID, "err", err)
			return nil
		}
		j.Downloaded = true
		if err := a.save(); err != nil {
			return err
		}
	}
	res := a.checkGates(ctx, j, false)
	a.lastGate = a.clock.Now()
	if !res.OK() {
		if msg := "downloaded; waiting to install: " + res.Message(); j.GateMsg != msg {
			j.GateMsg = msg
			a.log.Info("install gate blocks the install", "assignment_id", j.AssignmentID, "gates", res.Message())
			a.enqueue(*a.report("downloading", 100, "", msg, ""))
			return a.save()
		}
		return nil
	}
	j.GateMsg = ""
	return a.transition(PhaseInstalling, a.report("installing", 100, "", "installing "+j.Target.Custom.Version, ""))
}

func (a *Agent) stepInstall(ctx context.Context) error {
	j := a.st.Job
	switch j.Kind {
	case kindSlot:
		dev := a.slot(j.ToSlot).Device
		d, err := install.HashFile(ctx, a.cfg.FS, dev, j.Target.Length)
		if err != nil {
			return a.fail(failure("readback", "reading slot %s back failed: %v", j.ToSlot, err))
		}
		if d.SHA256 != j.Target.SHA256 {
			return a.fail(failure("readback", "slot %s read back with SHA-256 %s, want %s", j.ToSlot, d.SHA256, j.Target.SHA256))
		}
		return a.transition(PhaseRebooting, a.report("rebooting", 100, "", "rebooting into slot "+j.ToSlot, ""))
	case kindHashSlot:
		return a.transition(PhaseRebooting, a.report("rebooting", 100, "", "rebooting into slot "+j.ToSlot, ""))
	case kindFile, kindArchive:
		if !j.Prepared {
			had, err := install.HasPrevious(a.cfg.FS, j.Dest)
			if err != nil {
				return a.fail(failure("install", "%v", err))
			}
			if j.Kind == kindFile {
				err = install.PrepareFile(ctx, a.cfg.FS, j.Staging, j.Dest, 0o644)
			} else {
				err = install.ExtractArchive(ctx, a.cfg.FS, j.Staging, archiveCompression(j.Target.Custom.Compression), j.Dest, a.cfg.Archive)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return a.fail(failure("install", "%v", err))
			}
			j.Prepared, j.HadPrevious = true, had
			if err := a.save(); err != nil {
				return err
			}
		}
		if err := install.Promote(a.cfg.FS, j.Dest); err != nil {
			return a.fail(failure("install", "%v", err))
		}
		j.VerifyDeadline = a.clock.Now().Add(a.cfg.Health.ServerWindow)
		return a.transition(PhaseVerifying, a.report("verifying", 100, "", "installed; checking health", ""))
	case kindCommand:
		argv := make([]string, len(j.Command))
		for i, s := range j.Command {
			argv[i] = strings.ReplaceAll(s, "{file}", j.Staging)
		}
		out, err := a.cfg.Commands.Run(ctx, argv)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return a.fail(&jobError{code: "install-command", msg: fmt.Sprintf("%s: %v", strings.Join(argv, " "), err), output: string(out)})
		}
		j.VerifyDeadline = a.clock.Now().Add(a.cfg.Health.ServerWindow)
		return a.transition(PhaseVerifying, a.report("verifying", 100, "", "installed; checking health", ""))
	}
	return fmt.Errorf("agent: unknown installer %q in the state file", j.Kind)
}

func archiveCompression(c string) string {
	switch c {
	case tufmeta.CompressionGzip:
		return install.CompressionGzip
	case tufmeta.CompressionZstd:
		return install.CompressionZstd
	}
	return "" // sniff: plain tar, or compressed without saying so
}

func (a *Agent) slot(name string) Slot {
	for _, s := range a.cfg.Slots {
		if s.Name == name {
			return s
		}
	}
	return Slot{Name: name}
}

// stepReboot arms the new slot (the point of no return) and reboots, or,
// after the reboot, finds out which slot came up.
func (a *Agent) stepReboot(ctx context.Context) error {
	j := a.st.Job
	switch {
	case j.Armed && j.ArmedBoot == a.bootID && a.current != j.ToSlot:
		// Armed in this very boot: the reboot has not happened yet.
		return a.reboot(ctx)
	case a.current == j.ToSlot:
		j.VerifyDeadline = a.clock.Now().Add(a.cfg.Health.ServerWindow)
		return a.transition(PhaseVerifying, a.report("verifying", 100, "", "booted slot "+j.ToSlot+"; checking health", ""))
	case j.Armed:
		return a.fellBack(ctx, "rebooting")
	}
	if err := a.cfg.Boot.SetPrimary(ctx, j.ToSlot); err != nil {
		a.log.Error("cannot make the new slot primary", "slot", j.ToSlot, "err", err)
		return nil
	}
	j.Armed, j.ArmedBoot = true, a.bootID
	if err := a.save(); err != nil {
		return err
	}
	return a.reboot(ctx)
}

// fellBack handles a boot into the old slot although the new one was
// armed: the bootloader gave up on the new image.
func (a *Agent) fellBack(ctx context.Context, during string) error {
	j := a.st.Job
	msg := fmt.Sprintf("the bootloader fell back to slot %s (while %s): slot %s with %s never came up healthy", a.current, during, j.ToSlot, j.Target.Custom.Version)
	a.log.Error("new slot did not boot", "slot", j.ToSlot, "current", a.current)
	j.Reason = msg
	a.st.Result = &Outcome{AssignmentID: j.AssignmentID, State: "rolled-back", ErrorCode: "boot-fallback", Reason: msg}
	return a.transition(PhaseRolledBack, a.report("rolled-back", 100, "boot-fallback", msg, a.logs.String()))
}

// reboot records that the coming reboot is planned and asks for it.
func (a *Agent) reboot(ctx context.Context) error {
	a.st.Boot.Planned = true
	if err := a.save(); err != nil {
		return err
	}
	a.log.Info("rebooting", "phase", a.st.Phase, "assignment_id", a.jobID())
	if err := a.cfg.Reboot(ctx); err != nil {
		a.log.Error("reboot failed; will retry", "err", err)
		a.st.Boot.Planned = false // saved with the next write
		return nil
	}
	return ErrRebooted
}

func (a *Agent) stepVerify(ctx context.Context) error {
	j := a.st.Job
	ab := j.Kind == kindSlot || j.Kind == kindHashSlot
	if ab && a.current != j.ToSlot {
		return a.fellBack(ctx, "verifying")
	}
	if j.VerifyDeadline.IsZero() {
		j.VerifyDeadline = a.clock.Now().Add(a.cfg.Health.ServerWindow)
		if err := a.save(); err != nil {
			return err
		}
	}
	if !a.healthPassed {
		out, err := a.runHealth(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return a.rollBack(&jobError{code: "health-check", msg: "health check failed: " + err.Error(), output: out})
		}
		a.healthPassed = true
	}
	if !a.checkedIn {
		if a.due(j.VerifyDeadline) {
			return a.rollBack(failure("server-unreachable", "the new software did not reach the server within %s", a.cfg.Health.ServerWindow))
		}
		return nil
	}
	now := a.clock.Now()
	rec := Record{
		Version:     j.Target.Custom.Version,
		Length:      j.Target.Length,
		SHA256:      j.Target.SHA256,
		Component:   j.Target.Custom.Component,
		Assignment:  j.AssignmentID,
		InstalledAt: now.UTC(),
	}
	if ab {
		rec.Slot = j.ToSlot
	}
	if a.st.Slots == nil {
		a.st.Slots = map[string]Record{}
	}
	if a.cfg.Boot != nil {
		if ab {
			a.st.Slots[j.ToSlot] = rec
		} else {
			cur := a.st.Slots[a.current]
			cur.Version = rec.Version
			a.st.Slots[a.current] = cur
		}
	}
	a.st.Last = &rec
	a.st.Version = rec.Version
	msg := fmt.Sprintf("installed %s (%d bytes, sha256 %s)", rec.Version, rec.Length, rec.SHA256)
	a.st.Result = &Outcome{AssignmentID: j.AssignmentID, State: "succeeded", Reason: msg}
	return a.transition(PhaseCommitted, a.report("succeeded", 100, "", msg, ""))
}

// rollBack records a failed health check; stepRolledBack undoes the install.
func (a *Agent) rollBack(je *jobError) error {
	j := a.st.Job
	a.log.Error("rolling back", "assignment_id", j.AssignmentID, "code", je.code, "reason", je.msg)
	j.Reason = je.msg
	a.st.Result = &Outcome{AssignmentID: j.AssignmentID, State: "rolled-back", ErrorCode: je.code, Reason: je.msg}
	if j.Kind == kindCommand {
		// A command installer cannot be undone by the agent.
		a.st.Result.State = "failed"
		return a.transition(PhaseFailed, a.report("failed", 100, je.code, je.msg+" (command installs are not rolled back)", logWith(a.logs.String(), je.output)))
	}
	return a.transition(PhaseRolledBack, a.report("rolled-back", 100, je.code, je.msg, logWith(a.logs.String(), je.output)))
}

func (a *Agent) stepRolledBack(ctx context.Context) error {
	j := a.st.Job
	switch j.Kind {
	case kindSlot, kindHashSlot:
		if err := a.cfg.Boot.SetState(ctx, j.ToSlot, boot.Bad); err != nil {
			a.log.Error("cannot mark the failed slot bad", "slot", j.ToSlot, "err", err)
			return nil
		}
		if a.current == j.ToSlot {
			if err := a.cfg.Boot.SetPrimary(ctx, j.FromSlot); err != nil {
				a.log.Error("cannot switch back to the previous slot", "slot", j.FromSlot, "err", err)
				return nil
			}
			return a.reboot(ctx)
		}
	case kindFile, kindArchive:
		if j.Prepared {
			if err := install.Restore(a.cfg.FS, j.Dest, j.HadPrevious); err != nil {
				a.log.Error("cannot restore the previous content", "dest", j.Dest, "err", err)
				return nil
			}
		}
	}
	return a.finish(ctx, nil)
}

func (a *Agent) stepCommitted(ctx context.Context) error {
	j := a.st.Job
	switch j.Kind {
	case kindSlot, kindHashSlot:
		if err := a.cfg.Boot.SetState(ctx, j.ToSlot, boot.Good); err != nil {
			a.log.Error("cannot mark the new slot good", "slot", j.ToSlot, "err", err)
			return nil
		}
	case kindFile, kindArchive:
		if err := install.Commit(a.cfg.FS, j.Dest); err != nil {
			a.log.Error("cannot drop the previous content", "dest", j.Dest, "err", err)
			return nil
		}
	}
	return a.finish(ctx, nil)
}

// fail ends the job as failed.
func (a *Agent) fail(je *jobError) error {
	j := a.st.Job
	a.log.Error("update failed", "assignment_id", j.AssignmentID, "code", je.code, "reason", je.msg)
	j.Reason = je.msg
	a.st.Result = &Outcome{AssignmentID: j.AssignmentID, State: "failed", ErrorCode: je.code, Reason: je.msg}
	return a.transition(PhaseFailed, a.report("failed", 0, je.code, je.msg, logWith(a.logs.String(), je.output)))
}

// finish cleans up after a job and returns to idle, queueing rep if given.
func (a *Agent) finish(_ context.Context, rep *wire.Report) error {
	j := a.st.Job
	if j != nil {
		for _, name := range []string{j.Staging, a.progressPath()} {
			if name == "" {
				continue
			}
			if err := install.RemoveAll(a.cfg.FS, name); err != nil {
				a.log.Error("cannot clean up", "file", name, "err", err)
				return nil
			}
		}
		a.markDone(j.AssignmentID)
	}
	if rep != nil {
		a.enqueue(*rep)
	}
	a.st.Job = nil
	a.offered = nil
	a.healthPassed = false
	a.log.Info("update phase", "from", a.st.Phase, "to", PhaseIdle)
	a.st.Phase = PhaseIdle
	return a.save()
}

func logWith(log, output string) string {
	if output == "" {
		return log
	}
	return log + "\n--- command output ---\n" + output
}

// unsignedTarget builds the target from the check-in answer alone
// (unsigned mode).
func unsignedTarget(off *wire.Assignment) (*verifier.Target, error) {
	art := off.Artifact
	sum := strings.ToLower(art.SHA256)
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return nil, failure(string(verifier.ReasonMalformed), "artifact SHA-256 %q is not 64 hex digits", art.SHA256)
	}
	if art.Size < 0 {
		return nil, failure(string(verifier.ReasonMalformed), "artifact size %d is negative", art.Size)
	}
	return &verifier.Target{
		Path:   art.Name,
		Length: art.Size,
		SHA256: sum,
		Custom: tufmeta.TargetCustom{
			Version:         off.Version,
			SecurityVersion: off.SecurityVersion,
			ArtifactType:    art.Type,
			Compression:     art.Compression,
			Component:       art.Component,
		},
		AssignmentID: off.ID,
		CampaignID:   off.CampaignID,
	}, nil
}

// runHealth runs the in-process check and the command, each bounded by
// the health timeout. It returns the command's output.
func (a *Agent) runHealth(ctx context.Context) (string, error) {
	h := a.cfg.Health
	if h.Check != nil {
		cctx, cancel := context.WithTimeout(ctx, h.Timeout)
		err := h.Check(cctx)
		cancel()
		if err != nil {
			return "", err
		}
	}
	if len(h.Command) > 0 {
		cctx, cancel := context.WithTimeout(ctx, h.Timeout)
		defer cancel()
		out, err := a.cfg.Commands.Run(cctx, h.Command)
		if err != nil {
			return string(out), fmt.Errorf("%s: %w", strings.Join(h.Command, " "), err)
		}
	}
	return "", nil
}

// sensorTimeout bounds one sensor read or gate command.
const sensorTimeout = 30 * time.Second
