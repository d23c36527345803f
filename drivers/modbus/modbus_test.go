package modbus

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

type recordSink struct {
	mu  sync.Mutex
	got []reading.Reading
}

func (s *recordSink) Emit(_ context.Context, r reading.Reading, ack func()) error {
	if ack != nil {
		panic("modbus passed an ack: a Modbus reading cannot be resent")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	return nil
}

func (s *recordSink) series(sensor string) []reading.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []reading.Reading
	for _, r := range s.got {
		if r.Sensor == sensor {
			out = append(out, r)
		}
	}
	return out
}

// last is the sensor's latest reading (zero Reading if none).
func (s *recordSink) last(sensor string) reading.Reading {
	rs := s.series(sensor)
	if len(rs) == 0 {
		return reading.Reading{}
	}
	return rs[len(rs)-1]
}

func (s *recordSink) count(sensor string, q reading.Quality) int {
	n := 0
	for _, r := range s.series(sensor) {
		if r.Quality == q {
			n++
		}
	}
	return n
}

// rig is the driver running against a simulated slave on a pty line, on a
// fake clock that a pump advances whenever the driver waits on it.
type rig struct {
	line    *ptytest.Line
	sim     *modbustest.Slaves
	sink    *recordSink
	metrics *metrics.Set
	clock   *clockwork.FakeClock
}

// start runs the driver for sensors once setup has loaded the simulator.
func start(t *testing.T, setup func(*modbustest.Slaves), sensors ...config.Sensor) *rig {
	t.Helper()
	line := ptytest.New(t, "ttyUSB0")
	r := &rig{line: line, sim: modbustest.New(t, line), sink: &recordSink{}, metrics: metrics.New(),
		clock: clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC))}
	setup(r.sim)
	for i := range sensors {
		sensors[i].Driver = Name
		sensors[i].Port = line.Path
		if sensors[i].Timeout == 0 {
			sensors[i].Timeout = config.Duration(200 * time.Millisecond)
		}
	}
	drv, err := New(drivers.Env{Clock: r.clock, Logger: slog.New(slog.DiscardHandler), Metrics: r.metrics}, sensors)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- drv.Run(ctx, r.sink) }()
	// The pump: each time the poller (or Keep, while the port is away)
	// waits on the clock, move time on by 100ms.
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for r.clock.BlockUntilContext(ctx, 1) == nil {
			r.clock.Advance(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-pumped
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return r
}

func (r *rig) errors(kind string) float64 {
	return testutil.ToFloat64(r.metrics.DriverErrors.WithLabelValues(Name, kind))
}

// waitUntil polls cond with a deadline: the driver does real serial I/O.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func msensor(id string, slave, register int, typ string) config.Sensor {
	return config.Sensor{ID: id, Slave: slave, Register: register, Type: typ, Interval: config.Duration(time.Second)}
}

