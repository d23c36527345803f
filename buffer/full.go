package buffer

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
)

// A spool is full when it drops or refuses records: max_bytes is reached
// (when_full acts on committed records or refuses new ones), or commits
// fail or lag and the records waiting in memory reached maxPendingBytes.
// A full disk is reported from its first failed commit, before anything
// is dropped, since records are at risk from then on. The gateway raises
// edgegw_spool_full from Full.

// Full reasons.
const (
	FullMaxBytes = "max_bytes"       // buffer.max_bytes reached
	FullDisk     = "disk_full"       // commits fail with ENOSPC, EFBIG or EDQUOT
	FullBacklog  = "commits_failing" // commits fail otherwise, or lag, and the memory bound was reached
)

// FullState says whether, why and since when the spool drops or refuses
// records (or, for a full disk, cannot store them); the zero value means
// records fit.
type FullState struct {
	Since  time.Time
	Reason string // FullMaxBytes, FullDisk or FullBacklog
	// Detail says what happens, in a sentence for the alert's message.
	Detail string
}

// policyClearRatio is how far below max_bytes the records held must fall
// for the spool to count as no longer full, so that a spool at its bound
// does not flap between full and not with every acknowledgement.
const policyClearRatio = 0.9

// Full reports the spool's state. It does not touch the disk.
func (s *Spool) Full() FullState {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiting := s.pend.memory() + s.inflight
	memory := fmt.Sprintf("%d records (%s) wait in memory", s.pend.n, sizeText(waiting))
	policy := "the oldest of them are dropped"
	if s.opts.WhenFull == RejectNew {
		policy = "new records are refused"
	}
	switch {
	case !s.failSince.IsZero() && s.failKind == metrics.DropDiskFull:
		d := fmt.Sprintf("the disk holding %s is full (%s): commits fail since %s; %s, up to %s, then %s (%d so far)",
			s.opts.Path, s.failErr, s.failSince.UTC().Format(time.RFC3339), memory, sizeText(maxPendingBytes), policy, s.backlogN)
		return FullState{Since: s.failSince, Reason: FullDisk, Detail: d}
	case !s.backlogSince.IsZero():
		cause := "commits lag behind the input"
		if !s.failSince.IsZero() {
			cause = "commits fail (" + s.failErr + ")"
		}
		d := fmt.Sprintf("%s and %s, the bound, wait in memory: %s (%d so far)", cause, memory, policy, s.backlogN)
		return FullState{Since: s.backlogSince, Reason: FullBacklog, Detail: d}
	case !s.policySince.IsZero():
		held := s.st.bytes + waiting
		if float64(held) <= policyClearRatio*float64(s.opts.MaxBytes) {
			s.policySince = time.Time{}
			return FullState{}
		}
		what := "drop_oldest deletes the oldest records"
		if s.opts.WhenFull == RejectNew {
			what = "reject_new refuses new records"
		}
		d := fmt.Sprintf("buffer.max_bytes (%s) is reached: %s", sizeText(s.opts.MaxBytes), what)
		return FullState{Since: s.policySince, Reason: FullMaxBytes, Detail: d}
	}
	return FullState{}
}

// noteFullLocked records that max_bytes made the policy act. s.mu is held.
func (s *Spool) noteFullLocked() {
	if s.policySince.IsZero() {
		s.policySince = s.clock.Now()
	}
}

// noteBacklogLocked records n records dropped or refused at
// maxPendingBytes, and logs the first of an episode. s.mu is held.
func (s *Spool) noteBacklogLocked(reason string, n int, dropped bool) {
	if s.backlogSince.IsZero() {
		s.backlogSince = s.clock.Now()
	}
	s.backlogWhy = reason
	s.backlogN += int64(n)
	if s.backlogLog {
		return
	}
	s.backlogLog = true
	what := "refusing new records"
	if dropped {
		what = "dropping the oldest records waiting in memory"
	}
	// Logged under s.mu: once an episode, and the handler only writes a line.
	s.log.Error("spool cannot commit fast enough and its memory bound is reached: "+what+"; counted in edgegw_dropped_total",
		"reason", reason, "when_full", s.opts.WhenFull.String(), "memory_bound", sizeText(maxPendingBytes))
}

// commitFailed records a failed commit; the first of a streak is logged.
func (s *Spool) commitFailed(err error, records uint64, retry time.Duration) {
	kind := metrics.DropSpoolBacklog
	if isDiskFull(err) {
		kind = metrics.DropDiskFull
	}
	s.mu.Lock()
	first := s.failSince.IsZero()
	if first {
		s.failSince = s.clock.Now()
	}
	s.failKind, s.failErr = kind, errText(err)
	s.mu.Unlock()
	if !first {
		return
	}
	if kind == metrics.DropDiskFull {
		s.log.Error("disk full: spool commits fail; records wait in memory and the commit is retried until space returns",
			"path", s.opts.Path, "records", records, "memory_bound", sizeText(maxPendingBytes),
			"then", s.opts.WhenFull.String(), "err", err)
		return
	}
	s.log.Error("spool commit failed; retrying", "records", records, "retry_in", retry, "err", err)
}

// commitsWork ends a streak of failed commits.
func (s *Spool) commitsWork(failures int) {
	s.mu.Lock()
	since, kind, n := s.failSince, s.failKind, s.backlogN
	s.failSince, s.failKind, s.failErr = time.Time{}, "", ""
	s.clearBacklogLocked()
	s.mu.Unlock()
	s.log.Info("spool commits work again", "failures", failures, "failing_for", s.clock.Since(since).Round(time.Millisecond),
		"cause", kind, "dropped_or_refused", n)
}

// clearBacklogLocked ends a backlog episode once what waits in memory is
// back under the bound. s.mu is held.
func (s *Spool) clearBacklogLocked() {
	if s.pend.memory()+s.inflight <= maxPendingBytes*7/8 {
		s.backlogSince, s.backlogWhy, s.backlogN, s.backlogLog = time.Time{}, "", 0, false
	}
}

// isDiskFull tells a commit that failed for want of space. bbolt reports a
// failed file growth as text only ("file resize error: file too large"),
// so the text is checked too.
func isDiskFull(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EFBIG, syscall.EDQUOT} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return true
		}
	}
	return false
}

// errText is err's text without the file paths and offsets some I/O errors
// carry twice.
func errText(err error) string {
	for _, e := range []error{syscall.ENOSPC, syscall.EFBIG, syscall.EDQUOT, syscall.EIO, syscall.EROFS} {
		if errors.Is(err, e) || strings.Contains(err.Error(), e.Error()) {
			return e.Error()
		}
	}
	return err.Error()
}

// sizeText writes n bytes for a person.
func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
