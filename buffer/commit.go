package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
	"go.etcd.io/bbolt"
)

// batch is a run of consecutive seqs, already encoded, waiting for one
// commit. Two of them alternate: appends fill one while the other's
// transaction runs, so neither allocates in the steady state.
//
// Its entries are the chunk format's (store.go): a record, or a run of seqs
// that were dropped while the disk could not take them (dropPending). Runs
// keep the seqs contiguous, so a dropped record leaves no hole in the
// spool's one run of seqs.
type batch struct {
	buf      []byte // the entries, each a uvarint length and a record, or 0 and a run length: ready-made chunks
	ends     []int  // end of each entry in buf
	n        uint64 // seqs covered: one per record, a run's length per run
	runs     int    // how many of the entries are runs
	holes    uint64 // seqs covered by runs
	dones    []doneAt
	marks    []markOp // redelivery marks to record or forget (marks.go)
	first    uint64   // seq of the first entry
	bytes    int64    // what the records count against MaxBytes
	runBytes int64    // memory the runs take (what they count against maxPendingBytes)
	oldestAt time.Time
	key      []byte
}

// doneAt is a done callback and the seq of its record.
type doneAt struct {
	seq uint64
	fn  func()
}

// retainCap bounds the buffer a batch keeps after a burst, so one outage
// does not pin its peak memory for good.
const retainCap = 4 << 20

func (b *batch) reset() {
	if cap(b.buf) > retainCap {
		b.buf, b.ends = nil, nil
	}
	clear(b.dones)
	b.buf, b.ends, b.dones, b.marks = b.buf[:0], b.ends[:0], b.dones[:0], b.marks[:0]
	b.first, b.n, b.runs, b.holes, b.bytes, b.runBytes = 0, 0, 0, 0, 0, 0
}

// last is the seq of the batch's last entry (of its last seq, for a run).
func (b *batch) last() uint64 { return b.first + b.n - 1 }

// memory is what the batch counts against maxPendingBytes.
func (b *batch) memory() int64 { return b.bytes + b.runBytes }

// appendBatch appends o, whose seqs follow b's, to b.
func (b *batch) appendBatch(o *batch) {
	if o.n == 0 {
		b.marks = append(b.marks, o.marks...)
		return
	}
	if b.n == 0 {
		b.first, b.oldestAt = o.first, o.oldestAt
	}
	off := len(b.buf)
	b.buf = append(b.buf, o.buf...)
	for _, e := range o.ends {
		b.ends = append(b.ends, off+e)
	}
	b.n += o.n
	b.runs += o.runs
	b.holes += o.holes
	b.dones = append(b.dones, o.dones...)
	b.marks = append(b.marks, o.marks...)
	b.bytes += o.bytes
	b.runBytes += o.runBytes
}

// entrySeqs is how many seqs the entry e (one of buf's) covers.
func entrySeqs(e []byte) uint64 {
	if len(e) > 1 && e[0] == 0 {
		n, _ := binary.Uvarint(e[1:])
		return n
	}
	return 1
}

// entryRecord is the record of the entry e, without its length.
func entryRecord(e []byte) []byte {
	_, k := binary.Uvarint(e)
	return e[max(k, 0):]
}

// appendRun appends to buf a run entry of n dropped seqs.
func appendRun(buf []byte, n uint64) []byte {
	return binary.AppendUvarint(append(buf, 0), n)
}

