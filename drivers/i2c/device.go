package i2c

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"periph.io/x/conn/v3/i2c"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

// errCRC marks a chip answer whose checksum did not match: the bytes
// arrived but cannot be trusted.
var errCRC = errors.New("crc mismatch")

// chip is one device kind's protocol on the bus.
type chip interface {
	// setup prepares the chip for measuring. It is called before the first
	// measure and again after a failed one, so a chip that lost power (and
	// its configuration) is brought back.
	setup() error
	// measure reads the chip once and returns a value per key (see
	// sensor.key). With an error wrapping errCRC, the keys present in
	// the map are still good; with any other error none is.
	measure() (map[string]float64, error)
}

// sensor is one sensor id fed by a device.
type sensor struct {
	id, unit      string
	channel       string
	key           string // what the chip's measure returns this sensor's value under
	scale, offset float64
	gain          float64 // ads1115 full-scale volts
	shuntOhms     float64 // ina219
	reg           regSpec // register
}

// device is one chip at one bus address and the sensors it feeds.
type device struct {
	bus      string
	addr     uint16
	kind     string
	interval time.Duration
	sensors  []*sensor
	chip     chip
	ready    bool // set up since the last bus error
	failing  bool // in an outage, which was logged when it began
}

// group checks the sensors and collects them by bus and address, in
// config order. Sensors at one address must name the same device and
// agree on the chip's settings.
func group(sensors []config.Sensor) ([]*device, error) {
	var devs []*device
	byAddr := map[string]*device{}
	owner := map[string]string{} // bus address -> the first sensor's id
	for _, cs := range sensors {
		s := cs // Check fills defaults; leave the caller's copy alone
		var problem error
		Check(&s, func(field, format string, args ...any) {
			if problem == nil {
				problem = fmt.Errorf("sensor %s: %s: %s", s.ID, field, fmt.Sprintf(format, args...))
			}
		})
		if problem != nil {
			return nil, problem
		}
		at := fmt.Sprintf("%s/%#x", s.Bus, s.Address)
		dev := byAddr[at]
		if dev == nil {
			dev = &device{bus: s.Bus, addr: uint16(s.Address), kind: s.Device, interval: s.Interval.D()}
			byAddr[at] = dev
			owner[at] = s.ID
			devs = append(devs, dev)
		}
		if dev.kind != s.Device {
			return nil, fmt.Errorf("sensor %s: device %s at bus %s address %#x, where sensor %s has a %s: one address is one chip",
				s.ID, s.Device, s.Bus, s.Address, owner[at], dev.kind)
		}
		if iv := s.Interval.D(); iv < dev.interval {
			dev.interval = iv // the chip is polled for its most eager sensor
		}
		ss := &sensor{id: s.ID, unit: s.Unit, channel: s.Channel, key: s.Channel, scale: s.Scale, offset: s.Offset, gain: s.Gain}
		switch s.Device {
		case ADS1115:
			ss.key = fmt.Sprintf("%s@%v", s.Channel, s.Gain)
		case Register:
			ss.reg = regSpec{reg: byte(s.Register), length: s.Length, typ: s.Type, little: s.ByteOrder == "little"}
			ss.key = ss.reg.String()
		case INA219:
			if len(dev.sensors) > 0 && dev.sensors[0].shuntOhms != s.ShuntOhms {
				return nil, fmt.Errorf("sensor %s: shunt_ohms %v differs from %v on sensor %s: one ina219 has one shunt",
					s.ID, s.ShuntOhms, dev.sensors[0].shuntOhms, dev.sensors[0].id)
			}
			ss.shuntOhms = s.ShuntOhms
		}
		dev.sensors = append(dev.sensors, ss)
	}
	return devs, nil
}

// newChip builds the protocol of dev's device kind on bus.
func newChip(dev *device, bus i2c.Bus, sleep func(time.Duration)) (chip, error) {
	conn := &i2c.Dev{Bus: bus, Addr: dev.addr}
	switch dev.kind {
	case BME280, BMP280:
		return &bmx280{bus: bus, addr: dev.addr, humidity: dev.kind == BME280}, nil
	case SHT3x:
		return &sht{conn: conn, gen: 3, sleep: sleep}, nil
	case SHT4x:
		return &sht{conn: conn, gen: 4, sleep: sleep}, nil
	case ADS1115:
		var chans []adsInput
		for _, s := range dev.sensors {
			chans = append(chans, adsInput{key: s.key, mux: uint16(s.channel[1] - '0'), fsr: s.gain})
		}
		return &ads1115{conn: conn, inputs: chans, sleep: sleep}, nil
	case INA219:
		return &ina219{conn: conn, shuntOhms: dev.sensors[0].shuntOhms}, nil
	case Register:
		var specs []regSpec
		for _, s := range dev.sensors {
			specs = append(specs, s.reg)
		}
		return &registers{conn: conn, specs: specs}, nil
	}
	return nil, fmt.Errorf("unknown device %q", dev.kind)
}

// poll sets the chip up if needed, measures it and emits one reading per
// sensor. It returns an error only when the sink refused a reading (ctx
// is done).
func (d *Driver) poll(ctx context.Context, dev *device, sink drivers.Sink) error {
	now := d.env.Clock.Now()
	var vals map[string]float64
	err := error(nil)
	if !dev.ready {
		if err = dev.chip.setup(); err == nil {
			dev.ready = true
		} else {
			err = fmt.Errorf("setup: %w", err)
		}
	}
	if err == nil {
		vals, err = dev.chip.measure()
	}
	d.account(dev, err)
	for _, s := range dev.sensors {
		r := reading.Reading{Sensor: s.id, TS: now, Value: math.NaN(), Unit: s.unit, Quality: reading.Bad}
		if v, ok := vals[s.key]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			r.Value, r.Quality = v*s.scale+s.offset, reading.Good
		}
		if err := sink.Emit(ctx, r, nil); err != nil {
			return err
		}
		d.metrics.ReadingsTotal.WithLabelValues(Name).Inc()
	}
	return nil
}

// account counts a poll's error, logs the start and end of an outage, and
// has the chip set up again after a bus error.
func (d *Driver) account(dev *device, err error) {
	if err == nil {
		if dev.failing {
			dev.failing = false
			d.log.Info("i2c device answers again", "device", dev.kind, "bus", dev.bus, "address", fmt.Sprintf("%#x", dev.addr), "sensor", dev.sensors[0].id)
		}
		return
	}
	kind := ErrKindBus
	if errors.Is(err, errCRC) {
		kind = ErrKindCRC
	} else {
		dev.ready = false
	}
	d.metrics.DriverErrors.WithLabelValues(Name, kind).Inc()
	if !dev.failing {
		dev.failing = true
		d.log.Warn("i2c device failing; its readings are bad until it answers", "device", dev.kind, "bus", dev.bus,
			"address", fmt.Sprintf("%#x", dev.addr), "sensor", dev.sensors[0].id, "kind", kind, "err", err)
	}
}
