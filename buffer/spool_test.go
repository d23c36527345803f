package buffer

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRoundTripAllKinds(t *testing.T) {
	h := start(t, testPath(t), nil)
	const n = 30
	var want int64
	for i := range n {
		seq, err := h.s.Append(sample(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+1) {
			t.Fatalf("Append %d: seq %d, want %d", i, seq, i+1)
		}
		want += encodedSize(sample(i))
	}
	h.flush()
	recs := h.readAll()
	if len(recs) != n {
		t.Fatalf("read %d records, want %d", len(recs), n)
	}
	kinds := map[reading.Kind]int{}
	for i, r := range recs {
		if !sameRecord(r, sample(i), uint64(i+1)) {
			t.Errorf("record %d = %+v, want %+v with seq %d", i, r, sample(i), i+1)
		}
		kinds[r.Kind]++
	}
	if kinds[reading.KindReading] == 0 || kinds[reading.KindAlert] == 0 || kinds[reading.KindEvent] == 0 {
		t.Errorf("kinds read back: %v, want all three", kinds)
	}
	st := h.s.Stats()
	wantStats := Stats{Records: n, Bytes: want, FirstSeq: 1, LastSeq: n, NextSeq: n + 1, OldestTS: sampleTS}
	if st != wantStats {
		t.Errorf("Stats = %+v, want %+v", st, wantStats)
	}
	if got := testutil.ToFloat64(h.m.BufferRecords); got != n {
		t.Errorf("edgegw_buffer_records = %v, want %d", got, n)
	}
	if got := testutil.ToFloat64(h.m.BufferBytes); got != float64(want) {
		t.Errorf("edgegw_buffer_bytes = %v, want %d", got, want)
	}
	if got := testutil.ToFloat64(h.m.BufferCommits); got < 1 {
		t.Errorf("edgegw_buffer_commits_total = %v, want >= 1", got)
	}
}

func TestReadBatchWindow(t *testing.T) {
	h := start(t, testPath(t), nil)
	h.appendN(0, 30)
	h.flush()
	tests := []struct {
		name      string
		after     uint64
		max       int
		wantFirst uint64
		wantN     int
	}{
		{"from the start", 0, 10, 1, 10},
		{"middle", 5, 3, 6, 3},
		{"short tail", 28, 10, 29, 2},
		{"all", 0, 1000, 1, 30},
		{"after the last", 30, 10, 0, 0},
		{"max zero", 0, 0, 0, 0},
		{"after max uint64", math.MaxUint64, 10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := h.s.ReadBatch(tt.after, tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.wantN {
				t.Fatalf("got %d records, want %d", len(recs), tt.wantN)
			}
			for i, r := range recs {
				seq := tt.wantFirst + uint64(i)
				if !sameRecord(r, sample(int(seq-1)), seq) {
					t.Errorf("record %d has seq %d / content %+v, want seq %d", i, r.Seq, r, seq)
				}
			}
		})
	}
}

func TestAckThrough(t *testing.T) {
	const n = 30
	tests := []struct {
		name      string
		acks      []uint64
		wantFirst uint64 // 0: empty
	}{
		{"nothing", []uint64{0}, 1},
		{"first ten", []uint64{10}, 11},
		{"step by step", []uint64{3, 7, 12}, 13},
		{"going back is a no-op", []uint64{12, 5}, 13},
		{"repeat is a no-op", []uint64{12, 12}, 13},
		{"all", []uint64{n}, 0},
		{"beyond the last", []uint64{n + 100}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testPath(t), nil)
			h.appendN(0, n)
			h.flush()
			for _, seq := range tt.acks {
				if err := h.s.AckThrough(seq); err != nil {
					t.Fatalf("AckThrough(%d): %v", seq, err)
				}
			}
			recs := h.readAll()
			wantN := 0
			var wantBytes int64
			if tt.wantFirst > 0 {
				wantN = n - int(tt.wantFirst) + 1
				for seq := tt.wantFirst; seq <= n; seq++ {
					wantBytes += encodedSize(sample(int(seq - 1)))
				}
			}
			if len(recs) != wantN {
				t.Fatalf("%d records left, want %d", len(recs), wantN)
			}
			if wantN > 0 && recs[0].Seq != tt.wantFirst {
				t.Errorf("first seq left %d, want %d", recs[0].Seq, tt.wantFirst)
			}
			st := h.s.Stats()
			if st.Records != int64(wantN) || st.Bytes != wantBytes || st.FirstSeq != tt.wantFirst || st.LastSeq != n {
				t.Errorf("Stats = %+v, want %d records, %d bytes, first %d, last %d", st, wantN, wantBytes, tt.wantFirst, n)
			}
			if got := testutil.ToFloat64(h.m.BufferRecords); got != float64(wantN) {
				t.Errorf("edgegw_buffer_records = %v, want %d", got, wantN)
			}
			if got := testutil.ToFloat64(h.m.BufferBytes); got != float64(wantBytes) {
				t.Errorf("edgegw_buffer_bytes = %v, want %d", got, wantBytes)
			}
		})
	}
}

