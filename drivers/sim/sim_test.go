package sim

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/drivers"
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
		panic("sim passed an ack: nothing can resend a simulated reading")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	return nil
}

// series is one sensor's readings.
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

func pressLine(seed int64) []config.Sensor {
	ss := []config.Sensor{
		{ID: "press_running", Signal: Running, Seed: seed},
		{ID: "press_parts", Signal: Parts},
		{ID: "oil_temp", Signal: Temperature},
		{ID: "oil_pressure", Signal: Pressure, Interval: config.Duration(2 * time.Second)},
	}
	for i := range ss {
		ss[i].Driver = Name
		Check(&ss[i], func(field, format string, args ...any) { panic(field) })
	}
	return ss
}

// simulate runs the sensors on a fake clock for d, one second at a time.
func simulate(t *testing.T, sensors []config.Sensor, d time.Duration) (*recordSink, time.Time) {
	t.Helper()
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC))
	drv, err := New(drivers.Env{Clock: clock, Metrics: metrics.New()}, sensors)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sink := &recordSink{}
	done := make(chan error, 1)
	go func() { done <- drv.Run(ctx, sink) }()
	start := clock.Now()
	for elapsed := time.Duration(0); elapsed <= d; elapsed += time.Second {
		// The driver has emitted everything due and waits on its timer.
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal("driver never waited on the clock")
		}
		if elapsed < d {
			clock.Advance(time.Second)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return sink, start
}

func TestReadingsAtInterval(t *testing.T) {
	sink, start := simulate(t, pressLine(7), 10*time.Second)
	for sensor, every := range map[string]time.Duration{"press_running": time.Second, "oil_pressure": 2 * time.Second} {
		rs := sink.series(sensor)
		want := int(10*time.Second/every) + 1 // the first at once
		if len(rs) != want {
			t.Fatalf("%s: %d readings in 10s, want %d", sensor, len(rs), want)
		}
		for i, r := range rs {
			if at := start.Add(time.Duration(i) * every); !r.TS.Equal(at) {
				t.Errorf("%s reading %d at %v, want %v", sensor, i, r.TS, at)
			}
		}
	}
	if u := sink.series("oil_temp")[0].Unit; u != "C" {
		t.Errorf("temperature unit %q, want C", u)
	}
	if u := sink.series("oil_pressure")[0].Unit; u != "bar" {
		t.Errorf("pressure unit %q, want bar", u)
	}
}

