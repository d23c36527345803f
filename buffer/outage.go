package buffer

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/edgegw/edgegw/gateway/reading"
)

// Outage mode (Options.Mode = Outage) spares the SD card: while Kafka
// acknowledges records promptly, appended records wait in memory (memQueue)
// and are handed to the uplink from there; nothing is written to the file
// for them. Kafka's acknowledgement (AckThrough) is their durability point:
// it drops them from memory and calls their done callbacks, so an MQTT
// QoS 1 message is acknowledged to its broker only once Kafka has its
// readings, and the broker keeps it until then.
//
// The spool switches to writing the file (disk state), everything in memory
// first in seq order, as soon as Kafka stops acknowledging: a record waits
// in memory longer than OutageAfter (a produce that fails, or hangs), or
// more than memMaxBytes wait; and when the spool stops. It switches back
// once the uplink has acknowledged the file down to at most drainedRecords
// (the backlog is drained, Kafka answers again). The uplink does not know:
// it reads and acknowledges through ReadBatch, WaitCommitted and
// AckThrough as ever, the file's records first, then memory's.
//
// What a power cut or kill -9 can lose in memory state: records from
// sources that cannot resend (GPIO, I2C, serial, Modbus, MQTT QoS 0)
// accepted and not yet acknowledged by Kafka: normally the uplink's linger
// plus one produce round trip, at worst OutageAfter. Seqs stay strictly
// increasing across that: memory state only hands out seqs below the
// reservation in <path>.seq, advanced a block ahead by the committer, and
// the file's metadata says a reopened spool must continue above it.

// Mode chooses when records are written to the file.
type Mode int

const (
	// Durable commits every record to the file (group commit): the
	// default, and the smallest loss window.
	Durable Mode = iota
	// Outage keeps records in memory while Kafka acknowledges them, and
	// writes the file only while it does not.
	Outage
)