// Every type and word order, in one block of slave 1: one request per poll.
func TestTypesWordOrdersOneRequest(t *testing.T) {
	lowFloat := msensor("f32_low", 1, 8, TypeFloat32)
	lowFloat.WordOrder = LowFirst
	lowInt := msensor("i32_low", 1, 12, TypeInt32)
	lowInt.WordOrder = LowFirst
	scaled := msensor("temp", 1, 14, TypeInt16)
	scaled.Scale, scaled.Offset, scaled.Unit = 0.1, -5, "C"
	const f12345 = 0x42F6E666 // float32(123.45)
	r := start(t, func(sim *modbustest.Slaves) {
		sim.Set(1, 3, 0, 0xFFFE, 0xFFFF, 0xFFFF, 0xFF85, 0x0001, 0x0002)
		sim.SetFloat32(1, 6, f12345, false)
		sim.SetFloat32(1, 8, f12345, true)
		sim.Set(1, 3, 12, 0xFF85, 0xFFFF) // -123 with the low word first
		sim.Set(1, 3, 14, 235)            // 23.5 - 5
	},
		msensor("i16", 1, 0, TypeInt16),
		msensor("u16", 1, 1, TypeUint16),
		msensor("i32", 1, 2, TypeInt32),
		msensor("u32", 1, 4, TypeUint32),
		msensor("f32", 1, 6, TypeFloat32),
		lowFloat, lowInt, scaled,
	)
	waitUntil(t, "a reading of the last sensor", func() bool { return len(r.sink.series("temp")) > 0 })

	want := map[string]float64{
		"i16": -2, "u16": 65535, "i32": -123, "u32": 65538,
		"f32": float64(float32(123.45)), "f32_low": float64(float32(123.45)), "i32_low": -123, "temp": 18.5,
	}
	for id, v := range want {
		got := r.sink.series(id)
		if len(got) == 0 || got[0].Quality != reading.Good || math.Abs(got[0].Value-v) > 1e-9 {
			t.Errorf("%s = %+v, want %v good", id, got, v)
		}
	}
	if u := r.sink.series("temp")[0].Unit; u != "C" {
		t.Errorf("unit %q", u)
	}
	// Two polls: still one request each for all eight sensors.
	waitUntil(t, "a second poll", func() bool { return len(r.sink.series("temp")) >= 2 })
	// (A request may be on the line whose answer is not yet emitted.)
	if n, polls := r.sim.Seen(1), len(r.sink.series("temp")); n < polls || n > polls+1 {
		t.Errorf("slave saw %d requests for %d polls; want one request per poll", n, polls)
	}
}

func TestCoilsAndDiscretes(t *testing.T) {
	c0 := msensor("door", 4, 0, "")
	c0.Kind = KindCoil
	c9 := msensor("lamp", 4, 9, "")
	c9.Kind = KindCoil
	d3 := msensor("estop", 4, 3, "")
	d3.Kind = KindDiscrete
	in := msensor("flow", 4, 7, TypeUint16)
	in.Kind = KindInput
	r := start(t, func(sim *modbustest.Slaves) {
		sim.Set(4, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)
		sim.Set(4, 2, 3, 1)
		sim.Set(4, 4, 7, 4242)
	}, c0, c9, d3, in)
	waitUntil(t, "readings", func() bool {
		return len(r.sink.series("door")) > 0 && len(r.sink.series("estop")) > 0 && len(r.sink.series("flow")) > 0
	})
	for id, v := range map[string]float64{"door": 1, "lamp": 1, "estop": 1, "flow": 4242} {
		if got := r.sink.series(id)[0]; got.Value != v || got.Quality != reading.Good {
			t.Errorf("%s = %+v, want %v", id, got, v)
		}
	}
}

// A silent slave gets Bad readings and is backed off; the slave beside it
// on the port reads on.
func TestSilentSlaveDoesNotBlockOthers(t *testing.T) {
	r := start(t, func(sim *modbustest.Slaves) {
		sim.Set(1, 3, 0, 7)
		sim.SetMode(2, modbustest.Silent)
	}, msensor("alive", 1, 0, ""), msensor("gone", 2, 0, ""))
	waitUntil(t, "20 good readings of the live slave", func() bool { return r.sink.count("alive", reading.Good) >= 20 })
	good, bad := r.sink.count("alive", reading.Good), r.sink.count("gone", reading.Bad)
	if bad < good-1 || r.sink.count("gone", reading.Good) != 0 {
		t.Errorf("silent slave: %d bad readings for %d polls of its neighbour; want one per interval", bad, good)
	}
	if v := r.sink.last("gone").Value; !math.IsNaN(v) {
		t.Errorf("bad reading value %v, want NaN", v)
	}
	// Backed off: asked (and timed out) only every probeEvery-th interval
	// once dead. Counted on the driver's side: under load the simulator may
	// not have read a request before the driver's flush for the next one
	// discarded it.
	timeouts := int(r.errors("timeout"))
	if maxAsked := deadAfter + (good-deadAfter)/probeEvery + 2; timeouts < deadAfter || timeouts > maxAsked {
		t.Errorf("dead slave timed out %d times in %d intervals; want %d..%d (backed off)", timeouts, good, deadAfter, maxAsked)
	}
	if asked := r.sim.Seen(2); asked > timeouts+1 {
		t.Errorf("slave asked %d times, only %d timeouts counted", asked, timeouts)
	}
	// It comes back: readings are good again within a few intervals.
	r.sim.Set(2, 3, 0, 99)
	r.sim.SetMode(2, modbustest.Answer)
	waitUntil(t, "the slave's return", func() bool { l := r.sink.last("gone"); return l.Quality == reading.Good && l.Value == 99 })
}

