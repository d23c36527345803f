package buffer

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every test here runs on a fake clock that only the test advances, so a
// commit that happens without Advance was not triggered by the timer.

func TestDoneCalledAfterCommitInOrder(t *testing.T) {
	h := start(t, testPath(t), nil)
	const n = 200
	var want []uint64 // records with i%3 == 2 get no callback
	for i := range n {
		if i%3 != 2 {
			want = append(want, uint64(i+1)) // seqs of a fresh spool start at 1
		}
	}
	var (
		mu     sync.Mutex
		called []uint64
	)
	all := make(chan struct{})
	for i := range n {
		if i%3 == 2 {
			if _, err := h.s.Append(sample(i), nil); err != nil {
				t.Fatal(err)
			}
			continue
		}
		seq := uint64(i + 1)
		_, err := h.s.Append(sample(i), func() {
			if got := h.s.Stats().LastSeq; got < seq {
				t.Errorf("done for seq %d called while only %d is committed", seq, got)
			}
			mu.Lock()
			called = append(called, seq)
			if len(called) == len(want) {
				close(all)
			}
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitClosed(t, all, "every done callback")
	mu.Lock()
	defer mu.Unlock()
	if len(called) != len(want) {
		t.Fatalf("%d callbacks, want %d", len(called), len(want))
	}
	for i := range want {
		if called[i] != want[i] {
			t.Fatalf("callback %d for seq %d, want %d (callbacks out of order)", i, called[i], want[i])
		}
	}
}

func TestCallbackCommitsAtOnce(t *testing.T) {
	h := start(t, testPath(t), nil)
	ctx := testCtx(t)
	h.appendN(0, 5)
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatalf("commit timer never armed: %v", err)
	}
	if got := h.s.Stats().LastSeq; got != 0 {
		t.Fatalf("committed through %d before any trigger", got)
	}
	done := make(chan struct{})
	if _, err := h.s.Append(sample(5), func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, done, "the done callback, without advancing the clock")
	if st := h.s.Stats(); st.LastSeq != 6 || st.Records != 6 {
		t.Errorf("Stats = %+v, want the 5 earlier records committed with it", st)
	}
}

func TestTimerCommit(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     time.Duration
	}{
		{"default interval", 0, 200 * time.Millisecond},
		{"one second", time.Second, time.Second},
		{"5ms", 5 * time.Millisecond, 5 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testPath(t), func(o *Options) { o.CommitInterval = tt.interval })
			ctx := testCtx(t)
			h.appendN(0, 3)
			if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatalf("commit timer never armed: %v", err)
			}
			h.clock.Advance(tt.want - time.Millisecond/2)
			if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if got := h.s.Stats(); got.LastSeq != 0 || got.Pending != 3 {
				t.Fatalf("before the interval: %+v, want nothing committed, 3 pending", got)
			}
			h.clock.Advance(time.Millisecond / 2)
			if err := h.s.WaitCommitted(ctx, 0); err != nil {
				t.Fatalf("no commit once the interval passed: %v", err)
			}
			if got := h.s.Stats(); got.LastSeq != 3 || got.Pending != 0 {
				t.Errorf("after the interval: %+v, want 3 committed", got)
			}
		})
	}
}

func TestTimerRunsFromOldestPending(t *testing.T) {
	h := start(t, testPath(t), nil)
	ctx := testCtx(t)
	h.appendN(0, 1)
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(150 * time.Millisecond)
	h.appendN(1, 1) // a later record does not push the deadline out
	h.clock.Advance(50 * time.Millisecond)
	if err := h.s.WaitCommitted(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := h.s.Stats().LastSeq; got != 2 {
		t.Errorf("committed through %d, want 2", got)
	}
}

func TestSizeBoundCommitsAtOnce(t *testing.T) {
	h := start(t, testPath(t), nil)
	h.appendN(0, maxBatchRecords)
	if err := h.s.WaitCommitted(testCtx(t), maxBatchRecords-1); err != nil {
		t.Fatalf("a full batch was not committed without the timer: %v", err)
	}
}

func TestFlushCommitsWithoutTimer(t *testing.T) {
	h := start(t, testPath(t), nil)
	h.appendN(0, 10)
	h.flush()
	if st := h.s.Stats(); st.LastSeq != 10 || st.Pending != 0 {
		t.Errorf("after Flush: %+v, want all 10 committed", st)
	}
	h.flush() // nothing pending: returns at once
}

func TestGroupCommit(t *testing.T) {
	// Appends made while a commit runs go into the next transaction
	// together: far fewer commits than records with callbacks.
	h := start(t, testPath(t), nil)
	const n = 2000
	all := make(chan struct{})
	for i := range n {
		var done func()
		if i == n-1 {
			done = func() { close(all) }
		} else {
			done = func() {}
		}
		if _, err := h.s.Append(sampleReading(i), done); err != nil {
			t.Fatal(err)
		}
	}
	waitClosed(t, all, "the last callback")
	commits := testutil.ToFloat64(h.m.BufferCommits)
	if commits >= n/2 {
		t.Errorf("%v commits for %d records with callbacks: no grouping", commits, n)
	}
	t.Logf("%d records with callbacks in %v commits", n, commits)
}

func TestFailedCommitIsRetried(t *testing.T) {
	// Make the seq reservation unwritable (a directory where its temporary
	// file goes), so that the first commit fails like a full disk would.
	h := start(t, testPath(t), nil)
	ctx := testCtx(t)
	blocker := h.path + ".seq.tmp"
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	var called atomic.Int32
	all := make(chan struct{})
	for i := range 3 {
		done := func() {
			if called.Add(1) == 3 {
				close(all)
			}
		}
		if _, err := h.s.Append(sample(i), done); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil { // the retry timer
		t.Fatal(err)
	}
	if got := called.Load(); got != 0 {
		t.Fatalf("%d done callbacks after a failed commit", got)
	}
	if st := h.s.Stats(); st.LastSeq != 0 || st.Pending != 3 {
		t.Fatalf("after a failed commit: %+v, want 3 pending, none committed", st)
	}
	h.appendN(3, 2) // joins the retried records, after them

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(100 * time.Millisecond)
	if err := h.s.WaitCommitted(ctx, 4); err != nil {
		t.Fatalf("no commit after the retry delay: %v", err)
	}
	recs := h.readAll()
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	for i, r := range recs {
		if !sameRecord(r, sample(i), uint64(i+1)) {
			t.Errorf("record %d: seq %d %+v, want seq %d", i, r.Seq, r, i+1)
		}
	}
	waitClosed(t, all, "the done callbacks after the retry")
}
