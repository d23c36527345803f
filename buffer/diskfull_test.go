package buffer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer/disktest"

	"go.etcd.io/bbolt"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// TestDropPending drops the oldest readings of a batch in place: records a
// source waits for (a done callback), alert transitions and events stay,
// the others become runs, and the seqs stay contiguous.
func TestDropPending(t *testing.T) {
	var b batch
	const n = 50
	b.first = 101
	for i := range n {
		if i == 20 { // an existing run of 3 seqs in the middle
			b.buf = appendRun(b.buf, 3)
			b.ends = append(b.ends, len(b.buf))
			b.runs++
			b.holes += 3
			b.runBytes += 2
			b.n += 3
			continue
		}
		start := len(b.buf)
		b.buf = append(b.buf, 0)
		rec := sample(i)
		b.buf = rec.AppendBinary(b.buf)
		b.buf[start] = byte(len(b.buf) - start - 1)
		b.ends = append(b.ends, len(b.buf))
		b.bytes += int64(keyLen + len(b.buf) - start - 1)
		if i%7 == 3 {
			b.dones = append(b.dones, doneAt{seq: b.first + b.n, fn: func() {}})
		}
		b.n++
	}
	seqOf := func(i int) uint64 { // the seq of sample(i) in b
		if i > 20 {
			return b.first + uint64(i) + 2
		}
		return b.first + uint64(i)
	}
	before := b.bytes
	// keeps tells the records dropPending must keep.
	keeps := func(i int) bool { return i%7 == 3 || sample(i).Kind != reading.KindReading }
	need := 20 * encodedSize(sample(0)) / 2 // about 10 readings' worth
	dropped, freed := b.dropPending(need)
	if dropped == 0 || freed < need || b.bytes != before-freed {
		t.Fatalf("dropped %d, freed %d of %d, bytes %d -> %d", dropped, freed, need, before, b.bytes)
	}
	if b.n != n+2 || b.first != 101 || b.holes != uint64(dropped)+3 {
		t.Fatalf("n %d first %d holes %d after dropping %d", b.n, b.first, b.holes, dropped)
	}
	// Walk the entries as a commit would write them.
	got := map[uint64][]byte{}
	var seqs []uint64
	if err := walkChunk(b.first, b.buf, func(seq uint64, rec []byte) bool {
		got[seq], seqs = rec, append(seqs, seq)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(seqs) != n+2 || seqs[0] != 101 || seqs[len(seqs)-1] != b.last() {
		t.Fatalf("walked seqs %v, want 101..%d", seqs, b.last())
	}
	if e := b.ends[len(b.ends)-1]; e != len(b.buf) {
		t.Fatalf("last end %d, buf %d", e, len(b.buf))
	}
	kept, lastDropped := 0, -1
	for i := range n {
		if i == 20 {
			continue
		}
		rec, seq := got[seqOf(i)], seqOf(i)
		switch {
		case keeps(i):
			if rec == nil {
				t.Errorf("record %d (seq %d, %v) was dropped, but has a done callback or is no reading", i, seq, sample(i).Kind)
			}
		case rec == nil:
			lastDropped = i
			if kept > 0 {
				t.Errorf("record %d dropped after a newer droppable one was kept: not oldest first", i)
			}
		default:
			kept++
		}
		if want := sample(i); rec != nil && !bytes.Equal(rec, want.AppendBinary(nil)) {
			t.Errorf("record %d (seq %d) changed", i, seq)
		}
	}
	if lastDropped < 0 {
		t.Fatal("nothing dropped")
	}
	// Dropping again joins the runs; dropping everything droppable leaves
	// the records kept and one run in each gap between them.
	b.dropPending(1 << 30)
	recs, size := 0, int64(0)
	_ = walkChunk(b.first, b.buf, func(seq uint64, rec []byte) bool {
		if rec != nil {
			recs++
			size += int64(keyLen + len(rec))
		}
		return true
	})
	wantRecs, wantRuns, inGap := 0, 0, false
	for i := range n {
		if i != 20 && keeps(i) {
			wantRecs++
			inGap = false
		} else if !inGap {
			wantRuns++
			inGap = true
		}
	}
	if recs != wantRecs || b.bytes != size {
		t.Errorf("%d records (%d bytes) left, want the %d kept", recs, b.bytes, wantRecs)
	}
	if b.runs != wantRuns {
		t.Errorf("%d runs, want %d, one in each gap between kept records", b.runs, wantRuns)
	}
}

// diskFullEnv, when set to a directory, turns this test binary into the
// child of TestDiskFullFileSizeLimit.
const diskFullEnv = "EDGEGW_BUFFER_DISKFULL_CHILD"

// TestDiskFullFileSizeLimit runs the disk-full scenario in a child process
// whose file size limit (RLIMIT_FSIZE) stops the spool file from growing:
// commits fail with EFBIG like on a full disk, and raising the limit is
// space returning. It needs no privileges.
func TestDiskFullFileSizeLimit(t *testing.T) {
	if dir := os.Getenv(diskFullEnv); dir != "" {
		diskFullUnderLimit(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^TestDiskFullFileSizeLimit$", "-test.v")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil || !strings.Contains(string(out), "disk-full scenario passed") {
		t.Fatalf("child failed: %v", err)
	}
}

func diskFullUnderLimit(t *testing.T, dir string) {
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit then fails with EFBIG instead of killing
	path := filepath.Join(dir, "buffer.db")
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
		t.Fatal(err)
	}
	fill := func() {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		lim := orig
		lim.Cur = uint64(info.Size())
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			t.Fatal(err)
		}
		t.Logf("file size limit %d bytes", lim.Cur)
	}
	free := func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &orig); err != nil {
			t.Fatal(err)
		}
	}
	diskFullScenario(t, path, fill, free)
	t.Log("disk-full scenario passed")
}