// dropPending drops the oldest readings of b that no source waits for (no
// done callback: a source waiting for one can send the record again, and is
// kept; alert transitions and events are kept too, see spared), until need
// bytes are freed or none is left to drop, replacing them with runs. It
// works in place: a run never takes more room than the records it
// replaces, each at least two bytes. It returns the records dropped and the
// bytes freed.
func (b *batch) dropPending(need int64) (dropped int, freed int64) {
	var (
		w, r    int    // write and read offsets in buf
		run     uint64 // length of the run being built, ending at w
		runAt   = -1   // offset of that run's entry in buf
		seq     = b.first
		di      int // next done callback
		newEnds = b.ends[:0]
		i       int
	)
	flush := func() {
		if run > 0 {
			w = len(appendRun(b.buf[:runAt], run))
			newEnds = append(newEnds, w)
			b.runs++
			b.runBytes += int64(w - runAt)
			run, runAt = 0, -1
		}
	}
	for ; i < len(b.ends) && freed < need; i++ {
		// newEnds shares b.ends's array and never gets ahead of i: read
		// the end before anything is appended.
		end := b.ends[i]
		e := b.buf[r:end]
		cnt := entrySeqs(e)
		for di < len(b.dones) && b.dones[di].seq < seq {
			di++
		}
		switch {
		case len(e) > 1 && e[0] == 0: // a run already: joins the one being built
			if runAt < 0 {
				runAt = w
			}
			run += cnt
			b.runs--
			b.runBytes -= int64(len(e))
		case di < len(b.dones) && b.dones[di].seq == seq, spared(entryRecord(e)):
			// A source waits for it, or an alert transition or event: kept.
			flush()
			w += copy(b.buf[w:], e)
			newEnds = append(newEnds, w)
		default:
			if runAt < 0 {
				runAt = w
			}
			run++
			dropped++
			b.holes++
			_, k := binary.Uvarint(e)
			size := int64(keyLen + len(e) - k)
			freed += size
			b.bytes -= size
		}
		seq += cnt
		r = end
	}
	flush()
	// The rest moves down as it is.
	shift := r - w
	w += copy(b.buf[w:], b.buf[r:])
	b.buf = b.buf[:w]
	for ; i < len(b.ends); i++ {
		newEnds = append(newEnds, b.ends[i]-shift)
	}
	b.ends = newEnds
	return dropped, freed
}

// Run commits appended records until ctx is done or Close is called, then
// commits everything appended so far and returns. Later Appends get
// ErrClosed. It returns an error only if that last commit failed (the
// records are then lost, and logged); commit failures before that are
// logged and retried with backoff.
func (s *Spool) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.run != runIdle:
		s.mu.Unlock()
		return errors.New("buffer: Run called twice")
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	}
	s.run = runRunning
	s.mu.Unlock()
	defer s.finishRun()

	var (
		timer    clockwork.Timer
		timerC   <-chan time.Time
		armedFor time.Time // the deadline the timer runs for; zero when stopped
		failures int
		retryAt  time.Time
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		s.advanceReservation()
		b, deadline, closing := s.due(retryAt)
		if b != nil {
			n := b.n
			err := s.commit(b)
			switch {
			case err == nil:
				if failures > 0 {
					s.commitsWork(failures)
				}
				failures, retryAt = 0, time.Time{}
			case closing:
				s.log.Error("final spool commit failed; uncommitted records are lost", "records", n, "err", err)
				return err
			default:
				failures++
				backoff := min(100*time.Millisecond<<min(failures-1, 6), 5*time.Second)
				retryAt = s.clock.Now().Add(backoff)
				s.commitFailed(err, n, backoff)
			}
			continue
		}
		if closing {
			return nil
		}
		// The timer is only touched when the deadline changes: re-arming it
		// for the same deadline on every wake-up would measure from a later
		// now each time and push the commit out.
		switch {
		case deadline.IsZero() && !armedFor.IsZero():
			timer.Stop()
			armedFor = time.Time{}
		case !deadline.IsZero() && !deadline.Equal(armedFor):
			if d := s.clock.Until(deadline); timer == nil {
				timer = s.clock.NewTimer(d)
				timerC = timer.Chan()
			} else {
				timer.Reset(d)
			}
			armedFor = deadline
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			s.mu.Unlock()
		case <-s.kick:
		case <-timerC:
			// A stale tick only makes the loop look again: due decides by the clock.
			armedFor = time.Time{}
		}
	}
}

