package i2c

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
)

// TestBusErrorThenRecovery unplugs an SHT3x for two polls: its readings
// are bad (NaN), each failed poll is counted, the outage is logged once,
// and when it answers again it is set up afresh (soft reset) and read.
func TestBusErrorThenRecovery(t *testing.T) {
	reset := i2ctest.IO{Addr: 0x45, W: []byte{0x30, 0xa2}}
	measure := i2ctest.IO{Addr: 0x45, W: []byte{0x24, 0x00}}
	answer := i2ctest.IO{Addr: 0x45, R: []byte{0x66, 0x66, 0x93, 0x80, 0x00, 0xa2}}
	playback := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{reset, measure, answer, reset, measure, answer}}
	bus := &flakyBus{Bus: playback}
	r := start(t, checked(t,
		config.Sensor{ID: "t", Device: SHT3x, Address: 0x45, Channel: "temperature"},
		config.Sensor{ID: "h", Device: SHT3x, Address: 0x45, Channel: "humidity"},
	), map[string]i2c.Bus{"1": bus})
	good := -45 + 175*26214.0/65535
	want(t, r.poll(), "t", good, 1e-9, "C")

	bus.setFail(true)
	for range 2 {
		r.advance(5 * time.Second)
		got := r.poll()
		want(t, got, "t", math.NaN(), 0, "")
		want(t, got, "h", math.NaN(), 0, "")
	}
	if n := r.errors(ErrKindBus); n != 2 {
		t.Errorf("bus errors %v, want 2", n)
	}
	if n := r.logs.count("i2c device failing"); n != 1 {
		t.Errorf("%d failure log lines for one outage, want 1:\n%s", n, r.logs)
	}

	bus.setFail(false)
	r.advance(5 * time.Second)
	got := r.poll()
	want(t, got, "t", good, 1e-9, "C")
	want(t, got, "h", 100*32768.0/65535, 1e-9, "%RH")
	if n := r.logs.count("answers again"); n != 1 {
		t.Errorf("%d recovery log lines, want 1:\n%s", n, r.logs)
	}
	closePlayback(t, playback) // the second soft reset was sent
}

// TestChipMissingAtStart: a chip that does not answer at start is no error
// for New; it reads bad until it is plugged in, then good.
func TestChipMissingAtStart(t *testing.T) {
	playback := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x40, W: []byte{0x00, 0x39, 0x9f}},
		{Addr: 0x40, W: []byte{0x01}, R: []byte{0x00, 0x64}}, // 1 mV
		{Addr: 0x40, W: []byte{0x02}, R: []byte{0x0c, 0x80}}, // 400 · 4 mV = 1.6 V
	}}
	bus := &flakyBus{Bus: playback, fail: true}
	r := start(t, checked(t, config.Sensor{ID: "i", Device: INA219, Address: 0x40, Channel: "current", Interval: config.Duration(time.Second)}),
		map[string]i2c.Bus{"1": bus})
	want(t, r.poll(), "i", math.NaN(), 0, "")
	bus.setFail(false)
	r.advance(time.Second)
	want(t, r.poll(), "i", 0.01, 1e-12, "A")
	closePlayback(t, playback)
}

// TestOneBadChipDoesNotStopOthers: two chips on one bus, one gone.
func TestOneBadChipDoesNotStopOthers(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x48, W: []byte{0x01, 0xc3, 0x83}},
		{Addr: 0x48, W: []byte{0x00}, R: []byte{0x40, 0x00}},
		// 0x44 is not in the playback: the SHT3x there fails.
	}}
	r := start(t, checked(t,
		config.Sensor{ID: "rh", Device: SHT3x, Address: 0x44, Channel: "humidity"},
		config.Sensor{ID: "v", Device: ADS1115, Address: 0x48, Channel: "a0"},
	), map[string]i2c.Bus{"1": bus})
	got := r.poll()
	want(t, got, "rh", math.NaN(), 0, "")
	want(t, got, "v", 2.048, 1e-9, "V")
}

