// Package gpio reads digital inputs wired to the gateway's GPIO pins,
// registered as driver "gpio", and drives digital outputs (a stack light)
// through Output.
//
// Pins are reached through periph.io on the GPIO character device (Pi 4
// and Pi 5 alike), by board name ("GPIO17") or number ("17"). The driver
// depends only on periph's gpio.PinIO interface, so its tests run the same
// code against gpiotest.Pin.
//
// A sensor reads a pin in one of three modes:
//
//   - state (default): the pin's level as 1/0 (inverted with `invert`), at
//     start, on every change that held `debounce`, and as a heartbeat every
//     `interval` so rules see the state when nothing changes;
//   - counter: the number of edges (`edge: rising|falling|both`) counted
//     since the counter was first started, published at start and every
//     `interval`. The total survives restarts in a small file in the
//     gateway's state directory, written atomically at each publication
//     that changed it and at stop;
//   - rate: a second sensor on a counter's pin, with no line settings of
//     its own, that publishes the counter's edges per second over the last
//     publication period, at the counter's publications from the second
//     one on (the first one after start has no period behind it).
//
// A pin that fails while waiting for edges is logged once per outage,
// counted in edgegw_driver_errors_total{driver="gpio"} and retried; it
// never stops the driver.
package gpio

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
)

// Name is the `driver:` value of GPIO sensors.
const Name = "gpio"

// Modes, pulls and edges as written in the config.
const (
	ModeState   = "state"
	ModeCounter = "counter"
	ModeRate    = "rate"

	PullUp   = "up"
	PullDown = "down"
	PullNone = "none"

	EdgeRising  = "rising"
	EdgeFalling = "falling"
	EdgeBoth    = "both"
)

// DefaultInterval is the heartbeat of a state input and the publication
// period of a counter.
const DefaultInterval = config.Duration(10 * time.Second)

// ErrNoPin is returned, wrapped with the sensor and pin, for a pin this
// machine does not have: a name the board does not know, or no GPIO at
// all (periph's host.Init succeeds on such a machine and registers no pin).
var ErrNoPin = errors.New("no such GPIO pin")

// ErrPinBusy is returned, wrapped, for a pin that exists but cannot be
// configured: usually another process (or a kernel driver) holds the line.
var ErrPinBusy = errors.New("GPIO pin busy or not usable")

var pulls = map[string]gpio.Pull{PullUp: gpio.PullUp, PullDown: gpio.PullDown, PullNone: gpio.Float}
var edges = map[string]gpio.Edge{EdgeRising: gpio.RisingEdge, EdgeFalling: gpio.FallingEdge, EdgeBoth: gpio.BothEdges}

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, CheckAll: CheckAll, New: New})
}

// Check validates a gpio sensor and fills in its defaults (mode state,
// pull none, edge rising for counters, interval 10s; a rate sensor gets
// none: its pin's settings and period are the counter's).
//
// Two sensors on one pin, or a rate sensor without a counter on its pin,
// cannot be seen here, one sensor at a time: CheckAll reports them, and
// New refuses them after resolving the pins on the board.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	if strings.TrimSpace(s.Pin) == "" {
		report("pin", "required: a board name such as GPIO17, or a number such as 17")
	}
	if s.Mode == "" {
		s.Mode = ModeState
	}
	if s.Mode == ModeRate {
		checkRate(s, report)
		return
	}
	switch s.Mode {
	case ModeState:
		if s.Edge != "" {
			report("edge", "only for mode counter (mode state reports both edges)")
		}
	case ModeCounter:
		if s.Edge == "" {
			s.Edge = EdgeRising
		}
		if _, ok := edges[s.Edge]; !ok {
			report("edge", "%q is not rising, falling or both", s.Edge)
		}
	default:
		report("mode", "%q is not state, counter or rate", s.Mode)
	}
	if s.Pull == "" {
		s.Pull = PullNone
	}
	if _, ok := pulls[s.Pull]; !ok {
		report("pull", "%q is not up, down or none", s.Pull)
	}
	if s.Debounce < 0 {
		report("debounce", "must not be negative")
	}
	if s.Interval < 0 {
		report("interval", "must not be negative")
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
}

// checkRate validates a rate sensor: it reads the counter of its pin, so
// every setting of the line or the period belongs on that counter sensor.
// It fills in no defaults, so a second Check (New runs it again) sees the
// sensor as written.
func checkRate(s *config.Sensor, report func(field, format string, args ...any)) {
	const onCounter = "not for mode rate: it belongs on the counter sensor of pin %s"
	if s.Pull != "" {
		report("pull", onCounter, s.Pin)
	}
	if s.Edge != "" {
		report("edge", onCounter, s.Pin)
	}
	if s.Debounce != 0 {
		report("debounce", onCounter, s.Pin)
	}
	if s.Invert {
		report("invert", onCounter, s.Pin)
	}
	if s.Interval != 0 {
		report("interval", onCounter+" (the rate is published at the counter's interval)", s.Pin)
	}
}

// lookupPin finds a pin by name; tests replace it with gpiotest pins.
var lookupPin = boardPin

var hostInit = sync.OnceValues(host.Init)

