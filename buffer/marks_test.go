package buffer

import (
	"os"
	"sync"
	"testing"
	"time"
)

// appendMarkedAndWait appends one marked record and waits for its commit.
func appendMarkedAndWait(t *testing.T, h *harness, i int, m Mark) {
	t.Helper()
	done := make(chan struct{})
	if _, err := h.s.AppendMarked(sample(i), func() { close(done) }, m); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, done, "the marked record's commit")
}

// A marked message is Redelivered once committed and until forgotten; the
// mark survives a crash (no Forget, no clean stop) and a forgotten one
// stays forgotten across a clean stop even with no record committed after
// the Forget.
func TestMarks(t *testing.T) {
	path := testPath(t)
	h := start(t, path, nil)
	a, b := Mark{ID: 7, Hash: 0xAAAA}, Mark{ID: 8, Hash: 0xBBBB}
	if h.s.Redelivered(a) {
		t.Fatal("Redelivered before anything was committed")
	}
	appendMarkedAndWait(t, h, 0, a)
	appendMarkedAndWait(t, h, 1, b)
	if !h.s.Redelivered(a) || !h.s.Redelivered(b) {
		t.Fatal("committed marks not Redelivered")
	}
	if h.s.Redelivered(Mark{ID: 7, Hash: 0xCCCC}) {
		t.Error("same id, other hash (another message) counted as a redelivery")
	}
	h.s.Forget(b.ID) // b was acknowledged; a was not when the "crash" came
	if !h.s.Redelivered(b) {
		t.Error("the mark went with the acknowledgement, which may not have reached the broker yet")
	}
	h.clock.Advance(forgetDelay)
	appendMarkedAndWait(t, h, 9, Mark{ID: 9, Hash: 9}) // a commit after the delay
	if h.s.Redelivered(b) {
		t.Error("forgotten mark still Redelivered after the delay")
	}
	h.s.Forget(9)
	h.stop() // a clean stop writes the pending forget of 9 too

	h = start(t, path, nil)
	if !h.s.Redelivered(a) {
		t.Error("the unacknowledged message's mark did not survive the restart")
	}
	if h.s.Redelivered(b) {
		t.Error("the acknowledged message's mark came back after the restart")
	}
	if n := h.s.Marks(); n != 1 {
		t.Errorf("%d marks, want 1 (the forgotten ones written at the clean stop)", n)
	}

	// The broker reuses id 7 for a new message (DUP not set): the source
	// drops the stale mark at once, then stores the new message with its own.
	h.s.Reused(a.ID)
	c := Mark{ID: 7, Hash: 0xDDDD}
	appendMarkedAndWait(t, h, 2, c)
	if h.s.Redelivered(a) || !h.s.Redelivered(c) {
		t.Errorf("after reuse of id 7: old %v new %v", h.s.Redelivered(a), h.s.Redelivered(c))
	}
	h.stop()
	h = start(t, path, nil)
	if h.s.Redelivered(a) || !h.s.Redelivered(c) {
		t.Errorf("after the restart: old %v new %v", h.s.Redelivered(a), h.s.Redelivered(c))
	}
}

// A failed commit keeps the marks with its records: they are recorded by
// the retry that succeeds, before the done callbacks run.
func TestMarksSurviveFailedCommit(t *testing.T) {
	h := start(t, testPath(t), nil)
	ctx := testCtx(t)
	// The seq reservation cannot be written (a directory where its
	// temporary file goes): the first commit fails like a full disk.
	blocker := h.path + ".seq.tmp"
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	m := Mark{ID: 42, Hash: 99}
	seen := make(chan bool, 1)
	if _, err := h.s.AppendMarked(sample(0), func() { seen <- h.s.Redelivered(m) }, m); err != nil {
		t.Fatal(err)
	}
	if err := h.clock.BlockUntilContext(ctx, 1); err != nil { // the retry timer
		t.Fatal(err)
	}
	if h.s.Redelivered(m) {
		t.Fatal("Redelivered after a failed commit")
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(100 * time.Millisecond)
	select {
	case ok := <-seen:
		if !ok {
			t.Fatal("done ran before the mark was recorded")
		}
	case <-ctx.Done():
		t.Fatal("no commit after the retry")
	}
}

// Many messages marked in one group commit each keep their own hash (bbolt
// holds a value's bytes until the commit, so they must not share a buffer).
func TestManyMarksInOneCommit(t *testing.T) {
	path := testPath(t)
	h := start(t, path, nil)
	const n = 50
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		// No done on the first n-1: they wait for the last one's commit.
		var done func()
		if i == n-1 {
			done = func() {
				for range n {
					wg.Done()
				}
			}
		}
		if _, err := h.s.AppendMarked(sample(i), done, Mark{ID: uint16(100 + i), Hash: uint64(1000 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	h.stop()
	h = start(t, path, nil)
	for i := range n {
		if m := (Mark{ID: uint16(100 + i), Hash: uint64(1000 + i)}); !h.s.Redelivered(m) {
			t.Errorf("mark %d lost or changed across the restart", i)
		}
	}
}