func TestDevicesOnTwoBusesAndIntervals(t *testing.T) {
	b1 := &i2ctest.Playback{DontPanic: true}
	b3 := &i2ctest.Playback{DontPanic: true}
	for range 3 { // every 2s: at 0, 2 and 4
		b1.Ops = append(b1.Ops, i2ctest.IO{Addr: 0x5c, W: []byte{0x01}, R: []byte{0x07}})
	}
	for range 2 { // the 5s sensor shares no chip: at 0 and 5
		b3.Ops = append(b3.Ops, i2ctest.IO{Addr: 0x5c, W: []byte{0x01}, R: []byte{0x09}})
	}
	r := start(t, checked(t,
		config.Sensor{ID: "a", Bus: "1", Device: Register, Address: 0x5c, Register: 1, Length: 1, Interval: config.Duration(2 * time.Second)},
		config.Sensor{ID: "b", Bus: "3", Device: Register, Address: 0x5c, Register: 1, Length: 1},
	), map[string]i2c.Bus{"1": b1, "3": b3})
	counts := map[string]int{}
	for i := range 6 { // t = 0s .. 5s
		if i > 0 {
			r.advance(time.Second)
		}
		for id := range r.poll() {
			counts[id]++
		}
	}
	if counts["a"] != 3 || counts["b"] != 2 {
		t.Errorf("polls %v, want a:3 b:2", counts)
	}
	closePlayback(t, b1)
	closePlayback(t, b3)
}

// TestNewWithoutBus runs the real New: host.Init succeeds on a machine
// without I2C and i2creg.Open fails, which New reports naming the sensor
// and the bus.
func TestNewWithoutBus(t *testing.T) {
	ss := checked(t, config.Sensor{ID: "oil_temp", Bus: "edgegw-no-such-bus", Device: BME280, Address: 0x76, Channel: "temperature"})
	_, err := New(drivers.Env{}, ss)
	if err == nil || !strings.Contains(err.Error(), "sensor oil_temp") || !strings.Contains(err.Error(), `"edgegw-no-such-bus"`) {
		t.Fatalf("New: %v, want an error naming sensor oil_temp and its bus", err)
	}
}

func TestNewBusOpenedOncePerName(t *testing.T) {
	opened := map[string]int{}
	open := func(name string) (i2c.BusCloser, error) {
		opened[name]++
		if name == "9" {
			return nil, errors.New("no such bus")
		}
		return nopCloser{&i2ctest.Playback{}}, nil
	}
	ss := checked(t,
		config.Sensor{ID: "a", Device: SHT3x, Address: 0x44, Channel: "temperature"},
		config.Sensor{ID: "b", Device: ADS1115, Address: 0x48, Channel: "a0"},
		config.Sensor{ID: "c", Bus: "9", Device: ADS1115, Address: 0x48, Channel: "a0"},
	)
	_, err := build(drivers.Env{}, ss, open, nil)
	if err == nil || !strings.Contains(err.Error(), `sensor c: i2c bus "9"`) {
		t.Fatalf("build: %v", err)
	}
	if opened["1"] != 1 {
		t.Errorf("bus 1 opened %d times, want once", opened["1"])
	}
}

func TestNewConflicts(t *testing.T) {
	for name, tc := range map[string]struct {
		sensors []config.Sensor
		want    string
	}{
		"two devices at one address": {[]config.Sensor{
			{ID: "a", Device: SHT3x, Address: 0x44, Channel: "temperature"},
			{ID: "b", Device: INA219, Address: 0x44, Channel: "current"},
		}, "sensor b: device ina219 at bus 1 address 0x44, where sensor a has a sht3x"},
		"two shunts on one ina219": {[]config.Sensor{
			{ID: "a", Device: INA219, Address: 0x40, Channel: "current"},
			{ID: "b", Device: INA219, Address: 0x40, Channel: "power", ShuntOhms: 0.01},
		}, "sensor b: shunt_ohms 0.01 differs from 0.1 on sensor a"},
		"unchecked bad sensor": {[]config.Sensor{
			{ID: "a", Driver: Name, Device: "bme680", Address: 0x76},
		}, `sensor a: device: unknown device "bme680"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := build(drivers.Env{}, tc.sensors, func(string) (i2c.BusCloser, error) { return nopCloser{&i2ctest.Playback{}}, nil }, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
