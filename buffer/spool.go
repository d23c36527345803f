package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
)

// WhenFull is what the spool does when MaxBytes is reached.
type WhenFull int

const (
	// DropOldest deletes the oldest committed records to make room: the
	// plant keeps its newest data. The default.
	DropOldest WhenFull = iota
	// RejectNew refuses new records with ErrFull: the oldest data is kept.
	RejectNew
)

func (w WhenFull) String() string {
	switch w {
	case DropOldest:
		return "drop_oldest"
	case RejectNew:
		return "reject_new"
	}
	return fmt.Sprintf("WhenFull(%d)", int(w))
}

// Options configure a Spool.
type Options struct {
	// Path is the bbolt file. Next to it live <Path>.seq (the seq
	// reservation) and, after a recovery, <Path>.corrupt-<time>.
	Path string
	// MaxBytes bounds the size of the records held, each counted as its
	// encoded form plus 8 bytes for its seq. Default 1 GiB.
	MaxBytes int64
	// WhenFull chooses between dropping the oldest records (default) and
	// rejecting new ones.
	WhenFull WhenFull
	// CommitInterval is the longest an appended record without a done
	// callback waits for its commit: the window of readings a power cut can
	// lose. Shorter means more fsyncs. Default 200ms.
	CommitInterval time.Duration
	// Clock times CommitInterval and names corrupt files. Default: the real
	// clock.
	Clock clockwork.Clock
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics is required.
	Metrics *metrics.Set
	// Mode is Durable (the default) or Outage (outage.go).
	Mode Mode
	// OutageAfter is, in outage mode, how long a record may wait in memory
	// for Kafka's acknowledgement before the spool writes everything in
	// memory to the file: the worst case of what a power cut can take.
	// Default 1s; it must exceed the uplink's linger and round trip.
	OutageAfter time.Duration
}

var (
	// ErrFull is returned by Append when the record does not fit (RejectNew,
	// or the in-memory bound while commits fail).
	ErrFull = errors.New("buffer: spool full")
	// ErrStalled is returned by Append when commits fail (a full disk) or
	// lag behind and the records waiting in memory reached their bound
	// (see the package comment). It wraps ErrFull. Unlike ErrFull from
	// reject_new, a source that can send the record again should not be
	// acknowledged: the record may fit once the disk takes records again.
	ErrStalled = fmt.Errorf("%w: commits are failing or lagging and the records waiting in memory reached their bound", ErrFull)
	// ErrClosed is returned once Run has returned or Close was called.
	ErrClosed = errors.New("buffer: spool closed")
)

const (
	defaultMaxBytes       = 1 << 30
	defaultCommitInterval = 200 * time.Millisecond
	// maxBatchRecords makes the committer commit at once, keeping one
	// transaction's memory and latency in check at high rates.
	maxBatchRecords = 8192
)

// maxPendingBytes bounds what waits in memory while the disk stalls or
// commits fail; a variable so that tests can reach it quickly.
var maxPendingBytes int64 = 32 << 20

type runState int

const (
	runIdle runState = iota
	runRunning
	runDone
)

// Spool is the bbolt store-and-forward buffer. See the package comment for
// its promises.
type Spool struct {
	opts         Options
	db           *bbolt.DB
	seqPath      string
	recovered    string
	log          *slog.Logger
	clock        clockwork.Clock
	m            *metrics.Set
	dropOld      prometheus.Counter
	dropRej      prometheus.Counter
	dropDiskFull prometheus.Counter
	dropBacklog  prometheus.Counter
	malformed    prometheus.Counter

	kick    chan struct{} // capacity 1: something for the committer to look at
	runDone chan struct{}

	// txMu serialises the spool's write transactions with the publication
	// of their result in st, so each starts from the state the last left.
	txMu     sync.Mutex
	reserved uint64 // the side file's reservation; under txMu

	closeOnce sync.Once
	closeErr  error

	mu         sync.Mutex
	closed     bool
	run        runState
	nextSeq    uint64
	pend       *batch // appended, waiting for the next commit
	spare      *batch // the other buffer, reused once its commit is done
	inflight   int64  // bytes of the batch being committed
	inflightN  uint64 // seqs of the batch being committed
	urgent     bool   // a done callback or a Flush is waiting
	badThrough uint64 // undecodable records up to here are counted
	st         state
	changed    chan struct{} // closed and replaced whenever st changes

	// marks are the committed redelivery marks (marks.go); under mu.
	marks   map[uint16]uint64
	forgets []forget // acknowledged marks waiting for forgetDelay, in order

	// Outage mode (outage.go); under mu.
	mem          memQueue      // appended in memory state, not yet acknowledged by Kafka
	memOn        bool          // memory state: new records go to mem
	memFrom      uint64        // first seq of the current memory state
	memCeil      uint64        // no seq at or above it was handed out in memory
	memLimit     uint64        // memory state hands out seqs below it: the reservation
	resvWanted   bool          // the committer is to advance the reservation
	ackedThrough uint64        // highest seq the uplink acknowledged
	waiters      int           // WaitCommitted calls waiting: memory appends wake them
	memFlag      bool          // memFlagKey is in the file; under txMu
	diskWrites   atomic.Uint64 // bbolt write transactions and reservations
	resvWrites   atomic.Uint64 // reservations

	// Why the spool is full, if it is (full.go); under mu.
	failSince    time.Time // commits fail since; zero while they work
	failKind     string    // metrics.DropDiskFull or metrics.DropSpoolBacklog
	failErr      string
	backlogSince time.Time // records dropped or refused at maxPendingBytes since
	backlogWhy   string    // reason of those drops
	backlogN     int64     // how many in this episode
	backlogLog   bool      // a drop was logged in this episode
	policySince  time.Time // max_bytes made drop_oldest or reject_new act since
	scratch      []byte    // overBoundLocked's

	// committing is when the commit in progress began (clock's Unix
	// nanoseconds), 0 between commits; see CommitSince.
	committing atomic.Int64
}

