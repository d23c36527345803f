package buffer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// benchSpool opens a spool on the real clock with default options, running
// until the benchmark ends.
func benchSpool(b *testing.B) *Spool { return benchSpoolWith(b, nil) }

// benchSpoolWith is benchSpool with the options changed by mod.
func benchSpoolWith(b *testing.B, mod func(*Options)) *Spool {
	b.Helper()
	// reject_new: appends that outrun the disk are refused (ErrStalled)
	// rather than dropped, so appendAll can wait for the disk instead.
	opts := Options{Path: testPath(b), WhenFull: RejectNew, Metrics: metrics.New(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		s.Close()
	})
	return s
}

func benchRecords() []reading.Record {
	recs := make([]reading.Record, 1024)
	for i := range recs {
		recs[i] = sampleReading(i)
	}
	return recs
}

// appendAll appends b.N records; when appends outrun the disk so far that
// the in-memory bound refuses them, it waits for the commits to catch up,
// so the rate measured is what the disk sustains, not a burst.
func appendAll(b *testing.B, s *Spool, done func()) {
	recs := benchRecords()
	for i := 0; i < b.N; {
		_, err := s.Append(recs[i%len(recs)], done)
		switch {
		case errors.Is(err, ErrFull):
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		case err != nil:
			b.Fatal(err)
		default:
			i++
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSpoolAppend measures appends with group commit, the fsyncs
// included: the clock stops only once everything appended is durable.
// Target: >= 500,000 records/s.
func BenchmarkSpoolAppend(b *testing.B) {
	s := benchSpool(b)
	b.ReportAllocs()
	b.ResetTimer()
	appendAll(b, s, nil)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSpoolAppendWithDone is the MQTT QoS 1 shape: every record has a
// done callback, so every pending record wants an immediate commit and the
// grouping comes only from appends made while an fsync runs.
func BenchmarkSpoolAppendWithDone(b *testing.B) {
	s := benchSpool(b)
	b.ReportAllocs()
	b.ResetTimer()
	appendAll(b, s, func() {})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkSpoolAppendFull appends to a spool at buffer.max_bytes (4 MiB)
// under drop_oldest, so that every commit also drops as much as it adds:
// from the front when readings are there, and behind an alert transition
// at the front otherwise (thinReadings).
func BenchmarkSpoolAppendFull(b *testing.B) {
	for _, front := range []string{"reading", "alert"} {
		b.Run("front="+front, func(b *testing.B) {
			s := benchSpoolWith(b, func(o *Options) { o.WhenFull, o.MaxBytes = DropOldest, 4<<20 })
			if front == "alert" {
				if _, err := s.Append(sample(1), nil); err != nil {
					b.Fatal(err)
				}
			}
			recs := benchRecords()
			for i := int64(0); i < 2*(4<<20)/encodedSize(recs[0]); i++ {
				if _, err := s.Append(recs[i%int64(len(recs))], nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			appendAll(b, s, nil)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			if st := s.Stats(); st.Bytes > 4<<20 || (front == "alert") != (st.FirstSeq == 1) {
				b.Fatalf("Stats %+v", st)
			}
		})
	}
}

// BenchmarkSpoolDrain measures the uplink's side after an outage: read a
// batch of 1000, acknowledge it (one fsync), repeat. Target: >= 100,000
// records/s.
func BenchmarkSpoolDrain(b *testing.B) { benchDrain(b, 0) }

// BenchmarkSpoolDrainWhileIngesting drains while new records arrive at
// 50,000/s, each committed by the group commit, as after an outage on a
// running line.
func BenchmarkSpoolDrainWhileIngesting(b *testing.B) { benchDrain(b, 50) }

// benchDrain drains b.N batches of 1000 while perMs records are appended
// every millisecond.
func benchDrain(b *testing.B, perMs int) {
	const batch = 1000
	s := benchSpool(b)
	recs := benchRecords()
	for i := 0; i < b.N*batch; {
		_, err := s.Append(recs[i%len(recs)], nil)
		switch {
		case errors.Is(err, ErrFull): // appends outran the disk: let it catch up
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		case err != nil:
			b.Fatal(err)
		default:
			i++
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	stop := make(chan struct{})
	ingested := make(chan struct{})
	go func() {
		defer close(ingested)
		if perMs == 0 {
			return
		}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for i := range perMs {
					if _, err := s.Append(recs[i], nil); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	var after uint64
	for range b.N {
		got, err := s.ReadBatch(after, batch)
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != batch {
			b.Fatalf("read %d records, want %d", len(got), batch)
		}
		after = got[len(got)-1].Seq
		if err := s.AckThrough(after); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	<-ingested
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
}