// TestDiskFullTmpfs runs the disk-full scenario on a real full filesystem:
// a 1 MiB tmpfs, filled up by another file; deleting that file is space
// returning. Mounting needs root (CI runs as root).
func TestDiskFullTmpfs(t *testing.T) {
	dir := disktest.Tmpfs(t, "1m", "TestDiskFullFileSizeLimit covers the same unprivileged")
	var free func()
	diskFullScenario(t, filepath.Join(dir, "buffer.db"), func() { free = disktest.Fill(t, dir) }, func() { free() })
}

// diskFullScenario fills the disk under a running spool (fill) and frees it
// again (free), appending records with and without done callbacks all the
// while, like the gateway's pipeline with MQTT QoS 1 and GPIO sources:
//   - the commit that fails raises the spool's full state at once, and the
//     file stays sound: it holds exactly the records whose done callbacks
//     ran (and those committed with them), as a crash would find it;
//   - records wait in memory up to the bound, then drop_oldest drops the
//     oldest of them that no source waits for, counted as disk_full;
//   - once space returns the commits resume by themselves, every record
//     with a callback is committed and its callback called, every other
//     record is either in the spool or counted as dropped, and the seqs
//     stay contiguous through reopening.
func diskFullScenario(t *testing.T, path string, fill, free func()) {
	old := maxPendingBytes
	maxPendingBytes = 64 << 10
	t.Cleanup(func() { maxPendingBytes = old })

	h := start(t, path, nil)
	var (
		mu     sync.Mutex
		called = map[uint64]bool{}
		want   = map[uint64]reading.Record{} // every seq appended, by seq
		withCB = map[uint64]bool{}
	)
	refused := 0
	appendOne := func(i int, cb bool) {
		t.Helper()
		rec := sample(i)
		var done func()
		var seq uint64
		if cb {
			done = func() {
				mu.Lock()
				called[seq] = true
				mu.Unlock()
			}
		}
		mu.Lock() // done may run before Append returns
		s, err := h.s.Append(rec, done)
		seq = s
		mu.Unlock()
		if errors.Is(err, ErrStalled) && !cb {
			// Nothing older was left to drop: it was all in the commit
			// being retried.
			refused++
			return
		}
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		want[seq] = rec
		withCB[seq] = cb
	}
	calledCount := func() int { mu.Lock(); defer mu.Unlock(); return len(called) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// Space to begin with: a few commits.
	for i := range 300 {
		appendOne(i, i%10 == 9)
	}
	waitFor("the first commits", func() bool { return calledCount() == 30 })
	h.flush()
	fill()

	// Appends go on until a commit fails; a record with a callback in
	// every 50 makes each batch commit at once, while the fake clock
	// holds the retries back.
	i := 300
	for h.s.Full().Since.IsZero() {
		if i > 300+200_000 {
			t.Fatal("no commit failed on the full disk")
		}
		for range 50 {
			appendOne(i, i%50 == 49)
			i++
		}
		time.Sleep(time.Millisecond)
	}
	f := h.s.Full()
	if f.Reason != FullDisk || !strings.Contains(f.Detail, "is full") {
		t.Fatalf("Full() = %+v, want the disk full", f)
	}
	t.Logf("first failed commit after %d records: %s", i, f.Detail)

	// The file as a crash would leave it now: sound, and holding exactly
	// the committed records.
	if err := h.s.view(checkTx); err != nil {
		t.Fatalf("bbolt check of the live file: %v", err)
	}
	committed := h.s.Stats().LastSeq
	mu.Lock()
	for seq, cb := range withCB {
		if cb && called[seq] != (seq <= committed) {
			t.Errorf("seq %d: done called %v, committed through %d", seq, called[seq], committed)
		}
	}
	mu.Unlock()
	// (The fake clock holds the retry back while space is lent for the
	// copy.)
	free()
	snap := filepath.Join(t.TempDir(), "crash.db")
	copyFile(t, path, snap)
	copyFile(t, path+".seq", snap+".seq")
	crash := start(t, snap, nil)
	if crash.s.Recovered() != "" {
		t.Fatalf("the file as left by the failed commit was moved aside: %s", crash.s.Recovered())
	}
	if err := crash.s.view(checkTx); err != nil {
		t.Fatalf("bbolt check of the crash copy: %v", err)
	}
	if got := crash.readAll(); len(got) != int(committed) || got[len(got)-1].Seq != committed {
		t.Fatalf("crash copy holds %d records (last %d), want 1..%d", len(got), got[len(got)-1].Seq, committed)
	}
	crash.stop()
	fill()

	// More than the memory bound: the oldest records without callbacks go.
	for range 3000 {
		appendOne(i, i%100 == 99)
		i++
		if i%500 == 0 {
			h.clock.Advance(6 * time.Second) // a retry, failing again
		}
	}
	diskDrops := dropped(h, metrics.DropDiskFull)
	if diskDrops == 0 {
		t.Fatalf("nothing dropped past the memory bound; Stats %+v", h.s.Stats())
	}
	if got := dropped(h, metrics.DropSpoolBacklog) + dropped(h, metrics.DropSpoolFullOldest) + dropped(h, metrics.DropSpoolFullReject); got != 0 {
		t.Errorf("%v drops counted under other reasons", got)
	}
	if f := h.s.Full(); f.Reason != FullDisk || !strings.Contains(f.Detail, "dropped") {
		t.Errorf("Full() = %+v while dropping", f)
	}
	mu.Lock()
	for seq := range called {
		if seq > committed {
			t.Errorf("done for seq %d called while the disk is full", seq)
		}
	}
	mu.Unlock()

	// Space returns: the retry commits everything left, without help.
	free()
	last := h.s.Stats().NextSeq - 1
	for h.s.Stats().LastSeq < last {
		h.clock.Advance(6 * time.Second)
		time.Sleep(10 * time.Millisecond)
	}
	waitFor("every done callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for seq, cb := range withCB {
			if cb && !called[seq] {
				return false
			}
		}
		return true
	})
	if f := h.s.Full(); !f.Since.IsZero() {
		t.Errorf("Full() = %+v after the disk took the records", f)
	}
	// (The retry that worked may have dropped some more first: it did not
	// know it would.)
	diskDrops = dropped(h, metrics.DropDiskFull)
	check := func(h *harness) {
		t.Helper()
		recs := h.readAll()
		present := map[uint64]bool{}
		for _, r := range recs {
			present[r.Seq] = true
			if !sameRecord(r, want[r.Seq], r.Seq) {
				t.Fatalf("seq %d holds another record", r.Seq)
			}
		}
		missing := 0
		for seq := uint64(1); seq <= last; seq++ {
			switch {
			case present[seq]:
			case withCB[seq]:
				t.Errorf("seq %d had a done callback but is not in the spool", seq)
			default:
				missing++
			}
		}
		if float64(missing+refused) != diskDrops {
			t.Errorf("%d seqs missing and %d records refused, %v counted as dropped", missing, refused, diskDrops)
		}
		if st := h.s.Stats(); st.Records != int64(len(recs)) || st.LastSeq != last {
			t.Errorf("Stats %+v, want %d records through %d", st, len(recs), last)
		}
		if got := dropped(h, metrics.DropMalformed); got != 0 {
			t.Errorf("%v records counted as malformed", got)
		}
	}
	check(h)
	for range 2000 { // twice the bound's worth, committed as it comes
		appendOne(i, i%100 == 99)
		i++
		if i%100 == 0 {
			h.flush()
		}
	}
	h.flush()
	if got := dropped(h, metrics.DropDiskFull); got != diskDrops {
		t.Errorf("drops went on after space returned: %v, then %v", diskDrops, got)
	}
	last = h.s.Stats().LastSeq
	t.Logf("%d seqs: %v dropped or refused (%d refused) on the full disk, %d callbacks", last, diskDrops, refused, calledCount())

	// Reopened: the same records, sound, and seqs go on.
	h.stop()
	h = start(t, path, nil)
	if h.s.Recovered() != "" {
		t.Fatalf("moved aside on reopening: %s", h.s.Recovered())
	}
	if err := h.s.view(checkTx); err != nil {
		t.Fatalf("bbolt check after reopening: %v", err)
	}
	check(h)
	if seq, err := h.s.Append(sample(0), nil); err != nil || seq != last+1 {
		t.Errorf("Append after reopening: seq %d, %v; want %d", seq, err, last+1)
	}
	// The uplink drains the spool, dropped seqs and all.
	recs := h.readAll()
	if err := h.s.AckThrough(recs[len(recs)-1].Seq); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Errorf("after acknowledging everything: %+v", st)
	}
}

