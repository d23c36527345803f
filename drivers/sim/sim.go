// Package sim is a simulated press line for the demo and for tests,
// registered as driver "sim".
//
// Every sim sensor of a gateway reads one shared line, chosen by `signal:`:
//
//   - running: 1 while the press runs, 0 while stopped. Runs last about
//     run_for (default 40s), stops alternate between long (about 2×stop_for)
//     and short (about stop_for/2), so with the defaults some stops exceed a
//     30s min_downtime and some do not. The first run is short and the first
//     stop long: a downtime event shows up within about a minute.
//   - parts: a counter that rises, one part per stroke, only while running.
//   - temperature: oil temperature in C around 60, rising while running,
//     with a cooling fault every few minutes that takes it above 85 C for
//     tens of seconds; the first one starts within the first 25 seconds.
//   - pressure: hydraulic pressure in bar around 180 while running, 0 when
//     stopped.
//
// Time comes from the gateway's clock, so tests advance a fake clock
// instead of sleeping; `seed` makes the line repeatable.
package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

// Name is the `driver:` value of simulated sensors.
const Name = "sim"

// Signals a sim sensor can read.
const (
	Running     = "running"
	Parts       = "parts"
	Temperature = "temperature"
	Pressure    = "pressure"
)

// Defaults of the sim fields.
const (
	DefaultInterval = config.Duration(time.Second)
	DefaultRunFor   = 40 * time.Second
	DefaultStopFor  = 20 * time.Second
)

var units = map[string]string{Running: "", Parts: "", Temperature: "C", Pressure: "bar"}

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, New: New})
}

// Check validates a sim sensor and fills in its interval and unit.
// run_for and stop_for are left as written: they describe the one shared
// line, and New tells apart a value set twice from one left out.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	unit, known := units[s.Signal]
	switch {
	case s.Signal == "":
		report("signal", "required: running, parts, temperature or pressure")
	case !known:
		report("signal", "%q is not running, parts, temperature or pressure", s.Signal)
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Unit == "" {
		s.Unit = unit
	}
}

// Driver is the running simulated line.
type Driver struct {
	env     drivers.Env
	sensors []simSensor
	line    *line
}

type simSensor struct {
	id, unit, signal string
	interval         time.Duration
}

// New builds the line for all sim sensors. seed, run_for and stop_for may
// be set on any of them, but not to two different values.
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	var seed int64
	var runFor, stopFor config.Duration
	var ss []simSensor
	for _, s := range sensors {
		if _, known := units[s.Signal]; !known {
			return nil, fmt.Errorf("sensor %s: unknown signal %q", s.ID, s.Signal)
		}
		if err := shared(s.ID, "run_for", &runFor, s.RunFor); err != nil {
			return nil, err
		}
		if err := shared(s.ID, "stop_for", &stopFor, s.StopFor); err != nil {
			return nil, err
		}
		if s.Seed != 0 {
			if seed != 0 && seed != s.Seed {
				return nil, fmt.Errorf("sensor %s: seed %d differs from %d set on another sim sensor: all sim sensors share one line", s.ID, s.Seed, seed)
			}
			seed = s.Seed
		}
		iv := s.Interval.D()
		if iv <= 0 {
			iv = DefaultInterval.D()
		}
		ss = append(ss, simSensor{id: s.ID, unit: s.Unit, signal: s.Signal, interval: iv})
	}
	if runFor == 0 {
		runFor = config.Duration(DefaultRunFor)
	}
	if stopFor == 0 {
		stopFor = config.Duration(DefaultStopFor)
	}
	if seed == 0 {
		seed = rand.Int64() // no seed: a different line each start
	}
	env = env.WithDefaults()
	return &Driver{env: env, sensors: ss, line: newLine(uint64(seed), runFor.D(), stopFor.D())}, nil
}

// shared sets *dst to v, a field of the one line given on one sensor, and
// refuses a second, different value: which would win is not obvious.
func shared(id, field string, dst *config.Duration, v config.Duration) error {
	if v == 0 {
		return nil
	}
	if *dst != 0 && *dst != v {
		return fmt.Errorf("sensor %s: %s %v differs from %v on another sim sensor: all sim sensors share one line", id, field, v, *dst)
	}
	*dst = v
	return nil
}

// Run emits each sensor's reading every interval, the first at once, until
// ctx is done. A sensor that falls behind (a blocked sink) skips the
// readings it missed rather than sending a burst of stale ones.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	clock := d.env.Clock
	start := clock.Now()
	next := make([]time.Time, len(d.sensors))
	for i := range next {
		next[i] = start
	}
	timer := clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.Chan():
		}
		now := clock.Now()
		d.line.advanceTo(now.Sub(start))
		wake := time.Time{}
		for i, s := range d.sensors {
			if !next[i].After(now) {
				r := reading.Reading{Sensor: s.id, TS: now, Value: d.line.value(s.signal), Unit: s.unit, Quality: reading.Good}
				if err := sink.Emit(ctx, r, nil); err != nil {
					return nil // only ctx ends Emit with an error
				}
				for !next[i].After(now) {
					next[i] = next[i].Add(s.interval)
				}
			}
			if wake.IsZero() || next[i].Before(wake) {
				wake = next[i]
			}
		}
		if wake.IsZero() {
			<-ctx.Done() // no sensors
			return nil
		}
		timer.Reset(wake.Sub(now))
	}
}