func TestWaitCommitted(t *testing.T) {
	h := start(t, testPath(t), nil)
	ctx := testCtx(t)

	woke := make(chan error, 1)
	go func() { woke <- h.s.WaitCommitted(ctx, 0) }()
	if _, err := h.s.Append(sample(0), func() {}); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatalf("WaitCommitted woken by a commit: %v", err)
	}

	if err := h.s.WaitCommitted(ctx, 0); err != nil {
		t.Errorf("WaitCommitted with a record already there: %v", err)
	}

	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := h.s.WaitCommitted(short, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitCommitted(after the last) = %v, want context.Canceled", err)
	}
	if err := h.s.AckThrough(1); err != nil {
		t.Fatal(err)
	}
	if err := h.s.WaitCommitted(short, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitCommitted on an emptied spool = %v, want context.Canceled", err)
	}
}

func TestStopCommitsEverything(t *testing.T) {
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, 10) // no callbacks and the fake clock never moves: only the stop commits them
	h.stop()
	if _, err := h.s.Append(sample(10), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Run returned = %v, want ErrClosed", err)
	}

	h = start(t, path, nil)
	if got := len(h.readAll()); got != 10 {
		t.Errorf("after restart: %d records, want 10", got)
	}
}

func TestCloseWithoutRun(t *testing.T) {
	path := testPath(t)
	s, err := Open(testOptions(t, path))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Append(sample(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	h := start(t, path, nil)
	if got := h.s.Stats(); got.Records != 3 || got.NextSeq != 4 {
		t.Errorf("after reopen: %+v, want 3 records, next seq 4", got)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"no path", func(o *Options) { o.Path = "" }},
		{"no metrics", func(o *Options) { o.Metrics = nil }},
		{"negative max bytes", func(o *Options) { o.MaxBytes = -1 }},
		{"negative interval", func(o *Options) { o.CommitInterval = -time.Second }},
		{"unknown when full", func(o *Options) { o.WhenFull = 7 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions(t, testPath(t))
			tt.mod(&opts)
			if s, err := Open(opts); err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestDrainAcrossChunks(t *testing.T) {
	// Enough records for many chunks, read in batches that end inside
	// chunks and acknowledged at the same odd points, as the uplink does;
	// the byte count must stay exact through partly acknowledged chunks.
	const n = 5000
	path := testPath(t)
	h := start(t, path, nil)
	h.appendN(0, n)
	h.flush()
	var after uint64
	for round := 0; ; round++ {
		recs, err := h.s.ReadBatch(after, 97)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for i, r := range recs {
			if seq := after + uint64(i) + 1; !sameRecord(r, sample(int(seq-1)), seq) {
				t.Fatalf("after %d: record %d has seq %d, want %d", after, i, r.Seq, seq)
			}
		}
		after = recs[len(recs)-1].Seq
		if round%2 == 1 {
			continue // acknowledge every other batch, like coalesced acks
		}
		if err := h.s.AckThrough(after); err != nil {
			t.Fatal(err)
		}
		var want int64
		for seq := after + 1; seq <= n; seq++ {
			want += encodedSize(sample(int(seq - 1)))
		}
		if st := h.s.Stats(); st.Bytes != want || st.FirstSeq != after+1 && after < n {
			t.Fatalf("after acking %d: %+v, want %d bytes from seq %d", after, st, want, after+1)
		}
		if round == 10 { // a restart with a partly acknowledged chunk at the front
			h.stop()
			h = start(t, path, nil)
		}
	}
	if after != n {
		t.Fatalf("read through %d, want %d", after, n)
	}
	if err := h.s.AckThrough(n); err != nil {
		t.Fatal(err)
	}
	if st := h.s.Stats(); st.Records != 0 || st.Bytes != 0 || st.FirstSeq != 0 {
		t.Errorf("after draining: %+v, want empty", st)
	}
}
