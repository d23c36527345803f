package buffer

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/reading"
)

// These tests play the uplink by hand: ReadBatch, then AckThrough once
// "Kafka" has the records, on the fake clock.

func outageOpts(o *Options) {
	o.Mode = Outage
	o.OutageAfter = time.Second
}

// drain reads everything readable after *after and acknowledges it, as the
// uplink does once Kafka answers; it returns the records.
func (h *harness) drain(after *uint64) []reading.Record {
	h.t.Helper()
	var all []reading.Record
	for {
		recs, err := h.s.ReadBatch(*after, 1000)
		if err != nil {
			h.t.Fatalf("ReadBatch: %v", err)
		}
		if len(recs) == 0 {
			return all
		}
		for i, r := range recs {
			if r.Seq != *after+uint64(i)+1 {
				h.t.Fatalf("read seq %d after %d: not in order", r.Seq, *after+uint64(i))
			}
		}
		*after = recs[len(recs)-1].Seq
		all = append(all, recs...)
		if err := h.s.AckThrough(*after); err != nil {
			h.t.Fatalf("AckThrough: %v", err)
		}
	}
}

// toMemory runs an outage-mode spool from its start (disk state) to memory
// state: a record committed, read and acknowledged.
func (h *harness) toMemory(after *uint64, i int) {
	h.t.Helper()
	h.appendN(i, 1)
	h.flush()
	h.drain(after)
	if st := h.s.Stats(); !st.Memory {
		h.t.Fatalf("not in memory state after the file was drained: %+v", st)
	}
}

// callbacks records which seqs' done callbacks ran, each once.
type callbacks struct {
	t      testing.TB
	mu     sync.Mutex
	called map[uint64]int
}

func newCallbacks(t testing.TB) *callbacks { return &callbacks{t: t, called: map[uint64]int{}} }

func (c *callbacks) append(h *harness, i int) uint64 {
	c.t.Helper()
	var seq uint64
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, err := h.s.Append(sample(i), func() {
		c.mu.Lock()
		c.called[seq]++
		c.mu.Unlock()
	})
	if err != nil {
		c.t.Fatalf("Append %d: %v", i, err)
	}
	return seq
}

func (c *callbacks) count(seq uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.called[seq]
}

