package buffer

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.etcd.io/bbolt"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

func dropped(h *harness, reason string) float64 {
	return testutil.ToFloat64(h.m.Dropped.WithLabelValues(reason))
}

func TestDropOldest(t *testing.T) {
	size := encodedSize(sampleReading(0))
	const keep = 10
	tests := []struct {
		name        string
		flushEach   bool // one commit per record, or all in one transaction
		appended    int
		wantDropped int
	}{
		{"within the bound", false, keep, 0},
		{"one transaction", false, 25, 15},
		{"commit per record", true, 25, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testPath(t), func(o *Options) { o.MaxBytes = keep * size })
			for i := range tt.appended {
				if _, err := h.s.Append(sampleReading(i), nil); err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
				if tt.flushEach {
					h.flush()
				}
			}
			h.flush()
			recs := h.readAll()
			if len(recs) != tt.appended-tt.wantDropped {
				t.Fatalf("%d records kept, want %d", len(recs), tt.appended-tt.wantDropped)
			}
			for i, r := range recs {
				seq := uint64(tt.wantDropped + i + 1)
				if !sameRecord(r, sampleReading(int(seq-1)), seq) {
					t.Errorf("kept record %d has seq %d, want %d (the newest are kept)", i, r.Seq, seq)
				}
			}
			st := h.s.Stats()
			if st.Bytes > keep*size || st.FirstSeq != uint64(tt.wantDropped+1) {
				t.Errorf("Stats = %+v, want at most %d bytes from seq %d", st, keep*size, tt.wantDropped+1)
			}
			if got := dropped(h, metrics.DropSpoolFullOldest); got != float64(tt.wantDropped) {
				t.Errorf("dropped{spool_full_oldest} = %v, want %d", got, tt.wantDropped)
			}
			if got := testutil.ToFloat64(h.m.BufferBytes); got != float64(st.Bytes) {
				t.Errorf("edgegw_buffer_bytes = %v, want %d", got, st.Bytes)
			}
			if got := dropped(h, metrics.DropSpoolFullReject); got != 0 {
				t.Errorf("dropped{spool_full_rejected} = %v under drop_oldest", got)
			}
		})
	}
}

func TestRejectNew(t *testing.T) {
	size := encodedSize(sampleReading(0))
	h := start(t, testPath(t), func(o *Options) { o.MaxBytes = 10 * size; o.WhenFull = RejectNew })
	for i := range 10 {
		if _, err := h.s.Append(sampleReading(i), nil); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	// Pending records count: the spool refuses before anything is committed.
	never := func() { t.Error("done called for a rejected record") }
	if seq, err := h.s.Append(sampleReading(10), never); !errors.Is(err, ErrFull) || seq != 0 {
		t.Fatalf("Append into a full spool = %d, %v; want 0, ErrFull", seq, err)
	}
	if got := dropped(h, metrics.DropSpoolFullReject); got != 1 {
		t.Errorf("dropped{spool_full_rejected} = %v, want 1", got)
	}
	h.flush()
	if _, err := h.s.Append(sampleReading(10), never); !errors.Is(err, ErrFull) {
		t.Fatalf("Append into a full spool after commit = %v, want ErrFull", err)
	}

	if err := h.s.AckThrough(5); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		seq, err := h.s.Append(sampleReading(20+i), nil)
		if err != nil {
			t.Fatalf("Append after the ack made room: %v", err)
		}
		if want := uint64(11 + i); seq != want {
			t.Errorf("seq %d, want %d (a rejected record uses no seq)", seq, want)
		}
	}
	if _, err := h.s.Append(sampleReading(30), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("Append = %v, want ErrFull again", err)
	}
	h.flush()
	if got := dropped(h, metrics.DropSpoolFullReject); got != 3 {
		t.Errorf("dropped{spool_full_rejected} = %v, want 3", got)
	}
	if got := dropped(h, metrics.DropSpoolFullOldest); got != 0 {
		t.Errorf("dropped{spool_full_oldest} = %v under reject_new", got)
	}
	if st := h.s.Stats(); st.Records != 10 || st.FirstSeq != 6 || st.LastSeq != 15 {
		t.Errorf("Stats = %+v, want records 6..15", st)
	}
}

