package i2c

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"periph.io/x/conn/v3/i2c"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// recordSink keeps what the driver emits.
type recordSink struct {
	mu  sync.Mutex
	got []reading.Reading
}

func (s *recordSink) Emit(_ context.Context, r reading.Reading, ack func()) error {
	if ack != nil {
		panic("i2c passed an ack: nothing can resend an I2C reading")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	return nil
}

// take returns the readings emitted since the last take.
func (s *recordSink) take() []reading.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.got
	s.got = nil
	return out
}

// logBuffer is a goroutine-safe log destination.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), substr)
}

// nopCloser hands a test's bus to the driver without letting the driver
// close it: the test closes a Playback itself to check it was used up.
type nopCloser struct{ i2c.Bus }

func (nopCloser) Close() error { return nil }

// flakyBus fails every transaction while fail is set, as a bus does when
// its chip is unplugged (the kernel reports a remote I/O error).
type flakyBus struct {
	i2c.Bus
	mu   sync.Mutex
	fail bool
}

func (f *flakyBus) setFail(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = v
}

func (f *flakyBus) Tx(addr uint16, w, r []byte) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("i2c: remote I/O error")
	}
	return f.Bus.Tx(addr, w, r)
}

// rig is a driver running on a fake clock against test buses.
type rig struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	sink    *recordSink
	metrics *metrics.Set
	logs    *logBuffer
	mu      sync.Mutex
	sleeps  []time.Duration // conversion waits asked for, not slept
	ctx     context.Context
}

// checked runs Check on each sensor, as the gateway does before New, and
// fails the test on any problem.
func checked(t *testing.T, ss ...config.Sensor) []config.Sensor {
	t.Helper()
	for i := range ss {
		ss[i].Driver = Name
		Check(&ss[i], func(field, format string, args ...any) {
			t.Fatalf("sensor %s: %s: "+format, append([]any{ss[i].ID, field}, args...)...)
		})
	}
	return ss
}

// start builds the driver with buses by name and runs it until the test
// ends, returning once the first poll is done.
func start(t *testing.T, sensors []config.Sensor, buses map[string]i2c.Bus) *rig {
	t.Helper()
	r := &rig{
		t:       t,
		clock:   clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)),
		sink:    &recordSink{},
		metrics: metrics.New(),
		logs:    &logBuffer{},
	}
	sleep := func(d time.Duration) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sleeps = append(r.sleeps, d)
	}
	open := func(name string) (i2c.BusCloser, error) {
		b, ok := buses[name]
		if !ok {
			return nil, errors.New("no such bus")
		}
		return nopCloser{b}, nil
	}
	env := drivers.Env{Clock: r.clock, Metrics: r.metrics, Logger: slog.New(slog.NewTextHandler(r.logs, nil))}
	d, err := build(env, sensors, open, sleep)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	r.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, r.sink) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	r.settle()
	return r
}

// settle waits until the driver has done all that is due and waits on its
// timer again.
func (r *rig) settle() {
	r.t.Helper()
	if err := r.clock.BlockUntilContext(r.ctx, 1); err != nil {
		r.t.Fatal("driver never waited on the clock")
	}
}

// advance moves the clock on by d and waits for the polls that fall due.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.clock.Advance(d)
	r.settle()
}

// poll is the readings of the last poll(s), by sensor id.
func (r *rig) poll() map[string]reading.Reading {
	out := map[string]reading.Reading{}
	for _, x := range r.sink.take() {
		if _, dup := out[x.Sensor]; dup {
			r.t.Fatalf("two readings of %s in one step", x.Sensor)
		}
		out[x.Sensor] = x
	}
	return out
}

func (r *rig) errors(kind string) float64 {
	return testutil.ToFloat64(r.metrics.DriverErrors.WithLabelValues(Name, kind))
}

// want checks one reading: good and within tol of v, or bad with NaN when
// v is NaN.
func want(t *testing.T, got map[string]reading.Reading, id string, v, tol float64, unit string) {
	t.Helper()
	r, ok := got[id]
	switch {
	case !ok:
		t.Errorf("%s: no reading", id)
	case math.IsNaN(v):
		if r.Quality != reading.Bad || !math.IsNaN(r.Value) {
			t.Errorf("%s: %v %v, want bad NaN", id, r.Value, r.Quality)
		}
	case r.Quality != reading.Good || math.Abs(r.Value-v) > tol:
		t.Errorf("%s: %v %v, want good %v ± %v", id, r.Value, r.Quality, v, tol)
	case r.Unit != unit:
		t.Errorf("%s: unit %q, want %q", id, r.Unit, unit)
	}
}

func closePlayback(t *testing.T, p interface{ Close() error }) {
	t.Helper()
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

// waited is the conversion waits asked for so far.
func (r *rig) waited() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.sleeps...)
}