func TestOutageModeSwitches(t *testing.T) {
	old := drainedRecords
	drainedRecords = 0 // drained means empty here, so the switch is exact
	t.Cleanup(func() { drainedRecords = old })
	h := start(t, testPath(t), outageOpts)
	var after uint64
	if st := h.s.Stats(); st.Memory {
		t.Fatal("an outage-mode spool starts in memory state; it must first see Kafka answer")
	}
	h.toMemory(&after, 0)
	if got := testutil.ToFloat64(h.m.BufferMemoryMode); got != 1 {
		t.Errorf("edgegw_buffer_memory_mode = %v", got)
	}
	cb := newCallbacks(t)

	// Healthy: nothing reaches the disk, callbacks wait for Kafka.
	writes := h.s.DiskWrites()
	info0, _ := os.Stat(h.path)
	var seqs []uint64
	for i := 1; i <= 500; i++ {
		if i%5 == 0 {
			seqs = append(seqs, cb.append(h, i))
		} else {
			h.appendN(i, 1)
		}
	}
	h.clock.Advance(500 * time.Millisecond) // two commit intervals, under OutageAfter
	if err := h.s.WaitCommitted(testCtx(t), after); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); !st.Memory || st.InMemory != 500 || st.Records != 500 || st.Pending != 0 {
		t.Fatalf("Stats in memory state: %+v", st)
	}
	if cb.count(seqs[0]) != 0 {
		t.Fatal("done called before Kafka acknowledged")
	}
	if !h.s.Waiting() {
		t.Error("Waiting() false with callbacks held in memory")
	}
	recs := h.drain(&after)
	if len(recs) != 500 || recs[0].Seq != 2 || !sameRecord(recs[499], sample(500), 501) {
		t.Fatalf("read %d records from memory (first %d)", len(recs), recs[0].Seq)
	}
	for _, seq := range seqs {
		if cb.count(seq) != 1 {
			t.Fatalf("done for seq %d called %d times after Kafka acknowledged", seq, cb.count(seq))
		}
	}
	info1, _ := os.Stat(h.path)
	if got := h.s.DiskWrites(); got != writes || info1.Size() != info0.Size() || testutil.ToFloat64(h.m.BufferCommits) != 1 {
		t.Errorf("memory state wrote to the disk: %d writes (was %d), file %d bytes (was %d), %v commits",
			got, writes, info1.Size(), info0.Size(), testutil.ToFloat64(h.m.BufferCommits))
	}

	// Kafka stops answering: after OutageAfter everything in memory goes
	// to the file, in order, and its callbacks run at the commit.
	var pending []uint64
	for i := 501; i <= 700; i++ {
		if i%5 == 0 {
			pending = append(pending, cb.append(h, i))
		} else {
			h.appendN(i, 1)
		}
	}
	read, err := h.s.ReadBatch(after, 50) // the uplink has these in flight
	if err != nil || len(read) != 50 {
		t.Fatalf("ReadBatch: %d, %v", len(read), err)
	}
	h.clock.Advance(time.Second + time.Millisecond)
	waitFor(t, "the switch to the file", func() bool { return h.s.Stats().LastSeq == 701 })
	if st := h.s.Stats(); st.Memory || st.InMemory != 0 || st.LastSeq != 701 || st.Records != 200 {
		t.Fatalf("Stats after the switch to the file: %+v", st)
	}
	waitFor(t, "the callbacks of the committed records", func() bool { return cb.count(pending[len(pending)-1]) == 1 })
	if got := testutil.ToFloat64(h.m.BufferModeSwitches.WithLabelValues("disk")); got != 1 {
		t.Errorf("switches to disk = %v", got)
	}
	// Appends go to the file now, on the commit timer.
	h.appendN(701, 10)
	h.clock.Advance(200 * time.Millisecond)
	if err := h.s.WaitCommitted(testCtx(t), 710); err != nil {
		t.Fatal(err)
	}
	// Kafka answers again: the records in flight, then the rest from the
	// file, and back to memory once drained.
	after = read[len(read)-1].Seq
	if err := h.s.AckThrough(after); err != nil {
		t.Fatal(err)
	}
	if h.s.Stats().Memory {
		t.Fatal("back in memory with the file's backlog not drained")
	}
	rest := h.drain(&after)
	if len(rest) != 160 || after != 711 {
		t.Fatalf("read %d records from the file, through %d", len(rest), after)
	}
	st := h.s.Stats()
	if !st.Memory || st.Records != 0 {
		t.Fatalf("after draining: %+v", st)
	}
	seq := cb.append(h, 711)
	if seq != 712 {
		t.Errorf("seq %d after the switches, want 712", seq)
	}
	for _, seq := range append(seqs, pending...) {
		if n := cb.count(seq); n != 1 {
			t.Errorf("done for seq %d called %d times", seq, n)
		}
	}
}

// A record moved to the file is acknowledged by Kafka before its commit:
// it is not kept in the file.
func TestOutageModeAckBeforeCommit(t *testing.T) {
	h := start(t, testPath(t), outageOpts)
	var after uint64
	h.toMemory(&after, 0)
	h.appendN(1, 20)
	read, err := h.s.ReadBatch(after, 20)
	if err != nil || len(read) != 20 {
		t.Fatal(len(read), err)
	}
	// Fail the commit, so the moved records wait in memory for the retry.
	blocker := h.path + ".seq.tmp"
	h.s.txMu.Lock()
	h.s.reserved = 0 // the commit must write the reservation
	h.s.txMu.Unlock()
	h.s.mu.Lock()
	h.s.toDiskLocked("test")
	h.s.mu.Unlock()
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	h.s.wake()
	waitFor(t, "a failed commit", func() bool { return !h.s.Full().Since.IsZero() || h.s.failing() })
	if err := h.s.AckThrough(read[19].Seq); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second)
	waitFor(t, "the retried commit", func() bool { return h.s.Stats().LastSeq == 21 })
	if st := h.s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Errorf("records acknowledged before their commit were kept: %+v", st)
	}
	if recs := h.readAll(); len(recs) != 0 {
		t.Errorf("ReadBatch returns %d acknowledged records", len(recs))
	}
}

