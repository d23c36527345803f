package gpio

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
)

func TestOutputOnOff(t *testing.T) {
	pin := newPin("GPIO22", 22)
	pin.L = gpio.High // whatever the line was left at
	useBoard(t, pin)
	o, err := OpenOutput("22")
	if err != nil {
		t.Fatal(err)
	}
	if pin.Read() != gpio.Low {
		t.Fatal("OpenOutput did not switch the output off")
	}
	for _, step := range []struct {
		do   func() error
		want gpio.Level
	}{{o.On, gpio.High}, {o.On, gpio.High}, {o.Off, gpio.Low}, {o.On, gpio.High}, {o.Close, gpio.Low}} {
		if err := step.do(); err != nil {
			t.Fatal(err)
		}
		if pin.Read() != step.want {
			t.Fatalf("level %v, want %v", pin.Read(), step.want)
		}
	}
	if err := o.On(); !errors.Is(err, ErrClosed) {
		t.Fatalf("On after Close: %v, want ErrClosed", err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestOutputActiveLow(t *testing.T) {
	pin := newPin("GPIO22", 22)
	useBoard(t, pin)
	o, err := OpenOutput("GPIO22", ActiveLow())
	if err != nil {
		t.Fatal(err)
	}
	if pin.Read() != gpio.High {
		t.Fatal("an active-low output opened on")
	}
	if err := o.On(); err != nil || pin.Read() != gpio.Low {
		t.Fatalf("On: %v, level %v", err, pin.Read())
	}
	if err := o.Close(); err != nil || pin.Read() != gpio.High {
		t.Fatalf("Close: %v, level %v", err, pin.Read())
	}
}

func TestOutputBlink(t *testing.T) {
	pin := newPin("GPIO22", 22)
	useBoard(t, pin)
	clock := clockwork.NewFakeClock()
	o, err := OpenOutput("GPIO22", WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	h := &harness{t: t, clock: clock}
	if err := o.Blink(0); err == nil {
		t.Fatal("Blink(0) accepted")
	}
	if err := o.Blink(time.Second); err != nil {
		t.Fatal(err)
	}
	if pin.Read() != gpio.High {
		t.Fatal("Blink does not start on")
	}
	// Each toggle is followed by a new timer: one waiter means it was made.
	for i, want := range []gpio.Level{gpio.Low, gpio.High, gpio.Low, gpio.High} {
		h.waiters(1)
		clock.Advance(500 * time.Millisecond)
		h.waiters(1)
		if pin.Read() != want {
			t.Fatalf("toggle %d: level %v, want %v", i, pin.Read(), want)
		}
	}
	// Off stops the goroutine before it returns: no timer is left, and
	// time passing changes nothing.
	if err := o.Off(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if pin.Read() != gpio.Low {
		t.Fatal("still blinking after Off")
	}
	// Blink, then On: steady on. Blink, then Close: off.
	for _, end := range []struct {
		do   func() error
		want gpio.Level
	}{{o.On, gpio.High}, {o.Close, gpio.Low}} {
		if err := o.Blink(200 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		h.waiters(1)
		clock.Advance(100 * time.Millisecond)
		h.waiters(1)
		if err := end.do(); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if pin.Read() != end.want {
			t.Fatalf("level %v, want %v", pin.Read(), end.want)
		}
	}
	if err := o.Blink(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Blink after Close: %v", err)
	}
}

func TestOpenOutputErrors(t *testing.T) {
	useBoard(t, busyPin{newPin("GPIO4", 4)})
	if _, err := OpenOutput("GPIO99"); !errors.Is(err, ErrNoPin) || !strings.Contains(err.Error(), "GPIO99") {
		t.Fatalf("missing pin: %v", err)
	}
	if _, err := OpenOutput("GPIO4"); !errors.Is(err, ErrPinBusy) || !strings.Contains(err.Error(), "GPIO4") {
		t.Fatalf("busy pin: %v", err)
	}
}
