package gpio

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// waitLong bounds every wait for the driver's goroutines; a test that
// reaches it has failed.
const waitLong = 5 * time.Second

// newPin is a gpiotest pin whose edges the test injects. Its own clock is
// real: it only bounds the driver's WaitForEdge polls, while debounce,
// heartbeat and publication run on the driver's fake clock.
func newPin(name string, num int) *gpiotest.Pin {
	return &gpiotest.Pin{N: name, Num: num, Clock: clockwork.NewRealClock(), EdgesChan: make(chan gpio.Level)}
}

// kernelPin passes on only the edges asked for in In, like the character
// device does; gpiotest alone reports every level change.
type kernelPin struct {
	*gpiotest.Pin
	asked atomic.Int32 // the gpio.Edge of the last In
}

func (p *kernelPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.asked.Store(int32(edge))
	return p.Pin.In(pull, edge)
}

func (p *kernelPin) WaitForEdge(timeout time.Duration) bool {
	for {
		if !p.Pin.WaitForEdge(timeout) {
			return false
		}
		switch gpio.Edge(p.asked.Load()) {
		case gpio.BothEdges:
			return true
		case gpio.RisingEdge:
			if p.Pin.Read() == gpio.High {
				return true
			}
		case gpio.FallingEdge:
			if p.Pin.Read() == gpio.Low {
				return true
			}
		}
	}
}

// busyPin is a line another process holds.
type busyPin struct{ *gpiotest.Pin }

func (busyPin) In(gpio.Pull, gpio.Edge) error { return errors.New("device or resource busy") }
func (busyPin) Out(gpio.Level) error          { return errors.New("device or resource busy") }

// failPin fails every WaitForEdge at once while failing is set.
type failPin struct {
	*gpiotest.Pin
	failing atomic.Bool
	ins     chan struct{} // one per In call: edges may be injected after it
}

func (p *failPin) In(pull gpio.Pull, edge gpio.Edge) error {
	err := p.Pin.In(pull, edge)
	p.ins <- struct{}{}
	return err
}

func (p *failPin) WaitForEdge(timeout time.Duration) bool {
	if p.failing.Load() {
		return false
	}
	return p.Pin.WaitForEdge(timeout)
}

// useBoard makes the pins the only ones lookupPin finds, by name or number.
func useBoard(t *testing.T, pins ...gpio.PinIO) {
	t.Helper()
	old := lookupPin
	lookupPin = func(name string) (gpio.PinIO, error) {
		for _, p := range pins {
			if p.Name() == name || strconv.Itoa(p.Number()) == name {
				return p, nil
			}
		}
		return nil, ErrNoPin
	}
	t.Cleanup(func() { lookupPin = old })
}

// chanSink hands each reading to the test.
type chanSink chan reading.Reading

func (s chanSink) Emit(ctx context.Context, r reading.Reading, _ func()) error {
	select {
	case s <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

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

// harness is a running driver on a fake clock.
type harness struct {
	t       *testing.T
	clock   *clockwork.FakeClock
	d       *Driver
	sink    chanSink
	steps   chan string
	metrics *metrics.Set
	logs    *logBuffer
	cancel  context.CancelFunc
	done    chan error
	start   time.Time
}

func newDriver(t *testing.T, stateDir string, sensors ...config.Sensor) (*Driver, *harness, error) {
	t.Helper()
	h := &harness{
		t: t, clock: clockwork.NewFakeClock(), sink: make(chanSink, 100), steps: make(chan string, 100),
		metrics: metrics.New(), logs: &logBuffer{},
	}
	h.start = h.clock.Now()
	env := drivers.Env{Clock: h.clock, Logger: newLogger(h.logs), Metrics: h.metrics, StateDir: stateDir}
	drv, err := New(env, sensors)
	if err != nil {
		return nil, h, err
	}
	d := drv.(*Driver)
	d.pollEvery = 5 * time.Millisecond // real time: how soon a stop is seen
	d.onStep = func(_, step string) { h.steps <- step }
	h.d = d
	return d, h, nil
}

// run starts a driver for the sensors and stops it at the end of the test.
func run(t *testing.T, stateDir string, sensors ...config.Sensor) *harness {
	t.Helper()
	_, h, err := newDriver(t, stateDir, sensors...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx, h.sink) }()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.t.Helper()
	if h.done == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(waitLong):
		h.t.Fatal("Run did not return after cancel")
	}
	h.done = nil
}

func (h *harness) next() reading.Reading {
	h.t.Helper()
	select {
	case r := <-h.sink:
		return r
	case <-time.After(waitLong):
		h.t.Fatal("no reading")
		return reading.Reading{}
	}
}

// expect takes the next reading and checks its value and its time after start.
func (h *harness) expect(value float64, at time.Duration) {
	h.t.Helper()
	r := h.next()
	if r.Value != value || !r.TS.Equal(h.start.Add(at)) || r.Quality != reading.Good {
		h.t.Fatalf("reading %+v, want value %v at start+%v", r, value, at)
	}
}

// noReading checks that nothing was emitted. It is exact, not a wait:
// callers first sync on a step that follows any emit.
func (h *harness) noReading() {
	h.t.Helper()
	select {
	case r := <-h.sink:
		h.t.Fatalf("unexpected reading %+v", r)
	default:
	}
}

func (h *harness) step(want string) {
	h.t.Helper()
	select {
	case got := <-h.steps:
		if got != want {
			h.t.Fatalf("step %q, want %q", got, want)
		}
	case <-time.After(waitLong):
		h.t.Fatalf("no step %q", want)
	}
}

// waiters blocks until the fake clock has n timers or tickers.
func (h *harness) waiters(n int) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := h.clock.BlockUntilContext(ctx, n); err != nil {
		h.t.Fatalf("clock never had %d waiters", n)
	}
}

func newLogger(l *logBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
