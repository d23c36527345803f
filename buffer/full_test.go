package buffer

import (
	"errors"
	"testing"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
