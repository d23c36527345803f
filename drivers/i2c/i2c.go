// Package i2c reads sensors on an I²C bus, registered as driver "i2c".
//
// Each sensor names a chip by `bus`, `address` and `device`; the sensors
// naming the same bus and address share one chip and one poll, each taking
// its `channel` (temperature, pressure, humidity, a0..a3, current, ...).
// A chip is polled every `interval` (the shortest of its sensors'), the
// first time at start. Supported: bme280, bmp280 (through
// periph.io/x/devices/v3/bmxx80), sht3x, sht4x, ads1115, ina219 and a
// generic register read. Every value is value*scale + offset.
//
// Failures give readings of quality bad, never a wrong value: a failed
// transaction (chip unplugged, bus stuck) gives each of the chip's sensors
// a bad reading with value NaN and counts
// edgegw_driver_errors_total{driver="i2c",kind="bus"}; a CRC mismatch
// (sht3x, sht4x) does the same for the channel it spoils, with
// kind="crc". The chip is set up again before its next poll, so one that
// vanishes and returns recovers by itself. An outage is logged once when
// it starts and once when it ends, not on every poll.
//
// The driver depends only on periph's i2c.Bus: New opens buses by name
// through i2creg after host.Init, and tests hand in i2ctest doubles.
package i2c

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
)

// Name is the `driver:` value of I²C sensors.
const Name = "i2c"

// Kinds of edgegw_driver_errors_total{driver="i2c"}.
const (
	ErrKindBus = "bus" // a failed transaction or chip setup
	ErrKindCRC = "crc" // a checksum mismatch in a chip's answer
)

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, CheckAll: CheckAll, New: New})
}

// Driver polls the chips of all i2c sensors.
type Driver struct {
	env     drivers.Env
	log     *slog.Logger
	metrics *metrics.Set
	buses   []i2c.BusCloser
	devices []*device
}

// opener opens an I²C bus by name.
type opener func(name string) (i2c.BusCloser, error)

// openHostBus opens a bus of this machine. host.Init is idempotent, and on
// a machine without I²C it succeeds with no buses registered, so the
// error comes from i2creg.Open.
func openHostBus(name string) (i2c.BusCloser, error) {
	if _, err := host.Init(); err != nil {
		return nil, fmt.Errorf("periph host init: %w", err)
	}
	return i2creg.Open(name)
}

// New opens the buses the sensors name and groups the sensors by chip. A
// chip missing at start is no error (it is set up at each poll until it
// answers); a bus that cannot be opened is.
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	return build(env, sensors, openHostBus, time.Sleep)
}

// build is New with the bus opener and the conversion wait injected.
func build(env drivers.Env, sensors []config.Sensor, open opener, sleep func(time.Duration)) (*Driver, error) {
	env = env.WithDefaults()
	d := &Driver{env: env, log: env.Logger, metrics: env.Metrics}
	groups, err := group(sensors)
	if err != nil {
		return nil, err
	}
	opened := map[string]i2c.BusCloser{}
	for _, g := range groups {
		bus, ok := opened[g.bus]
		if !ok {
			bus, err = open(g.bus)
			if err != nil {
				d.closeBuses()
				return nil, fmt.Errorf("sensor %s: i2c bus %q: %w", g.sensors[0].id, g.bus, err)
			}
			opened[g.bus] = bus
			d.buses = append(d.buses, bus)
		}
		c, err := newChip(g, bus, sleep)
		if err != nil {
			d.closeBuses()
			return nil, fmt.Errorf("sensor %s: %w", g.sensors[0].id, err)
		}
		g.chip = c
		d.devices = append(d.devices, g)
	}
	return d, nil
}

func (d *Driver) closeBuses() {
	for _, b := range d.buses {
		_ = b.Close()
	}
	d.buses = nil
}

// Run polls each chip every interval, the first time at once, until ctx is
// done, then closes the buses. All chips are polled from this one
// goroutine: transactions on a bus are serial anyway, and a poll is a few
// milliseconds. A chip that falls behind (a blocked sink) skips the polls
// it missed rather than reading a burst.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	defer d.closeBuses()
	clock := d.env.Clock
	now := clock.Now()
	next := make([]time.Time, len(d.devices))
	for i := range next {
		next[i] = now
	}
	timer := clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.Chan():
		}
		now = clock.Now()
		var wake time.Time
		for i, dev := range d.devices {
			if !next[i].After(now) {
				if err := d.poll(ctx, dev, sink); err != nil {
					return nil // only ctx ends Emit with an error
				}
				for !next[i].After(now) {
					next[i] = next[i].Add(dev.interval)
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