// boardPin resolves a pin of this board through periph's registry. A bare
// number that is not registered as such is tried as "GPIO<n>", the
// character device's line name on Raspberry Pi boards.
func boardPin(name string) (gpio.PinIO, error) {
	if _, err := hostInit(); err != nil {
		return nil, fmt.Errorf("periph host init: %w", err)
	}
	if p := gpioreg.ByName(name); p != nil {
		return p, nil
	}
	if _, err := strconv.Atoi(name); err == nil {
		if p := gpioreg.ByName("GPIO" + name); p != nil {
			return p, nil
		}
	}
	if len(gpioreg.All()) == 0 {
		return nil, fmt.Errorf("%w: this machine has no GPIO lines (no /dev/gpiochip* periph can open)", ErrNoPin)
	}
	return nil, ErrNoPin
}

// Driver reads all gpio sensors of a gateway.
type Driver struct {
	env    drivers.Env
	inputs []*input

	// pollEvery bounds one WaitForEdge call, so a stop is seen even where
	// Halt does not interrupt the wait (gpiotest). retryEvery is the pause
	// after a failed wait before the pin is configured again.
	pollEvery, retryEvery time.Duration
	// onStep, if set (tests), is called after an input handled an edge
	// ("edge", "count") or ended a debounce ("settle").
	onStep func(sensor, step string)
}

// New resolves and configures the pin of every gpio sensor, and attaches
// each rate sensor to the counter of its pin. A pin that does not exist or
// is busy, one pin named by two sensors (other than a counter and its one
// rate), or a rate sensor whose pin has no counter is an error naming the
// sensor and the pin.
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	env = env.WithDefaults()
	d := &Driver{env: env, pollEvery: time.Second, retryEvery: time.Second}
	byPin := map[string]*input{} // resolved pin → its input
	type rate struct {
		s   config.Sensor
		key string
	}
	var rates []rate // attached once every counter is known: config order is free
	for _, s := range sensors {
		var ps []string
		Check(&s, func(field, format string, args ...any) {
			ps = append(ps, field+": "+fmt.Sprintf(format, args...))
		})
		if len(ps) > 0 {
			return nil, fmt.Errorf("sensor %s: %s", s.ID, strings.Join(ps, "; "))
		}
		p, err := lookupPin(s.Pin)
		if err != nil {
			return nil, fmt.Errorf("sensor %s: pin %s: %w", s.ID, s.Pin, err)
		}
		key := p.Name()
		if s.Mode == ModeRate {
			rates = append(rates, rate{s, key})
			continue
		}
		if other, dup := byPin[key]; dup {
			return nil, fmt.Errorf("sensor %s: pin %s (%s) is already read by sensor %s", s.ID, s.Pin, key, other.id)
		}
		in, err := d.newInput(s, p)
		if err != nil {
			return nil, err
		}
		byPin[key] = in
		d.inputs = append(d.inputs, in)
	}
	for _, r := range rates {
		in := byPin[r.key]
		switch {
		case in == nil:
			return nil, fmt.Errorf("sensor %s: pin %s (%s): mode rate needs a counter sensor on that pin", r.s.ID, r.s.Pin, r.key)
		case !in.counter:
			return nil, fmt.Errorf("sensor %s: pin %s (%s): mode rate needs a counter sensor on that pin, and sensor %s reads it in mode state", r.s.ID, r.s.Pin, r.key, in.id)
		case in.rateID != "":
			return nil, fmt.Errorf("sensor %s: pin %s (%s) already has the rate sensor %s", r.s.ID, r.s.Pin, r.key, in.rateID)
		}
		in.rateID, in.rateUnit = r.s.ID, r.s.Unit
	}
	return d, nil
}

func (d *Driver) newInput(s config.Sensor, p gpio.PinIO) (*input, error) {
	in := &input{
		d: d, id: s.ID, pinName: s.Pin, unit: s.Unit, pin: p,
		pull: pulls[s.Pull], edge: gpio.BothEdges,
		counter: s.Mode == ModeCounter, invert: s.Invert,
		debounce: s.Debounce.D(), interval: s.Interval.D(),
		notify:  make(chan struct{}, 1),
		log:     d.env.Logger.With("sensor", s.ID, "pin", s.Pin),
		errWait: d.env.Metrics.DriverErrors.WithLabelValues(Name, "edge_wait"),
	}
	if in.counter {
		in.edge = edges[s.Edge]
		in.store = newCounterFile(d.env.StateDir, s.ID)
		total, err := in.store.load()
		if err != nil {
			// A lost total is worth a loud line, not a gateway that does
			// not start: the counter restarts from 0.
			in.log.Error("gpio: counter total not restored, starting from 0", "file", in.store.path, "err", err)
			d.env.Metrics.DriverErrors.WithLabelValues(Name, "state_file").Inc()
		}
		in.base, in.saved = total, total
		if in.store.path == "" {
			in.log.Warn("gpio: no state directory, the counter total will not survive a restart")
		}
	}
	if err := p.In(in.pull, in.edge); err != nil {
		return nil, fmt.Errorf("sensor %s: pin %s: %w: %v", s.ID, s.Pin, ErrPinBusy, err)
	}
	return in, nil
}

// Run reads every input until ctx is done, then stops the edge waits,
// saves the counters' totals and returns once its goroutines stopped.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, in := range d.inputs {
		wg.Add(2)
		go func() { defer wg.Done(); in.watch(ctx) }()
		go func() { defer wg.Done(); in.loop(ctx, sink) }()
	}
	<-ctx.Done()
	for _, in := range d.inputs {
		_ = in.pin.Halt() // interrupts WaitForEdge on the character device
	}
	wg.Wait()
	for _, in := range d.inputs {
		if in.counter {
			in.save()
		}
	}
	return nil
}

func (d *Driver) step(sensor, step string) {
	if d.onStep != nil {
		d.onStep(sensor, step)
	}
}
