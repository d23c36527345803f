package buffer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/jonboulle/clockwork"
)

// epoch is the fake clock's start; corrupt files are named after it.
var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is a spool with its committer running on a fake clock.
type harness struct {
	t       testing.TB
	s       *Spool
	clock   *clockwork.FakeClock
	m       *metrics.Set
	path    string
	cancel  context.CancelFunc
	runErr  chan error
	stopped sync.Once
}

func testPath(t testing.TB) string { return filepath.Join(t.TempDir(), "buffer.db") }

func testOptions(t testing.TB, path string) Options {
	return Options{
		Path:    path,
		Clock:   clockwork.NewFakeClockAt(epoch),
		Metrics: metrics.New(),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), nil)),
	}
}

// start opens the spool at path (options changed by mod) and runs it until
// the test ends or stop is called.
func start(t testing.TB, path string, mod func(*Options)) *harness {
	t.Helper()
	opts := testOptions(t, path)
	if mod != nil {
		mod(&opts)
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, s: s, m: opts.Metrics, path: path, cancel: cancel, runErr: make(chan error, 1)}
	h.clock, _ = opts.Clock.(*clockwork.FakeClock)
	go func() { h.runErr <- s.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run, waits for it and closes the spool.
func (h *harness) stop() {
	h.stopped.Do(func() {
		h.cancel()
		if err := <-h.runErr; err != nil {
			h.t.Errorf("Run: %v", err)
		}
		if err := h.s.Close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
	})
}

// ctx is a context that bounds a wait in a test that would otherwise hang
// on a bug; nothing waits on it for time to pass.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// appendN appends records sample(from) .. sample(from+n-1) without callbacks.
func (h *harness) appendN(from, n int) {
	h.t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := h.s.Append(sample(i), nil); err != nil {
			h.t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func (h *harness) flush() {
	h.t.Helper()
	if err := h.s.Flush(testCtx(h.t)); err != nil {
		h.t.Fatalf("Flush: %v", err)
	}
}

// readAll returns every committed record.
func (h *harness) readAll() []reading.Record {
	h.t.Helper()
	recs, err := h.s.ReadBatch(0, 1<<30)
	if err != nil {
		h.t.Fatalf("ReadBatch: %v", err)
	}
	return recs
}

var sampleTS = time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC)

// sample is the i-th test record: readings, alert transitions and downtime
// events in turn, each with content derived from i.
func sample(i int) reading.Record {
	ts := sampleTS.Add(time.Duration(i) * time.Millisecond)
	switch i % 3 {
	case 1:
		return reading.FromAlert(reading.Alert{
			Rule: "press_overtemp", State: reading.StateFiring, Severity: "critical",
			Value: 80.5 + float64(i), Since: ts.Add(-10 * time.Second), TS: ts,
			Message: fmt.Sprintf("Press oil temperature %d C", i),
		})
	case 2:
		return reading.FromEvent(reading.Event{
			Machine: "press", State: reading.StateUp, Start: ts.Add(-time.Minute), End: ts, Duration: time.Minute,
		})
	}
	return sampleReading(i)
}

// sampleReading is a reading whose encoded size does not depend on i.
func sampleReading(i int) reading.Record {
	return reading.FromReading(reading.Reading{
		Sensor: "press_temp", TS: sampleTS.Add(time.Duration(i) * time.Millisecond),
		Value: float64(i) * 0.25, Unit: "C", Quality: reading.Quality(i % 3),
	})
}

// encodedSize is what a record counts against MaxBytes.
func encodedSize(r reading.Record) int64 { return int64(keyLen + len(r.AppendBinary(nil))) }

// sameRecord reports whether got is want with seq, comparing the exact
// binary form so that no field or nanosecond escapes.
func sameRecord(got reading.Record, want reading.Record, seq uint64) bool {
	return got.Seq == seq && bytes.Equal(got.AppendBinary(nil), want.AppendBinary(nil))
}

// waitClosed fails the test if ch is not closed within the test bound.
func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-testCtx(t).Done():
		t.Fatalf("timed out waiting for %s", what)
	}
}
