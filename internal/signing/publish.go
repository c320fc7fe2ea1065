package signing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufrepo"
)

// PublishNow takes or renews the publisher lease and, if this replica
// holds it, re-signs snapshot and timestamp when they are due (targets
// changed, past half their lifetime, or no longer signed by the keys the
// latest root names). It reports whether this replica holds the lease.
//
// The write is fenced by the lease and compares the repository's
// generation, so a replica that lost the lease while signing, or raced an
// upload, stores nothing; on a lost race it reads the new state and signs
// again.
func (s *Service) PublishNow(ctx context.Context) (bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	now := s.clock.Now()
	lease, err := s.store.AcquireLease(ctx, s.lease, s.holder, s.opts.LeaseTTL, now)
	if err != nil {
		return false, err
	}
	if !lease.Held(s.holder, now) {
		s.setLeader(false, "")
		return false, nil
	}
	for range writeAttempts {
		err = s.publishOnce(ctx, lease, now)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
		s.m.publishes.WithLabelValues("conflict").Inc()
	}
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		s.m.publishes.WithLabelValues("lease_lost").Inc()
		s.setLeader(false, "")
		return false, nil
	case err != nil:
		s.m.publishes.WithLabelValues("error").Inc()
		s.setLeader(true, err.Error())
		return true, err
	}
	s.setLeader(true, "")
	return true, nil
}

func (s *Service) publishOnce(ctx context.Context, lease store.Lease, now time.Time) error {
	st, err := s.refresh(ctx)
	if err != nil {
		return err
	}
	if st.repo == nil {
		return nil
	}
	root := st.repo.Root()
	online := tufrepo.Online{
		Snapshot:          s.signersFor(ctx, root, metadata.SNAPSHOT, false),
		Timestamp:         s.signersFor(ctx, root, metadata.TIMESTAMP, false),
		SnapshotLifetime:  s.opts.SnapshotLifetime,
		TimestampLifetime: s.opts.TimestampLifetime,
	}
	repo := st.repo.Clone()
	files, err := repo.Publish(online, now)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if len(files) == 0 {
		return nil
	}
	var out []store.TUFFile
	for _, f := range files {
		info, err := tufrepo.Describe(f.Data)
		if err != nil {
			return err
		}
		out = append(out, store.TUFFile{Role: info.Type, Version: info.Version, Data: f.Data, Expires: info.Expires})
	}
	gen, err := s.store.WriteTUF(ctx, s.tenant, store.TUFWrite{Generation: st.gen, Lease: &lease, Files: out, Now: now})
	if err != nil {
		return err
	}
	next, err := newState(gen, repo)
	if err != nil {
		return err
	}
	s.install(next)
	s.m.publishes.WithLabelValues("published").Inc()
	s.log.InfoContext(ctx, "signing: published", "snapshot", version(repo.Snapshot), "timestamp", version(repo.Timestamp), "generation", gen)
	return nil
}

func (s *Service) setLeader(leader bool, pubErr string) {
	s.mu.Lock()
	s.leader, s.pubErr = leader, pubErr
	s.mu.Unlock()
}

// loop runs tick every publish interval, or sooner when poked.
func (s *Service) loop(ctx context.Context) {
	for {
		s.tick(ctx)
		t := s.clock.NewTimer(s.opts.PublishInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-s.wake:
			t.Stop()
		}
	}
}

// tick is one round of background work: follow other replicas' writes,
// publish if leading, drop superseded files past their grace period.
func (s *Service) tick(ctx context.Context) {
	if _, err := s.refresh(ctx); err != nil {
		s.log.WarnContext(ctx, "signing: refresh repository", "err", err)
	}
	if err := s.loadFinalized(ctx); err != nil {
		s.log.WarnContext(ctx, "signing: refresh finalized releases", "err", err)
	}
	leader, err := s.PublishNow(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "signing: publish online metadata", "err", err)
	}
	if !leader || ctx.Err() != nil {
		return
	}
	if _, err := s.NotifyExpiries(ctx); err != nil {
		s.log.WarnContext(ctx, "signing: expiry webhooks", "err", err)
	}
	n, err := s.store.PruneTUFFiles(ctx, s.tenant, s.clock.Now().Add(-s.opts.KeepSuperseded))
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "signing: prune superseded metadata", "err", err)
	case n > 0:
		s.log.DebugContext(ctx, "signing: pruned superseded metadata", "files", n)
	}
}