func (m Mode) String() string {
	switch m {
	case Durable:
		return "durable"
	case Outage:
		return "outage"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

const defaultOutageAfter = time.Second

var (
	// memMaxBytes bounds what waits in memory for Kafka before the spool
	// writes it to the file; a variable for tests.
	memMaxBytes int64 = 8 << 20
	// drainedRecords is the backlog in the file below which an
	// acknowledgement switches an outage-mode spool back to memory: the
	// rest is read from the file first.
	drainedRecords int64 = 1024
)

// memFlagKey, in the meta bucket, says seqs above the committed ones may
// have been handed out in memory: a reopened spool continues above the
// reservation then, not above the last committed seq.
var memFlagKey = []byte("memseq")

// memQueue holds the records appended in memory state and not yet
// acknowledged by Kafka, encoded as a batch's entries (records only).
type memQueue struct {
	buf   []byte
	ends  []int
	at    []int64 // when each was appended (clock, Unix nanoseconds)
	dones []doneAt
	marks []markAt
	first uint64 // seq of the first entry
	bytes int64
}

// markAt is a redelivery mark and the seq of the record it goes with.
type markAt struct {
	seq uint64
	op  markOp
}

func (q *memQueue) len() int { return len(q.ends) }

func (q *memQueue) last() uint64 { return q.first + uint64(len(q.ends)) - 1 }

// ackThrough drops the entries with seq <= seq and returns their done
// callbacks; their marks are dropped too (never committed, nothing to
// forget on disk).
func (q *memQueue) ackThrough(seq uint64) []doneAt {
	if len(q.ends) == 0 || seq < q.first {
		return nil
	}
	k := int(min(seq-q.first+1, uint64(len(q.ends))))
	off := q.ends[k-1]
	var size int64
	prev := 0
	for i := range k {
		_, n := binary.Uvarint(q.buf[prev:])
		size += int64(keyLen + q.ends[i] - prev - n)
		prev = q.ends[i]
	}
	q.bytes -= size
	q.buf = q.buf[:copy(q.buf, q.buf[off:])]
	q.ends = q.ends[:copy(q.ends, q.ends[k:])]
	for i := range q.ends {
		q.ends[i] -= off
	}
	q.at = q.at[:copy(q.at, q.at[k:])]
	q.first += uint64(k)
	d := 0
	for d < len(q.dones) && q.dones[d].seq <= seq {
		d++
	}
	dones := append([]doneAt(nil), q.dones[:d]...)
	nd := copy(q.dones, q.dones[d:])
	clear(q.dones[nd:])
	q.dones = q.dones[:nd]
	m := 0
	for m < len(q.marks) && q.marks[m].seq <= seq {
		m++
	}
	q.marks = q.marks[:copy(q.marks, q.marks[m:])]
	return dones
}

// moveTo appends every entry to b, whose seqs end just below q's (or which
// is empty), and empties q.
func (q *memQueue) moveTo(b *batch) {
	if len(q.ends) > 0 {
		if b.n == 0 {
			b.first, b.oldestAt = q.first, time.Unix(0, q.at[0])
		}
		off := len(b.buf)
		b.buf = append(b.buf, q.buf...)
		for _, e := range q.ends {
			b.ends = append(b.ends, off+e)
		}
		b.n += uint64(len(q.ends))
		b.bytes += q.bytes
		b.dones = append(b.dones, q.dones...)
	}
	for _, m := range q.marks {
		b.marks = append(b.marks, m.op)
	}
	clear(q.dones)
	q.buf, q.ends, q.at, q.dones, q.marks = q.buf[:0], q.ends[:0], q.at[:0], q.dones[:0], q.marks[:0]
	q.bytes = 0
	if cap(q.buf) > retainCap {
		q.buf, q.ends, q.at = nil, nil, nil
	}
}

// appendMemLocked is appendRecord in memory state: rec is encoded at
// the end of q.buf from start. s.mu is held; it is released.
func (s *Spool) appendMemLocked(start int, size int64, done func(), m *Mark) (uint64, error) {
	q := &s.mem
	now := s.clock.Now()
	seq := s.nextSeq
	s.nextSeq++
	if len(q.ends) == 0 {
		q.first = seq
	}
	q.ends = append(q.ends, len(q.buf))
	q.at = append(q.at, now.UnixNano())
	q.bytes += size
	if done != nil {
		q.dones = append(q.dones, doneAt{seq: seq, fn: done})
	}
	if m != nil {
		q.marks = append(q.marks, markAt{seq: seq, op: markOp{id: m.ID, hash: m.Hash}})
	}
	wake := len(q.ends) == 1 // the committer times the first one
	switch {
	case q.bytes > memMaxBytes:
		s.toDiskLocked(fmt.Sprintf("more than %s wait in memory for Kafka", sizeText(memMaxBytes)))
		wake = true
	case now.Sub(time.Unix(0, q.at[0])) > s.opts.OutageAfter:
		s.toDiskLocked(fmt.Sprintf("Kafka has not acknowledged a record within %s", s.opts.OutageAfter))
		wake = true
	}
	if s.nextSeq+seqBlock/2 > s.memLimit && !s.resvWanted {
		s.resvWanted, wake = true, true // the committer advances the reservation
	}
	if s.waiters > 0 {
		s.signalLocked()
	}
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	return seq, nil
}

// toDiskLocked switches to disk state: everything in memory goes to the
// pending batch, in seq order after what it holds, to be committed at
// once. s.mu is held.
func (s *Spool) toDiskLocked(why string) {
	if !s.memOn {
		return
	}
	s.memOn = false
	s.memCeil = s.nextSeq
	n := s.mem.len()
	s.mem.moveTo(s.pend)
	if s.pend.n > 0 {
		s.urgent = true
		if s.pend.oldestAt.IsZero() {
			s.pend.oldestAt = s.clock.Now()
		}
	}
	s.m.BufferMemoryMode.Set(0)
	s.m.BufferModeSwitches.WithLabelValues("disk").Inc()
	if s.closed {
		s.log.Info("spool stopping: writing the records held in memory to the file", "records", n)
		return
	}
	s.log.Warn("writing records to the spool file: "+why, "records_from_memory", n)
}

// signalLocked wakes whoever waits on s.changed. s.mu is held.
func (s *Spool) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// memReadableLocked reports whether the records in memory may be read:
// only once every record below them that goes through the file is
// committed, so that the uplink reads in seq order. s.mu is held.
func (s *Spool) memReadableLocked() bool {
	return s.mem.len() > 0 && s.st.last+1 >= s.memFrom
}

// readMem returns up to limit records in memory with seq > after. s.mu is
// held; it is released before decoding.
func (s *Spool) readMemLocked(after uint64, limit int) ([]reading.Record, error) {
	q := &s.mem
	i := 0
	if after >= q.first {
		i = int(after - q.first + 1)
	}
	j := min(i+limit, len(q.ends))
	if i >= j {
		s.mu.Unlock()
		return nil, nil
	}
	from := 0
	if i > 0 {
		from = q.ends[i-1]
	}
	raw := append([]byte(nil), q.buf[from:q.ends[j-1]]...)
	first := q.first + uint64(i)
	s.mu.Unlock()
	recs := make([]reading.Record, 0, j-i)
	err := walkChunk(first, raw, func(seq uint64, rec []byte) bool {
		r, derr := reading.DecodeRecord(rec)
		if derr != nil {
			return true // encoded by this process: cannot happen
		}
		r.Seq = seq
		recs = append(recs, r)
		return true
	})
	return recs, err
}

// maybeMemory switches an outage-mode spool back to memory state after an
// acknowledgement that drained the file's backlog, once the file says that
// seqs may be handed out in memory and the reservation is far enough ahead.
func (s *Spool) maybeMemory() {
	if s.opts.Mode != Outage {
		return
	}
	ready := func() bool {
		return !s.memOn && !s.closed && s.failSince.IsZero() && s.st.records() <= drainedRecords
	}
	s.mu.Lock()
	ok := ready()
	s.mu.Unlock()
	if !ok {
		return
	}
	// txMu before mu, as everywhere: no commit may clear the flag between
	// writing it and the switch.
	s.txMu.Lock()
	defer s.txMu.Unlock()
	s.mu.Lock()
	next := s.nextSeq
	s.mu.Unlock()
	if !s.memFlag {
		if err := s.update(func(tx *bbolt.Tx) error {
			return tx.Bucket(metaBucket).Put(memFlagKey, []byte{1})
		}); err != nil {
			s.log.Warn("cannot switch to memory: writing the spool's metadata failed", "err", err)
			return
		}
		s.memFlag = true
	}
	if s.reserved < next+seqBlock/2 {
		if err := s.reserve(next + seqBlock); err != nil {
			s.log.Warn("cannot switch to memory: the seq reservation failed", "err", err)
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ready() || s.nextSeq >= s.memLimit {
		return
	}
	s.memOn = true
	s.memFrom = s.nextSeq
	if s.pend.n > 0 {
		s.urgent = true // what still goes through the file: at once, so memory can be read
		defer s.wake()
	}
	s.m.BufferMemoryMode.Set(1)
	s.m.BufferModeSwitches.WithLabelValues("memory").Inc()
	s.log.Info("Kafka acknowledges again and the spool file is drained: keeping records in memory",
		"file_records", s.st.records(), "from_seq", s.memFrom)
}

// reserve writes the seq reservation r. txMu is held.
func (s *Spool) reserve(r uint64) error {
	if err := writeSeqFile(s.seqPath, r); err != nil {
		return fmt.Errorf("buffer: reserve seqs: %w", err)
	}
	s.diskWrites.Add(1)
	s.resvWrites.Add(1)
	s.reserved = r
	s.mu.Lock()
	s.memLimit = r
	s.mu.Unlock()
	return nil
}

// advanceReservation moves the reservation a block ahead of the seqs handed
// out in memory, when appendMemLocked asked for it.
func (s *Spool) advanceReservation() {
	s.mu.Lock()
	want := s.resvWanted
	next := s.nextSeq
	s.mu.Unlock()
	if !want {
		return
	}
	s.txMu.Lock()
	err := error(nil)
	if s.reserved < next+seqBlock/2 {
		err = s.reserve(next + seqBlock)
	}
	s.txMu.Unlock()
	s.mu.Lock()
	s.resvWanted = false
	if err != nil && s.memOn {
		// Memory can hand out no seq the reservation does not cover.
		s.toDiskLocked("the seq reservation cannot be written: " + err.Error())
	}
	s.mu.Unlock()
}

// DiskWrites counts what the spool wrote to the disk since Open: bbolt
// write transactions (each one fsync or two) and seq reservation updates.
// In outage mode it stays still while Kafka acknowledges.
func (s *Spool) DiskWrites() uint64 { return s.diskWrites.Load() }

// Waiting reports whether a source waits for Kafka's acknowledgement of a
// record held in memory (an MQTT QoS 1 message in outage mode), so that
// the uplink sends what it has at once instead of lingering for more.
func (s *Spool) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.memOn && len(s.mem.dones) > 0
}
