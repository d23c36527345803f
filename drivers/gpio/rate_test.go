package gpio

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

// expectFrom takes the next reading and checks its sensor, value, unit and
// time after start.
func (h *harness) expectFrom(sensor string, value float64, unit string, at time.Duration) {
	h.t.Helper()
	r := h.next()
	if r.Sensor != sensor || r.Value != value || r.Unit != unit || !r.TS.Equal(h.start.Add(at)) || r.Quality != reading.Good {
		h.t.Fatalf("reading %+v, want %s = %v %s at start+%v", r, sensor, value, unit, at)
	}
}

// parts makes n rising edges on the pin and waits until all are counted.
func parts(h *harness, pin *kernelPin, n int) {
	h.t.Helper()
	for range n {
		pulses(pin, gpio.High, gpio.Low)
	}
	for range n {
		h.step("count")
	}
}

var (
	partsCounter = config.Sensor{ID: "press_parts", Driver: Name, Pin: "GPIO27", Mode: "counter", Edge: "rising"}
	partsRate    = config.Sensor{ID: "press_parts_rate", Driver: Name, Pin: "GPIO27", Mode: "rate", Unit: "parts/s"}
)

func TestRate(t *testing.T) {
	pin := &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h := run(t, t.TempDir(), partsCounter, partsRate)

	// At start: the total, and no rate (no period behind it yet). The
	// ticker exists only after the first publication, so noReading is exact.
	h.expectFrom("press_parts", 0, "", 0)
	h.waiters(1)
	h.noReading()

	// 30 parts in the first 10s: 3/s, published with the total.
	parts(h, pin, 30)
	h.clock.Advance(10 * time.Second)
	h.expectFrom("press_parts", 30, "", 10*time.Second)
	h.expectFrom("press_parts_rate", 3, "parts/s", 10*time.Second)

	// 5 parts in the next 10s: 0.5/s, from the delta, not the total.
	parts(h, pin, 5)
	h.clock.Advance(10 * time.Second)
	h.expectFrom("press_parts", 35, "", 20*time.Second)
	h.expectFrom("press_parts_rate", 0.5, "parts/s", 20*time.Second)

	// None: 0, still published.
	h.clock.Advance(10 * time.Second)
	h.expectFrom("press_parts", 35, "", 30*time.Second)
	h.expectFrom("press_parts_rate", 0, "parts/s", 30*time.Second)
}

// The counter and rate sensors in either config order, and the pin named
// by board name on one and by number on the other.
func TestRatePinByNumber(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sensors []config.Sensor
	}{
		{"GPIO27 counter, 27 rate", []config.Sensor{partsCounter, withPin(partsRate, "27")}},
		{"27 counter, GPIO27 rate", []config.Sensor{withPin(partsCounter, "27"), partsRate}},
		{"rate first", []config.Sensor{withPin(partsRate, "27"), partsCounter}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []string
			CheckAll(ptrs(tc.sensors), func(i int, field, format string, args ...any) {
				ps = append(ps, fmt.Sprintf(format, args...))
			})
			if len(ps) > 0 {
				t.Fatalf("CheckAll: %q", ps)
			}
			pin := &kernelPin{Pin: newPin("GPIO27", 27)}
			useBoard(t, pin)
			h := run(t, "", tc.sensors...)
			h.expectFrom("press_parts", 0, "", 0)
			h.waiters(1)
			parts(h, pin, 4)
			h.clock.Advance(10 * time.Second)
			h.expectFrom("press_parts", 4, "", 10*time.Second)
			h.expectFrom("press_parts_rate", 0.4, "parts/s", 10*time.Second)
		})
	}
}

// The rate divides by the time that really passed between the two
// samples: a publication held up by a full pipeline covers more than the
// nominal interval, and its ticks in between were dropped.
func TestRateRealElapsed(t *testing.T) {
	pin := &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	_, h, err := newDriver(t, "", partsCounter, partsRate)
	if err != nil {
		t.Fatal(err)
	}
	h.sink = make(chanSink) // unbuffered: each emit waits for the test
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.d.Run(ctx, h.sink) }()
	t.Cleanup(h.stop)

	h.expectFrom("press_parts", 0, "", 0)
	h.waiters(1)
	parts(h, pin, 30)
	h.clock.Advance(10 * time.Second)
	h.expectFrom("press_parts", 30, "", 10*time.Second)
	// The rate of 10s is sampled and waits in Emit. 15s pass meanwhile
	// (one tick at 20s is kept, none at 25s), with 30 more parts.
	h.clock.Advance(15 * time.Second)
	parts(h, pin, 30)
	h.expectFrom("press_parts_rate", 3, "parts/s", 10*time.Second)
	// The kept tick is taken at 25s: 30 parts over 15s, not over 10s.
	h.expectFrom("press_parts", 60, "", 25*time.Second)
	h.expectFrom("press_parts_rate", 2, "parts/s", 25*time.Second)
}