func TestPressLine(t *testing.T) {
	for _, seed := range []int64{1, 2, 3, 42, 1234} {
		sink, start := simulate(t, pressLine(seed), 5*time.Minute)
		running := sink.series("press_running")
		parts := sink.series("press_parts")
		temp := sink.series("oil_temp")
		pressure := sink.series("oil_pressure")

		// Running cycles, with stops on both sides of 30s.
		var stops []time.Duration
		var stoppedAt, firstStop time.Time
		for i, r := range running {
			if r.Value != 0 && r.Value != 1 {
				t.Fatalf("seed %d: running = %v", seed, r.Value)
			}
			if i > 0 && running[i-1].Value == 1 && r.Value == 0 {
				stoppedAt = r.TS
				if firstStop.IsZero() {
					firstStop = r.TS
				}
			}
			if i > 0 && running[i-1].Value == 0 && r.Value == 1 && !stoppedAt.IsZero() {
				stops = append(stops, r.TS.Sub(stoppedAt))
			}
		}
		var long, short bool
		for _, s := range stops {
			long = long || s > 30*time.Second
			short = short || s < 30*time.Second
		}
		if len(stops) < 2 || !long || !short {
			t.Errorf("seed %d: stops %v: want several, some longer and some shorter than 30s", seed, stops)
		}
		if first := running[0].Value; first != 1 {
			t.Errorf("seed %d: starts stopped", seed)
		}
		// The demo shows a downtime event (min_downtime 30s) within a minute.
		if len(stops) == 0 || firstStop.Sub(start) > 30*time.Second || stops[0] <= 30*time.Second {
			t.Errorf("seed %d: first stop at %v for %v; want one over 30s starting within 30s", seed, firstStop.Sub(start), stops)
		}

		// Parts rise, and only while running.
		for i := 1; i < len(parts); i++ {
			d := parts[i].Value - parts[i-1].Value
			if d < 0 {
				t.Fatalf("seed %d: parts went down at %v", seed, parts[i].TS.Sub(start))
			}
			if d > 0 && running[i-1].Value == 0 && running[i].Value == 0 {
				t.Errorf("seed %d: parts rose while stopped at %v", seed, parts[i].TS.Sub(start))
			}
		}
		if parts[len(parts)-1].Value < 40 {
			t.Errorf("seed %d: only %v parts in 5 minutes", seed, parts[len(parts)-1].Value)
		}

		// An overheat above 85 C within the first minute, lasting tens of seconds.
		var hotSecs int
		firstHot := time.Duration(-1)
		for _, r := range temp {
			if r.Value > 85 {
				hotSecs++
				if firstHot < 0 {
					firstHot = r.TS.Sub(start)
				}
			}
			if r.Value < 45 || r.Value > 100 {
				t.Errorf("seed %d: oil temperature %v", seed, r.Value)
			}
		}
		if firstHot < 0 || firstHot > time.Minute || hotSecs < 10 {
			t.Errorf("seed %d: first overheat at %v, %ds above 85 C; want within a minute, tens of seconds", seed, firstHot, hotSecs)
		}

		// Pressure is 0 exactly while stopped.
		for _, p := range pressure {
			i := int(p.TS.Sub(start) / time.Second)
			if stopped := running[i].Value == 0; stopped != (p.Value == 0) {
				t.Errorf("seed %d: pressure %v while running=%v at %ds", seed, p.Value, running[i].Value, i)
			}
			if p.Value != 0 && (p.Value < 150 || p.Value > 210) {
				t.Errorf("seed %d: pressure %v bar", seed, p.Value)
			}
		}
	}
}

func TestSeedIsDeterministic(t *testing.T) {
	a, _ := simulate(t, pressLine(99), 90*time.Second)
	b, _ := simulate(t, pressLine(99), 90*time.Second)
	c, _ := simulate(t, pressLine(100), 90*time.Second)
	same := func(x, y *recordSink) bool {
		for _, id := range []string{"press_running", "oil_temp", "oil_pressure", "press_parts"} {
			xs, ys := x.series(id), y.series(id)
			if len(xs) != len(ys) {
				return false
			}
			for i := range xs {
				if xs[i].Value != ys[i].Value {
					return false
				}
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different lines")
	}
	if same(a, c) {
		t.Error("different seeds gave the same line")
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		s    config.Sensor
		want string
	}{
		{config.Sensor{Signal: Running}, ""},
		{config.Sensor{Signal: Pressure, Interval: config.Duration(time.Second)}, ""},
		{config.Sensor{}, "signal"},
		{config.Sensor{Signal: "speed"}, "signal"},
	} {
		var fields []string
		Check(&tc.s, func(field, format string, args ...any) { fields = append(fields, field) })
		if got := strings.Join(fields, " "); got != tc.want {
			t.Errorf("Check(%+v) reported %q, want %q", tc.s, got, tc.want)
		}
		if tc.want == "" && tc.s.Interval == 0 {
			t.Errorf("Check left interval 0")
		}
	}
	if _, ok := drivers.Lookup(Name); !ok {
		t.Fatal("driver sim not registered")
	}
}

func TestNewRefusesTwoLines(t *testing.T) {
	for _, ss := range [][]config.Sensor{
		{{ID: "a", Signal: Running, Seed: 1}, {ID: "b", Signal: Parts, Seed: 2}},
		{{ID: "a", Signal: Running, RunFor: config.Duration(time.Minute)}, {ID: "b", Signal: Parts, RunFor: config.Duration(time.Second)}},
	} {
		if _, err := New(drivers.Env{}, ss); err == nil {
			t.Errorf("New(%+v) accepted two different lines", ss)
		}
	}
	same := []config.Sensor{{ID: "a", Signal: Running, Seed: 3}, {ID: "b", Signal: Parts, Seed: 3, RunFor: config.Duration(time.Minute)}}
	if _, err := New(drivers.Env{}, same); err != nil {
		t.Errorf("New: %v", err)
	}
}
