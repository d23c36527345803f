package gpio

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"periph.io/x/conn/v3/gpio"

	"github.com/edgegw/edgegw/gateway/config"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// A dry contact to ground with the pull-up on: idle high, pressed low.
func TestStateDebounce(t *testing.T) {
	pin := newPin("GPIO17", 17)
	useBoard(t, pin)
	h := run(t, "", config.Sensor{ID: "press_running", Driver: Name, Pin: "GPIO17", Pull: "up", Invert: true,
		Debounce: config.Duration(ms(20))})
	h.expect(0, 0) // the first reading at start
	if pin.Pull() != gpio.PullUp {
		t.Fatalf("pull %v, want up", pin.Pull())
	}

	// A bounce: low for 10ms, back high. It never held 20ms: no reading.
	pin.EdgesChan <- gpio.Low
	h.step("edge")
	h.clock.Advance(ms(10))
	pin.EdgesChan <- gpio.High
	h.step("edge")
	h.clock.Advance(ms(10)) // 20ms after the first edge, 10ms after the last
	pin.EdgesChan <- gpio.Low
	h.step("edge") // the timer restarted: the 20ms count from this edge
	h.clock.Advance(ms(19))
	pin.EdgesChan <- gpio.High
	h.step("edge")
	h.clock.Advance(ms(20))
	h.step("settle")
	h.noReading()

	// A real press: low and held.
	pin.EdgesChan <- gpio.Low
	h.step("edge")
	h.clock.Advance(ms(20))
	h.step("settle")
	h.expect(1, ms(79))

	// Released, with chatter on the way.
	pin.EdgesChan <- gpio.High
	h.step("edge")
	pin.EdgesChan <- gpio.Low
	h.step("edge")
	pin.EdgesChan <- gpio.High
	h.step("edge")
	h.clock.Advance(ms(20))
	h.step("settle")
	h.expect(0, ms(99))
	h.noReading()
}

func TestStateInvert(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pull      string
		invert    bool
		idle, act gpio.Level
	}{
		{"active high, pull-down", "down", false, gpio.Low, gpio.High},
		{"active low, pull-up", "up", true, gpio.High, gpio.Low},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pin := newPin("GPIO5", 5)
			useBoard(t, pin)
			h := run(t, "", config.Sensor{ID: "door_open", Driver: Name, Pin: "5", Pull: tc.pull, Invert: tc.invert, Unit: "bool"})
			r := h.next()
			if r.Value != 0 || r.Sensor != "door_open" || r.Unit != "bool" {
				t.Fatalf("first reading %+v, want door_open 0 bool", r)
			}
			pin.EdgesChan <- tc.act
			h.step("edge") // no debounce: read at the edge
			h.expect(1, 0)
			pin.EdgesChan <- tc.idle
			h.step("edge")
			h.expect(0, 0)
			pin.EdgesChan <- tc.idle // an edge that changes nothing: no reading
			h.step("edge")
			h.noReading()
		})
	}
}

func TestStateHeartbeat(t *testing.T) {
	pin := newPin("GPIO17", 17)
	useBoard(t, pin)
	h := run(t, "", config.Sensor{ID: "press_running", Driver: Name, Pin: "GPIO17", Pull: "down", Interval: config.Duration(5 * time.Second)})
	h.expect(0, 0)
	h.waiters(1) // the heartbeat ticker
	h.clock.Advance(5 * time.Second)
	h.expect(0, 5*time.Second)
	pin.EdgesChan <- gpio.High
	h.step("edge")
	h.expect(1, 5*time.Second)
	h.clock.Advance(5 * time.Second)
	h.expect(1, 10*time.Second) // the heartbeat carries the current state
}

func TestStateDefaultHeartbeat(t *testing.T) {
	useBoard(t, newPin("GPIO17", 17))
	h := run(t, "", config.Sensor{ID: "press_running", Driver: Name, Pin: "GPIO17"})
	h.expect(0, 0)
	h.waiters(1)
	h.clock.Advance(10*time.Second - 1)
	h.waiters(1) // nothing fired yet: exact, the ticker is still the one waiter
	h.noReading()
	h.clock.Advance(1)
	h.expect(0, 10*time.Second)
}

// A pin whose edge wait fails: counted each time, logged once, retried,
// and read again once it works.
func TestWaitErrorRetried(t *testing.T) {
	pin := &failPin{Pin: newPin("GPIO17", 17), ins: make(chan struct{}, 10)}
	pin.failing.Store(true)
	useBoard(t, pin)
	h := run(t, "", config.Sensor{ID: "press_running", Driver: Name, Pin: "GPIO17", Pull: "down"})
	h.expect(0, 0)
	errs := h.metrics.DriverErrors.WithLabelValues(Name, "edge_wait")
	h.waiters(2) // heartbeat and the retry pause
	if n := testutil.ToFloat64(errs); n != 1 {
		t.Fatalf("edge_wait errors %v, want 1", n)
	}
	h.clock.Advance(time.Second)
	h.waiters(2) // failed again, pausing again
	if n := testutil.ToFloat64(errs); n != 2 {
		t.Fatalf("edge_wait errors %v, want 2", n)
	}
	if n := strings.Count(h.logs.String(), "waiting for an edge failed"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, h.logs)
	}
	pin.failing.Store(false)
	h.clock.Advance(time.Second)
	for range 3 { // New's In, then one per retry
		select {
		case <-pin.ins:
		case <-time.After(waitLong):
			t.Fatal("the pin was not configured again")
		}
	}
	pin.EdgesChan <- gpio.High
	h.step("edge")
	h.expect(1, 2*time.Second)
	if !strings.Contains(h.logs.String(), "pin works again") {
		t.Fatalf("no recovery line:\n%s", h.logs)
	}
}