// CommitSince is when the group commit in progress began, zero when none
// is: a commit that has run for long means a disk that no longer answers
// (a dying SD card), which the gateway's watchdog reports to systemd.
func (s *Spool) CommitSince() time.Time {
	if ns := s.committing.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Append gives rec the next seq and queues it for the next group commit. It
// never waits for the disk. done, if not nil, is called from the committer
// goroutine, in seq order, once the transaction holding rec is durable; it
// must be quick, for it holds up the next commit. A record with a done
// callback is committed at once. On error (ErrFull, ErrClosed) rec is not
// stored, no seq is used and done is never called.
func (s *Spool) Append(rec reading.Record, done func()) (uint64, error) {
	return s.appendRecord(rec, done, nil)
}

func (s *Spool) appendRecord(rec reading.Record, done func(), m *Mark) (uint64, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if s.memOn {
		if s.nextSeq < s.memLimit {
			q := &s.mem
			start := len(q.buf)
			var n int
			q.buf, n = appendEntry(q.buf, &rec)
			return s.appendMemLocked(start, int64(keyLen+n), done, m)
		}
		s.toDiskLocked("the seq reservation is behind")
	}
	p := s.pend
	start := len(p.buf)
	var n int
	p.buf, n = appendEntry(p.buf, &rec)
	size := int64(keyLen + n)
	waiting := p.memory() + s.inflight + size
	if s.opts.WhenFull == RejectNew && s.st.bytes+waiting > s.opts.MaxBytes {
		p.buf = p.buf[:start]
		s.noteFullLocked()
		s.mu.Unlock()
		s.dropRej.Inc()
		return 0, ErrFull
	}
	if waiting > maxPendingBytes {
		if err := s.overBoundLocked(start, waiting, done != nil); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	seq := s.nextSeq
	s.nextSeq++
	wake := false
	if p.n == 0 {
		p.first, p.oldestAt, wake = seq, s.clock.Now(), true
	}
	p.ends = append(p.ends, len(p.buf))
	p.n++
	p.bytes += size
	if done != nil {
		p.dones = append(p.dones, doneAt{seq: seq, fn: done})
		wake = wake || !s.urgent
		s.urgent = true
	}
	if m != nil {
		p.marks = append(p.marks, markOp{id: m.ID, hash: m.Hash})
	}
	if len(p.ends) == maxBatchRecords {
		wake = true
	}
	s.mu.Unlock()
	if wake {
		s.wake()
	}
	return seq, nil
}

// overBoundLocked applies buffer.when_full to the records waiting in memory,
// which have reached maxPendingBytes because commits fail (a full disk) or
// lag behind: drop_oldest drops the oldest of them that no source waits
// for, reject_new refuses the new record. A record with a done callback is
// kept beyond the bound (the source's in-flight window bounds those: MQTT
// QoS 1 messages stop coming while their acknowledgements wait) and refused
// only at twice the bound. The new record is encoded at pend.buf[start:];
// on error it is taken out again. s.mu is held.
func (s *Spool) overBoundLocked(start int, waiting int64, hasDone bool) error {
	p := s.pend
	counter, reason := s.dropBacklog, metrics.DropSpoolBacklog
	if s.failKind == metrics.DropDiskFull {
		counter, reason = s.dropDiskFull, metrics.DropDiskFull
	}
	refuse := func() error {
		p.buf = p.buf[:start]
		counter.Inc()
		s.noteBacklogLocked(reason, 1, false)
		return ErrStalled
	}
	switch {
	case hasDone:
		if waiting > 2*maxPendingBytes {
			return refuse()
		}
		return nil
	case s.opts.WhenFull == RejectNew:
		return refuse()
	}
	// Drop down to 7/8 of the bound, so that this runs once per 4 MiB of
	// input rather than for every record. The new record's bytes are put
	// aside while the entries before them move.
	s.scratch = append(s.scratch[:0], p.buf[start:]...)
	p.buf = p.buf[:start]
	freed := s.shedLocked(waiting - maxPendingBytes*7/8)
	if waiting-freed > maxPendingBytes {
		// Nothing older that may be dropped is left in memory (it is all
		// being committed, or sources wait for it): the new record goes.
		return refuse()
	}
	p.buf = append(p.buf, s.scratch...)
	return nil
}

// shedLocked drops the oldest pending records no source waits for until
// need bytes are freed (see batch.dropPending), counting them. s.mu is held.
func (s *Spool) shedLocked(need int64) (freed int64) {
	counter, reason := s.dropBacklog, metrics.DropSpoolBacklog
	if s.failKind == metrics.DropDiskFull {
		counter, reason = s.dropDiskFull, metrics.DropDiskFull
	}
	dropped, freed := s.pend.dropPending(need)
	if dropped > 0 {
		counter.Add(float64(dropped))
		s.noteBacklogLocked(reason, dropped, true)
	}
	return freed
}

// appendEntry appends rec to buf as a chunk entry: its length as a uvarint,
// then its binary form, whose length it returns.
func appendEntry(buf []byte, rec *reading.Record) ([]byte, int) {
	start := len(buf)
	buf = append(buf, 0) // the length prefix: one byte for most records
	buf = rec.AppendBinary(buf)
	n := len(buf) - start - 1
	if n < 0x80 {
		buf[start] = byte(n)
	} else {
		buf = widenPrefix(buf, start, n)
	}
	return buf, n
}

// widenPrefix makes room for the uvarint length n of the record encoded at
// buf[start+1:], which did not fit the one byte reserved for it.
func widenPrefix(buf []byte, start, n int) []byte {
	var tmp [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(tmp[:], uint64(n))
	buf = append(buf, tmp[1:k]...) // grow by k-1; the bytes are overwritten
	copy(buf[start+k:], buf[start+1:start+1+n])
	copy(buf[start:], tmp[:k])
	return buf
}

func (s *Spool) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Flush commits everything appended before the call and waits for it. It
// returns ErrClosed if the spool stopped without committing it.
func (s *Spool) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.nextSeq - 1
	for s.st.last < target && !(s.opts.Mode == Outage && s.ackedThrough >= target) { // committed, or Kafka has it
		if s.run == runDone || s.closed && s.run == runIdle {
			s.mu.Unlock()
			return ErrClosed
		}
		s.urgent = true
		ch := s.changed
		s.mu.Unlock()
		s.wake()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// WaitCommitted returns nil as soon as a committed record with seq > after
// is in the spool (at once if one already is), or ctx.Err().
func (s *Spool) WaitCommitted(ctx context.Context, after uint64) error {
	s.mu.Lock()
	for (s.st.records() == 0 || s.st.last <= after) && !(s.memReadableLocked() && s.mem.last() > after) {
		ch := s.changed
		s.waiters++
		s.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-ch:
		}
		s.mu.Lock()
		s.waiters--
		if err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	return nil
}

// Stats describe the spool at one moment.
type Stats struct {
	Records  int64     // records held for Kafka: committed, and in memory (outage mode)
	InMemory int64     // of those, held in memory (outage mode)
	Memory   bool      // outage mode, in memory state
	Bytes    int64     // their encoded size, what MaxBytes bounds
	FirstSeq uint64    // seq of the oldest record held; 0 when empty
	LastSeq  uint64    // highest seq ever committed (kept after acks and restarts)
	NextSeq  uint64    // the seq the next Append gets
	Pending  int       // appended records not yet committed (also those a commit is writing)
	OldestTS time.Time // time of the oldest record's reading, alert or event; zero when empty
}

// Stats returns the spool's current counts. It does not touch the disk.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Records: s.st.records() + int64(s.mem.len()), InMemory: int64(s.mem.len()), Memory: s.memOn,
		Bytes: s.st.bytes, FirstSeq: s.st.first(), LastSeq: s.st.last,
		NextSeq: s.nextSeq, Pending: int(s.pend.n + s.inflightN), OldestTS: s.st.oldestTS,
	}
}

// Close stops the spool and closes the bbolt file. Call it after Run has
// returned; called earlier it makes Run commit what is pending and return,
// and waits for that. Without Run ever started, it commits what was
// appended itself.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.toDiskLocked("the spool stops")
		run := s.run
		var b *batch
		if run == runIdle && s.pend.n > 0 {
			b = s.take()
		}
		s.mu.Unlock()
		s.wake()
		var err error
		if run != runIdle {
			<-s.runDone
		} else if b != nil {
			err = s.commit(b)
		}
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}