// due takes the pending batch if it is time to commit it; otherwise
// deadline is when it will be (zero when nothing is pending).
func (s *Spool) due(retryAt time.Time) (b *batch, deadline time.Time, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	closing = s.closed
	if len(s.forgets) > 0 {
		// Written with the next commit; an idle spool need not wake for
		// them (a stale mark only waits for its id to be reused).
		s.expireForgetsLocked(s.clock.Now(), closing)
	}
	var memDeadline time.Time
	if s.memOn {
		switch {
		case closing:
			s.toDiskLocked("the spool stops")
		case s.mem.len() > 0:
			memDeadline = time.Unix(0, s.mem.at[0]).Add(s.opts.OutageAfter)
			if !s.clock.Now().Before(memDeadline) {
				s.toDiskLocked(fmt.Sprintf("Kafka has not acknowledged a record within %s", s.opts.OutageAfter))
				memDeadline = time.Time{}
			}
		}
	}
	p := s.pend
	if p.n == 0 {
		if closing && len(p.marks) > 0 {
			// Only forgotten marks: written at the stop, so that a clean
			// stop leaves none behind.
			return s.take(), time.Time{}, closing
		}
		return nil, memDeadline, closing
	}
	now := s.clock.Now()
	deadline = p.oldestAt.Add(s.opts.CommitInterval)
	if s.urgent || len(p.ends) >= maxBatchRecords || closing {
		deadline = now
	}
	if !closing && deadline.Before(retryAt) {
		deadline = retryAt
	}
	if now.Before(deadline) {
		if !memDeadline.IsZero() && memDeadline.Before(deadline) {
			deadline = memDeadline
		}
		return nil, deadline, closing
	}
	if m := p.memory(); m > maxPendingBytes*7/8 && s.opts.WhenFull == DropOldest && !closing {
		// A retry on a full disk: what waits in memory is at its bound,
		// and all of it is about to be in the commit, beyond the reach of
		// drop_oldest, while new records keep coming. Dropping the oldest
		// now leaves room for those.
		s.shedLocked(m - maxPendingBytes*3/4)
	}
	return s.take(), time.Time{}, closing
}

// take hands the pending batch to the committer. s.mu must be held.
func (s *Spool) take() *batch {
	b := s.pend
	s.pend = s.spare
	if s.pend == nil {
		s.pend = &batch{}
	}
	s.spare = nil
	s.urgent = false
	s.inflight, s.inflightN = b.memory(), b.n
	return b
}

func (s *Spool) finishRun() {
	s.mu.Lock()
	s.closed = true
	s.run = runDone
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	close(s.runDone)
}

// commit writes b in one transaction, then calls its done callbacks. On
// failure b goes back in front of the pending records, to be retried.
func (s *Spool) commit(b *batch) error {
	s.committing.Store(s.clock.Now().UnixNano())
	err := s.write(b)
	s.committing.Store(0)
	if err != nil {
		s.mu.Lock()
		b.appendBatch(s.pend)
		s.pend.reset()
		if s.spare == nil {
			s.spare = s.pend
		}
		s.pend = b
		s.inflight, s.inflightN = 0, 0
		s.urgent = s.urgent || len(b.dones) > 0
		s.mu.Unlock()
		return err
	}
	if len(b.marks) > 0 {
		// Before the dones: a done acknowledges the source, which forgets
		// the mark; it must find it.
		s.mu.Lock()
		for _, op := range b.marks {
			if !op.del {
				s.marks[op.id] = op.hash
			}
		}
		s.mu.Unlock()
	}
	for _, d := range b.dones {
		d.fn()
	}
	s.mu.Lock()
	b.reset()
	if s.spare == nil {
		s.spare = b
	}
	if !s.backlogSince.IsZero() && s.failSince.IsZero() {
		s.clearBacklogLocked()
	}
	s.mu.Unlock()
	return nil
}

