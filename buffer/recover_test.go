package buffer

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

func TestSeqAcrossReopen(t *testing.T) {
	tests := []struct {
		name  string
		ackTo uint64
	}{
		{"records kept", 0},
		{"some acknowledged", 4},
		{"all acknowledged", 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testPath(t)
			for round := range 3 {
				h := start(t, path, nil)
				if got, want := h.s.Stats().NextSeq, uint64(round*10+1); got != want {
					t.Fatalf("round %d: NextSeq %d, want %d", round, got, want)
				}
				h.appendN(round*10, 10)
				h.flush()
				if err := h.s.AckThrough(uint64(round*10) + tt.ackTo); err != nil {
					t.Fatal(err)
				}
				h.stop()
			}
			h := start(t, path, nil)
			seq, err := h.s.Append(sample(30), nil)
			if err != nil {
				t.Fatal(err)
			}
			if seq != 31 {
				t.Errorf("after three restarts: seq %d, want 31", seq)
			}
		})
	}
}

func TestSeqReservation(t *testing.T) {
	h := start(t, testPath(t), nil)
	h.appendN(0, 5)
	h.flush()
	resv, err := readSeqFile(h.path + ".seq")
	if err != nil {
		t.Fatal(err)
	}
	if resv <= h.s.Stats().LastSeq {
		t.Errorf("reservation %d not above the last committed seq %d", resv, h.s.Stats().LastSeq)
	}
}

// corruptions each damage a spool file holding committed records.
var corruptions = []struct {
	name   string
	damage func(t *testing.T, path string)
}{
	{"garbage over the whole file", func(t *testing.T, path string) {
		overwrite(t, path, 0, -1)
	}},
	{"garbage after the meta pages", func(t *testing.T, path string) {
		overwrite(t, path, 2*4096, -1)
	}},
	{"truncated to a quarter", func(t *testing.T, path string) {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		truncate(t, path, info.Size()/4)
	}},
	{"truncated by one page", func(t *testing.T, path string) {
		var size int64
		withBolt(t, path, func(tx *bbolt.Tx) error { size = tx.Size(); return nil })
		truncate(t, path, size-4096)
	}},
	{"truncated to 100 bytes", func(t *testing.T, path string) { truncate(t, path, 100) }},
	{"emptied", func(t *testing.T, path string) { truncate(t, path, 0) }},
	{"garbled spool metadata", func(t *testing.T, path string) {
		withBolt(t, path, func(tx *bbolt.Tx) error { return tx.Bucket(metaBucket).Put(stateKey, []byte("junk")) })
	}},
	{"spool metadata missing", func(t *testing.T, path string) {
		withBolt(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket(metaBucket) })
	}},
	{"metadata behind the records", func(t *testing.T, path string) {
		withBolt(t, path, func(tx *bbolt.Tx) error {
			return putState(tx, &state{last: 10, bytes: 1})
		})
	}},
}

func TestCorruptFileRecovery(t *testing.T) {
	movedName := regexp.MustCompile(`/buffer\.db\.corrupt-\d{8}T\d{6}Z$`)
	for _, tt := range corruptions {
		t.Run(tt.name, func(t *testing.T) {
			path := testPath(t)
			h := start(t, path, nil)
			h.appendN(0, 300)
			h.flush()
			last := h.s.Stats().LastSeq
			h.stop()
			tt.damage(t, path)

			h = start(t, path, nil)
			moved := h.s.Recovered()
			if want := path + ".corrupt-20240301T120000Z"; moved != want {
				t.Fatalf("Recovered() = %q, want %q", moved, want)
			}
			if !movedName.MatchString(moved) {
				t.Errorf("moved-aside name %q does not match %v", moved, movedName)
			}
			if _, err := os.Stat(moved); err != nil {
				t.Errorf("moved-aside file: %v", err)
			}
			if st := h.s.Stats(); st.Records != 0 || st.NextSeq <= last {
				t.Errorf("fresh spool: %+v, want empty with NextSeq above %d", st, last)
			}
			seq, err := h.s.Append(sample(0), nil)
			if err != nil {
				t.Fatal(err)
			}
			if seq <= last {
				t.Fatalf("seq %d after recovery, not above the lost file's %d", seq, last)
			}
			h.flush()
			h.stop()

			h = start(t, path, nil)
			if got := h.s.Recovered(); got != "" {
				t.Errorf("the fresh file was recovered again: %q", got)
			}
			if recs := h.readAll(); len(recs) != 1 || recs[0].Seq != seq {
				t.Errorf("after reopening the fresh spool: %d records, want seq %d", len(recs), seq)
			}
		})
	}
}

func TestRecoveryNamesDoNotCollide(t *testing.T) {
	path := testPath(t)
	var names []string
	for range 2 {
		h := start(t, path, nil)
		h.appendN(0, 3)
		h.flush()
		h.stop()
		overwrite(t, path, 0, -1)
		h = start(t, path, nil) // the fake clock stands still: same second
		names = append(names, h.s.Recovered())
		h.stop()
	}
	if names[0] == names[1] || names[1] != names[0]+"-2" {
		t.Errorf("recoveries in one second named %q, want the second to be %q", names, names[0]+"-2")
	}
}

func TestLockedFileIsNotCorrupt(t *testing.T) {
	// A second gateway on the same file must fail, not move the running
	// gateway's spool away.
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, 3)
	h.flush()
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 50 * time.Millisecond
	s, err := Open(testOptions(t, path))
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, berrors.ErrTimeout) {
		t.Errorf("Open of a locked file = %v, want a lock timeout", err)
	}
	if matches, _ := filepath.Glob(path + ".corrupt-*"); len(matches) > 0 {
		t.Errorf("locked file moved aside: %v", matches)
	}
	if recs := h.readAll(); len(recs) != 3 {
		t.Errorf("the running spool has %d records, want 3", len(recs))
	}
}

// overwrite fills path from off to end (-1: end of file) with random bytes.
func overwrite(t *testing.T, path string, off, end int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if end < 0 {
		info, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		end = info.Size()
	}
	junk := make([]byte, end-off)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	if _, err := f.WriteAt(junk, off); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// withBolt changes the file behind the spool's back.
func withBolt(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}
