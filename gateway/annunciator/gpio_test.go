package annunciator

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	edgegpio "github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/rules"
)

// The real output on a periph test pin, registered under a name no board
// has: *gpio.Output is a Light, and the levels follow the alert states.
func TestWithGPIOOutput(t *testing.T) {
	pin := &gpiotest.Pin{N: "ANNUNCIATOR_TEST", Num: 9022, L: gpio.High}
	if err := gpioreg.Register(pin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpioreg.Unregister(pin.N) })
	clock := clockwork.NewFakeClock()
	out, err := edgegpio.OpenOutput(pin.N, edgegpio.WithClock(clock))
	if err != nil {
		t.Skipf("no periph host here: %v", err)
	}
	defer out.Close()
	a := New(out, time.Second, nil)

	level := func(when string, want gpio.Level) {
		t.Helper()
		if got := pin.Read(); got != want {
			t.Fatalf("%s: level %v, want %v", when, got, want)
		}
	}
	level("opened", gpio.Low)
	crit := rules.Status{Rule: "press_overtemp", Severity: "critical", State: "firing"}
	a.Update([]rules.Status{crit})
	level("blink starts on", gpio.High)
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(500 * time.Millisecond)
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil { // the toggle is made, the next wait started
		t.Fatal(err)
	}
	level("half a period later", gpio.Low)

	crit.Acked = true
	a.Update([]rules.Status{crit})
	level("acknowledged", gpio.High)
	crit.State = "inactive"
	a.Update([]rules.Status{crit})
	level("resolved", gpio.Low)
}