// write is the group commit: the reservation first if b crosses it, then
// b's records, drop_oldest evictions and the state in one transaction.
// Its metrics are updated before the result is published, so that whoever
// waits for the commit sees them.
func (s *Spool) write(b *batch) error {
	t0 := time.Now() // wall time on purpose: the metric measures the disk, not the injected clock
	var dropped, garbled int
	s.txMu.Lock()
	defer s.txMu.Unlock()
	if b.n == 0 {
		return s.update(func(tx *bbolt.Tx) error { return writeMarks(tx, b.marks) })
	}
	last := b.last()
	if last >= s.reserved {
		if err := s.reserve(last + 1 + seqBlock); err != nil {
			return err
		}
	}
	s.mu.Lock()
	st, acked := s.st, uint64(0)
	if s.opts.Mode == Outage {
		acked = s.ackedThrough
	}
	clearFlag := s.memFlag && !s.memOn && last+1 >= s.memCeil
	s.mu.Unlock()
	err := s.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(recordsBucket)
		// Keys only ever grow, so a full page is never split again: fill
		// pages completely instead of bbolt's default half.
		bk.FillPercent = 1.0
		if gap := b.first - st.last - 1; b.first > st.last+1 {
			// Seqs held in memory (outage mode) and acknowledged by Kafka
			// there: gone already, before any of b's.
			if st.seqs() == 0 {
				st.acked = b.first - 1
			} else {
				b.key = seqKey(b.key[:0], st.last+1)
				if err := bk.Put(b.key, appendRun(nil, gap)); err != nil {
					return err
				}
				st.holes += gap
			}
			st.last = b.first - 1
		}
		from, first, next, prev := 0, b.first, b.first, 0
		for i, end := range b.ends {
			if b.runs == 0 {
				next++
			} else {
				next += entrySeqs(b.buf[prev:end])
				prev = end
			}
			if end-from < chunkTarget && i < len(b.ends)-1 {
				continue
			}
			// bbolt copies keys, so one scratch key serves; values must live
			// until the commit, which b.buf does.
			b.key = seqKey(b.key[:0], first)
			if err := bk.Put(b.key, b.buf[from:end]); err != nil {
				return err
			}
			from, first = end, next
		}
		wasEmpty := st.records() == 0
		st.bytes += b.bytes
		st.holes += b.holes
		st.last = last
		if wasEmpty {
			refreshOldest(bk, &st)
		}
		if s.opts.WhenFull == DropOldest && st.bytes > s.opts.MaxBytes {
			var err error
			dropped, garbled, err = dropOldest(bk, &st, s.opts.MaxBytes)
			if err != nil {
				return err
			}
		}
		if acked > st.acked {
			// Records moved from memory to b were acknowledged by Kafka
			// while b waited: not kept.
			if _, _, err := dropFront(bk, &st, func(k uint64, _ []byte) bool { return k > acked }); err != nil {
				return err
			}
		}
		if err := writeMarks(tx, b.marks); err != nil {
			return err
		}
		if clearFlag {
			if err := tx.Bucket(metaBucket).Delete(memFlagKey); err != nil {
				return err
			}
		}
		return putState(tx, &st)
	})
	if err != nil {
		return s.mapErr(err)
	}
	if clearFlag {
		s.memFlag = false
	}
	s.m.BufferCommits.Inc()
	s.m.BufferCommitDur.Observe(time.Since(t0).Seconds())
	if dropped > 0 {
		s.dropOld.Add(float64(dropped))
		s.mu.Lock()
		s.noteFullLocked()
		s.mu.Unlock()
	}
	s.countGarbled(garbled)
	s.publish(st, true)
	return nil
}

func (s *Spool) snapshot() state {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st
}

// publish makes st, just committed, what readers see. txMu must be held,
// which keeps publications in commit order.
func (s *Spool) publish(st state, committed bool) {
	s.m.BufferRecords.Set(float64(st.records()))
	s.m.BufferBytes.Set(float64(st.bytes))
	s.mu.Lock()
	s.st = st
	if committed {
		s.inflight, s.inflightN = 0, 0
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// update and view run a transaction under guard: a panic or fault on a
// corrupt page becomes an error for the caller, not a dead gateway.
func (s *Spool) update(fn func(*bbolt.Tx) error) (err error) {
	defer guard(&err)()
	s.diskWrites.Add(1)
	return s.db.Update(fn)
}

func (s *Spool) view(fn func(*bbolt.Tx) error) (err error) {
	defer guard(&err)()
	return s.db.View(fn)
}