// The rate reading leaves the persisted total alone: it is the counter's.
func TestRateKeepsTotal(t *testing.T) {
	dir := t.TempDir()
	pin := &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h := run(t, dir, partsCounter, partsRate)
	h.expectFrom("press_parts", 0, "", 0)
	h.waiters(1)
	parts(h, pin, 7)
	h.stop()
	if got := readTotal(t, dir, "press_parts"); got != "7\n" {
		t.Fatalf("saved %q, want 7", got)
	}

	// After a restart: the total goes on, and again no rate at the first
	// publication (not 7 parts over the downtime, nor from 0).
	pin = &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h = run(t, dir, partsCounter, partsRate)
	h.expectFrom("press_parts", 7, "", 0)
	h.waiters(1)
	h.noReading()
	parts(h, pin, 2)
	h.clock.Advance(10 * time.Second)
	h.expectFrom("press_parts", 9, "", 10*time.Second)
	h.expectFrom("press_parts_rate", 0.2, "parts/s", 10*time.Second)
	h.stop()
	if got := readTotal(t, dir, "press_parts"); got != "9\n" {
		t.Fatalf("saved %q, want 9", got)
	}
}

func withPin(s config.Sensor, pin string) config.Sensor { s.Pin = pin; return s }

func ptrs(ss []config.Sensor) []*config.Sensor {
	out := make([]*config.Sensor, len(ss))
	for i := range ss {
		out[i] = &ss[i]
	}
	return out
}

func TestCheckRate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    config.Sensor
		want []string
	}{
		{"ok", partsRate, nil},
		{"edge", withEdge(partsRate, "rising"), []string{"edge: not for mode rate: it belongs on the counter sensor of pin GPIO27"}},
		{"all", config.Sensor{Pin: "27", Mode: "rate", Pull: "up", Edge: "both", Debounce: 1, Invert: true, Interval: config.Duration(time.Second)},
			[]string{"pull: not for mode rate", "edge: not for mode rate", "debounce: not for mode rate", "invert: not for mode rate", "interval: not for mode rate"}},
		{"no pin", config.Sensor{Mode: "rate"}, []string{"pin: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s
			var got []string
			Check(&s, func(field, format string, args ...any) {
				got = append(got, field+": "+fmt.Sprintf(format, args...))
			})
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Fatalf("problem %q, want %q", got[i], tc.want[i])
				}
			}
			if tc.want == nil && (s.Pull != "" || s.Edge != "" || s.Interval != 0) {
				t.Fatalf("a rate sensor got defaults %+v: a second Check would refuse them", s)
			}
		})
	}
}

func withEdge(s config.Sensor, edge string) config.Sensor { s.Edge = edge; return s }

func TestCheckAllRate(t *testing.T) {
	state := config.Sensor{ID: "door", Pin: "GPIO27", Mode: "state"}
	rate2 := partsRate
	rate2.ID = "press_parts_rate2"
	for _, tc := range []struct {
		name    string
		sensors []config.Sensor
		want    []string // "index field: text"
	}{
		{"counter and rate", []config.Sensor{partsCounter, partsRate}, nil},
		{"rate without counter", []config.Sensor{partsRate},
			[]string{"0 mode: mode rate needs a counter sensor on pin GPIO27"}},
		{"rate on another pin", []config.Sensor{partsCounter, withPin(partsRate, "GPIO22")},
			[]string{"1 mode: mode rate needs a counter sensor on pin GPIO22"}},
		{"rate on a state pin", []config.Sensor{state, partsRate},
			[]string{"1 mode: mode rate needs a counter sensor on pin GPIO27, and sensor door reads it in mode state"}},
		{"two rates", []config.Sensor{partsCounter, partsRate, withPin(rate2, "27")},
			[]string{"2 pin: 27 already has the rate sensor press_parts_rate (one rate sensor per counter)"}},
		{"two counters", []config.Sensor{partsCounter, partsRate, {ID: "b", Pin: "27", Mode: "counter"}},
			[]string{"2 pin: 27 is already read by sensor press_parts"}},
		{"counter and state", []config.Sensor{partsCounter, state},
			[]string{"1 pin: GPIO27 is already read by sensor press_parts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			CheckAll(ptrs(slices.Clone(tc.sensors)), func(i int, field, format string, args ...any) {
				got = append(got, fmt.Sprintf("%d %s: ", i, field)+fmt.Sprintf(format, args...))
			})
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRateErrors(t *testing.T) {
	useBoard(t, newPin("GPIO27", 27), newPin("GPIO22", 22))
	rate2 := partsRate
	rate2.ID = "press_parts_rate2"
	for _, tc := range []struct {
		name    string
		sensors []config.Sensor
		want    []string
	}{
		{"no counter", []config.Sensor{partsRate}, []string{"sensor press_parts_rate", "GPIO27", "needs a counter sensor"}},
		{"other pin", []config.Sensor{partsCounter, withPin(partsRate, "22")}, []string{"sensor press_parts_rate", "22", "needs a counter sensor"}},
		{"state pin", []config.Sensor{{ID: "door", Pin: "27"}, partsRate}, []string{"sensor press_parts_rate", "needs a counter sensor", "sensor door reads it in mode state"}},
		{"two rates", []config.Sensor{partsCounter, partsRate, withPin(rate2, "27")}, []string{"sensor press_parts_rate2", "already has the rate sensor press_parts_rate"}},
		{"edge on rate", []config.Sensor{partsCounter, withEdge(partsRate, "both")}, []string{"sensor press_parts_rate", "edge: not for mode rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newDriver(t, "", tc.sensors...)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