func TestCRCErrorCounted(t *testing.T) {
	r := start(t, func(sim *modbustest.Slaves) {
		sim.Set(1, 3, 0, 5)
		sim.SetMode(1, modbustest.BadCRC)
	}, msensor("noisy", 1, 0, ""))
	waitUntil(t, "a CRC error", func() bool { return r.errors("crc") >= 1 })
	if got := r.sink.series("noisy"); got[0].Quality != reading.Bad {
		t.Errorf("reading after a CRC error %+v, want bad", got[0])
	}
	r.sim.SetMode(1, modbustest.Answer)
	waitUntil(t, "a good reading", func() bool { return r.sink.last("noisy").Quality == reading.Good })
	if r.errors("timeout") != 0 {
		t.Errorf("a CRC error counted as a timeout")
	}
}

func TestExceptionCounted(t *testing.T) {
	r := start(t, func(sim *modbustest.Slaves) { sim.SetMode(3, modbustest.Exception) }, msensor("missing", 3, 40, ""))
	waitUntil(t, "two exceptions", func() bool { return r.errors("exception") >= 2 })
	if got := r.sink.series("missing"); got[0].Quality != reading.Bad || !math.IsNaN(got[0].Value) {
		t.Errorf("reading after an exception %+v, want bad NaN", got[0])
	}
	if r.errors("crc") != 0 || r.errors("timeout") != 0 {
		t.Errorf("exception counted as crc/timeout")
	}
}

// The USB adapter is pulled and plugged back: the port is reopened by its
// path and polling resumes.
func TestUnplugReplugResumes(t *testing.T) {
	r := start(t, func(sim *modbustest.Slaves) { sim.Set(1, 3, 0, 0, 100) }, msensor("power", 1, 0, TypeUint32))
	waitUntil(t, "a first reading", func() bool { return r.sink.last("power").Value == 100 })
	r.line.Unplug()
	waitUntil(t, "the outage counted", func() bool { return r.errors("port") == 1 })
	r.sim.Set(1, 3, 0, 0, 200)
	r.line.Plug()
	waitUntil(t, "readings after replug", func() bool { l := r.sink.last("power"); return l.Value == 200 && l.Quality == reading.Good })
	if n := r.errors("port"); n != 1 {
		t.Errorf("port errors %v, want 1 per outage", n)
	}
}

func TestNewRefusesMixedPortSettings(t *testing.T) {
	a := config.Sensor{ID: "a", Driver: Name, Port: "/dev/ttyUSB1", Baud: 19200, Slave: 1}
	b := config.Sensor{ID: "b", Driver: Name, Port: "/dev/ttyUSB1", Baud: 9600, Slave: 2}
	c := config.Sensor{ID: "c", Driver: Name, Port: "/dev/ttyUSB2", Slave: 2}
	_, err := New(drivers.Env{}, []config.Sensor{a, b, c})
	if err == nil || !strings.Contains(err.Error(), "sensor b") || !strings.Contains(err.Error(), "19200") {
		t.Fatalf("New = %v, want the conflict on sensor b", err)
	}
	b.Baud = 0
	a.Baud = 9600
	if _, err := New(drivers.Env{}, []config.Sensor{a, b, c}); err != nil {
		t.Fatalf("a default and the same value written out conflict: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	if _, ok := drivers.Lookup(Name); !ok {
		t.Fatal("modbus not registered")
	}
}
