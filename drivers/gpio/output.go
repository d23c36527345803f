package gpio

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
)

// ErrClosed is returned by the methods of an Output after Close.
var ErrClosed = errors.New("gpio: output closed")

// Output is a digital output, such as one lamp of a stack light. It is
// safe for concurrent use. At most one blink goroutine runs per Output;
// On, Off, Blink and Close stop it, and return only once it has stopped,
// so the level they set is the last one written.
type Output struct {
	name   string
	pin    gpio.PinIO
	on     gpio.Level // the level that lights the lamp
	clock  clockwork.Clock
	log    *slog.Logger
	mu     sync.Mutex
	stop   chan struct{} // closed to stop the blink goroutine; nil when none
	done   chan struct{} // closed by the blink goroutine when it returns
	closed bool
}

// OutputOption changes how OpenOutput sets up an Output.
type OutputOption func(*Output)

// WithClock makes Blink time its toggles on c (tests pass a fake clock).
func WithClock(c clockwork.Clock) OutputOption { return func(o *Output) { o.clock = c } }

// WithLogger sets where a failing blink toggle is logged.
func WithLogger(l *slog.Logger) OutputOption { return func(o *Output) { o.log = l } }

// ActiveLow is for relay boards that switch on a low level: On drives the
// pin low and Off high.
func ActiveLow() OutputOption { return func(o *Output) { o.on = gpio.Low } }

// OpenOutput configures pin (a board name such as GPIO22, or a number) as
// an output and switches it off. An unknown pin wraps ErrNoPin, one that
// cannot be driven ErrPinBusy.
func OpenOutput(pin string, opts ...OutputOption) (*Output, error) {
	p, err := lookupPin(pin)
	if err != nil {
		return nil, fmt.Errorf("output pin %s: %w", pin, err)
	}
	o := &Output{name: pin, pin: p, on: gpio.High, clock: clockwork.NewRealClock(), log: slog.Default()}
	for _, opt := range opts {
		opt(o)
	}
	if err := p.Out(!o.on); err != nil {
		return nil, fmt.Errorf("output pin %s: %w: %v", pin, ErrPinBusy, err)
	}
	return o, nil
}

// On switches the output on, steadily.
func (o *Output) On() error { return o.set(o.on) }

// Off switches the output off.
func (o *Output) Off() error { return o.set(!o.on) }

func (o *Output) set(l gpio.Level) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	o.stopBlink()
	return o.out(l)
}

// Blink switches the output on for half of period, off for the other
// half, repeatedly, starting on at once, until On, Off, another Blink or
// Close.
func (o *Output) Blink(period time.Duration) error {
	if period <= 0 {
		return fmt.Errorf("output pin %s: blink period %v is not positive", o.name, period)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	o.stopBlink()
	if err := o.out(o.on); err != nil {
		return err
	}
	o.stop, o.done = make(chan struct{}), make(chan struct{})
	go o.blink(period/2, o.stop, o.done)
	return nil
}

// blink toggles every half period. Each wait is a new timer, started after
// the toggle, so a fake clock's waiter count tells a test the toggle was
// made.
func (o *Output) blink(half time.Duration, stop, done chan struct{}) {
	defer close(done)
	level := o.on
	failing := false
	for {
		t := o.clock.NewTimer(half)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.Chan():
		}
		level = !level
		if err := o.pin.Out(level); err != nil {
			if !failing {
				o.log.Warn("gpio: blinking output failed", "pin", o.name, "err", err)
			}
			failing = true
		} else {
			failing = false
		}
	}
}

// stopBlink ends the blink goroutine, if any, and waits for it. o.mu held.
func (o *Output) stopBlink() {
	if o.stop == nil {
		return
	}
	close(o.stop)
	<-o.done
	o.stop, o.done = nil, nil
}

func (o *Output) out(l gpio.Level) error {
	if err := o.pin.Out(l); err != nil {
		return fmt.Errorf("output pin %s: %w", o.name, err)
	}
	return nil
}

// Close switches the output off and releases it; later calls return
// ErrClosed. Closing twice is harmless.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.stopBlink()
	o.closed = true
	err := o.out(!o.on)
	_ = o.pin.Halt()
	return err
}