// checkTx is bbolt's consistency check, as an error.
func checkTx(tx *bbolt.Tx) error {
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestBacklogRejectNew makes commits fail for another reason than space (a
// directory where the seq reservation's temporary file goes): past the
// memory bound reject_new refuses new records, counted as spool_backlog,
// while records a source waits for are kept up to twice the bound; the
// spool reports itself full until the commits work again.
func TestBacklogRejectNew(t *testing.T) {
	old := maxPendingBytes
	maxPendingBytes = 16 << 10
	t.Cleanup(func() { maxPendingBytes = old })
	h := start(t, testPath(t), func(o *Options) { o.WhenFull = RejectNew })
	blocker := h.path + ".seq.tmp"
	if err := os.Mkdir(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	var calls sync.WaitGroup
	accepted, refused, refusedCB := 0, 0, 0
	for i := range 3000 {
		var done func()
		if i%4 == 0 {
			calls.Add(1)
			done = calls.Done
		}
		_, err := h.s.Append(sampleReading(i), done)
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrStalled) && errors.Is(err, ErrFull):
			refused++
			if done != nil {
				refusedCB++
				calls.Done()
			}
		default:
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	size := encodedSize(sampleReading(0))
	if st := h.s.Stats(); int64(st.Pending)*size > 2*maxPendingBytes || accepted != st.Pending {
		t.Errorf("%d accepted, Stats %+v: more than twice the bound waits", accepted, st)
	}
	if refused == 0 || refusedCB == 0 || refusedCB == refused {
		t.Errorf("%d refused, %d of them with callbacks: want records without callbacks refused first", refused, refusedCB)
	}
	if got := dropped(h, metrics.DropSpoolBacklog); got != float64(refused) {
		t.Errorf("dropped{spool_backlog} = %v, want %d", got, refused)
	}
	if f := h.s.Full(); f.Reason != FullBacklog || !strings.Contains(f.Detail, "new records are refused") {
		t.Errorf("Full() = %+v", f)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	for h.s.Stats().Pending > 0 {
		h.clock.Advance(6 * time.Second)
		time.Sleep(5 * time.Millisecond)
	}
	calls.Wait()
	if f := h.s.Full(); !f.Since.IsZero() {
		t.Errorf("Full() = %+v once commits work", f)
	}
	if got := len(h.readAll()); got != accepted {
		t.Errorf("%d records committed, %d accepted", got, accepted)
	}
}