// drop_oldest drops readings, not the alert transitions and events among
// them: once one of those is at the front, the readings behind it go,
// where they are, and the rest keep their seqs. Chunks emptied that way
// join the one before, so the file does not keep a trail of them. Only
// when nothing but alerts and events is left do those go, oldest first.
func TestDropOldestKeepsAlertsAndEvents(t *testing.T) {
	const (
		readings = 12000
		maxBytes = 64 << 10
	)
	rsize := encodedSize(sampleReading(0))
	isSpared := map[int]bool{0: true, 1: true, 2500: true, 6000: true, 11990: true}
	recordAt := func(i int) reading.Record {
		switch {
		case i == 1 || i == 6000:
			return sample(2) // a downtime event
		case isSpared[i]:
			return sample(1) // an alert transition
		}
		return sampleReading(i)
	}
	path := testPath(t)
	h := start(t, path, func(o *Options) { o.MaxBytes = maxBytes })
	for i := range readings {
		if _, err := h.s.Append(recordAt(i), nil); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if i%1000 == 999 {
			h.flush() // several commits, each over the bound, each of several chunks
		}
	}
	h.flush()

	check := func(h *harness, when string) {
		t.Helper()
		recs := h.readAll()
		var spared, kept int
		oldestKept := uint64(0)
		for _, r := range recs {
			i := int(r.Seq - 1)
			if !sameRecord(r, recordAt(i), r.Seq) {
				t.Fatalf("%s: seq %d is not the record appended with it", when, r.Seq)
			}
			if isSpared[i] {
				spared++
				continue
			}
			kept++
			if oldestKept == 0 {
				oldestKept = r.Seq
			}
		}
		if spared != len(isSpared) {
			t.Errorf("%s: %d alerts and events kept, want all %d", when, spared, len(isSpared))
		}
		// The readings kept are the newest, contiguous up to the last.
		for i := int(oldestKept - 1); i < readings; i++ {
			if !isSpared[i] {
				kept--
			}
		}
		if kept != 0 {
			t.Errorf("%s: the readings kept are not the newest ones from seq %d (off by %d)", when, oldestKept, kept)
		}
		st := h.s.Stats()
		if st.Bytes > maxBytes || st.Bytes < maxBytes-rsize || st.Records != int64(len(recs)) || st.FirstSeq != 1 {
			t.Errorf("%s: Stats %+v with %d records read, want up to %d bytes from seq 1", when, st, len(recs), maxBytes)
		}
		if got, want := dropped(h, metrics.DropSpoolFullOldest), float64(readings-len(recs)); when == "before restart" && got != want {
			t.Errorf("dropped{spool_full_oldest} = %v, want %v", got, want)
		}
	}
	check(h, "before restart")
	h.stop()
	var chunks int
	withBolt(t, path, func(tx *bbolt.Tx) error { chunks = tx.Bucket(recordsBucket).Stats().KeyN; return nil })
	if limit := int(maxBytes/chunkTarget) + 3; chunks > limit {
		t.Errorf("%d chunks hold %d bytes of records, want at most %d", chunks, maxBytes, limit)
	}
	h = start(t, path, func(o *Options) { o.MaxBytes = maxBytes })
	check(h, "after restart")

	// Readings acknowledged, then only alerts and events over the bound:
	// the oldest of them go.
	if err := h.s.AckThrough(uint64(readings)); err != nil {
		t.Fatal(err)
	}
	asize := encodedSize(sample(1))
	n := int(maxBytes/asize) + 10
	for range n {
		if _, err := h.s.Append(sample(1), nil); err != nil {
			t.Fatal(err)
		}
	}
	h.flush()
	recs := h.readAll()
	if len(recs) != int(maxBytes/asize) || recs[len(recs)-1].Seq != uint64(readings+n) {
		t.Errorf("%d alerts kept up to seq %d, want the newest %d up to %d", len(recs), recs[len(recs)-1].Seq, maxBytes/asize, readings+n)
	}
}