func (s *Spool) failing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.failSince.IsZero()
}

// More than memMaxBytes waiting for Kafka switches to the file at once.
func TestOutageModeMemoryBound(t *testing.T) {
	old := memMaxBytes
	memMaxBytes = 16 << 10
	t.Cleanup(func() { memMaxBytes = old })
	h := start(t, testPath(t), outageOpts)
	var after uint64
	h.toMemory(&after, 0)
	n := int(memMaxBytes/encodedSize(sampleReading(0))) + 1
	for i := range n {
		if _, err := h.s.Append(sampleReading(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.s.WaitCommitted(testCtx(t), uint64(n)); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); st.Memory || st.LastSeq != uint64(n+1) {
		t.Errorf("past the memory bound: %+v", st)
	}
}

// A crash (the files as they are on disk) or a clean stop in memory
// state: the reopened spool's seqs continue above every seq handed out.
func TestOutageModeSeqAcrossRestarts(t *testing.T) {
	path := testPath(t)
	h := start(t, path, outageOpts)
	var after uint64
	h.toMemory(&after, 0)
	h.appendN(1, 300)
	h.drain(&after) // Kafka has 2..301, the file never saw them
	h.appendN(301, 5)
	handed := h.s.Stats().NextSeq - 1 // 306

	crash := filepath.Join(t.TempDir(), "crash.db")
	copyFile(t, path, crash)
	copyFile(t, path+".seq", crash+".seq")
	c := start(t, crash, nil) // reopened durable: the file says to skip too
	if seq, err := c.s.Append(sample(0), nil); err != nil || seq <= handed {
		t.Errorf("after a crash in memory state: seq %d, %v; want above %d", seq, err, handed)
	}
	c.stop()

	h.stop() // a clean stop commits what memory held
	h = start(t, path, outageOpts)
	recs := h.readAll()
	if len(recs) != 5 || recs[0].Seq != 302 || recs[4].Seq != handed {
		t.Fatalf("after a clean stop the file holds %d records from %d", len(recs), recs[0].Seq)
	}
	seq, err := h.s.Append(sample(0), nil)
	if err != nil || seq <= handed {
		t.Errorf("after a clean stop: seq %d, %v; want above %d", seq, err, handed)
	}
	// Once durable records above every memory seq are committed, a reopened
	// spool continues right after them again.
	h.flush()
	h.stop()
	h = start(t, path, nil)
	if next := h.s.Stats().NextSeq; next != seq+1 {
		t.Errorf("NextSeq %d after durable commits above the memory seqs, want %d", next, seq+1)
	}
}

// Redelivery marks of records in memory are written with them when they
// move to the file, and dropped with them when Kafka has them.
func TestOutageModeMarks(t *testing.T) {
	h := start(t, testPath(t), outageOpts)
	var after uint64
	h.toMemory(&after, 0)
	if _, err := h.s.AppendMarked(sample(1), func() {}, Mark{ID: 7, Hash: 70}); err != nil {
		t.Fatal(err)
	}
	h.drain(&after)
	if h.s.Redelivered(Mark{ID: 7, Hash: 70}) || h.s.Marks() != 0 {
		t.Error("a mark of a record Kafka acknowledged from memory is kept")
	}
	if _, err := h.s.AppendMarked(sample(2), func() {}, Mark{ID: 8, Hash: 80}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Second + time.Millisecond)
	waitFor(t, "the mark committed", func() bool { return h.s.Redelivered(Mark{ID: 8, Hash: 80}) })
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
