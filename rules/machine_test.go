package rules

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// machineConfig has the sensors press_running (no interval: stale after
// 30s), oil_temp (interval 20s: stale after 60s) and press_temp.
func machineConfig(machines []config.Machine, rules ...config.Rule) *config.Config {
	return &config.Config{
		File: "t.yaml",
		Sensors: []config.Sensor{
			{ID: "press_running", Driver: "sim"},
			{ID: "oil_temp", Driver: "sim", Interval: config.Duration(20 * time.Second)},
			{ID: "press_temp", Driver: "sim"},
		},
		Machines: machines,
		Rules:    rules,
	}
}

func newMachineEngine(t testing.TB, start time.Time, machines []config.Machine, rules ...config.Rule) (*Engine, *metrics.Set) {
	t.Helper()
	m := metrics.New()
	e, err := New(machineConfig(machines, rules...), m, start)
	if err != nil {
		t.Fatal(err)
	}
	return e, m
}

func press(minDowntime time.Duration) config.Machine {
	return config.Machine{Name: "press", Running: "press_running == 1", MinDowntime: config.Duration(minDowntime)}
}

func down(m string, start, now int) reading.Event {
	return reading.Event{Machine: m, State: reading.StateDown, Start: at(start), Duration: time.Duration(now-start) * time.Second}
}

func up(m string, start, end int) reading.Event {
	return reading.Event{Machine: m, State: reading.StateUp, Start: at(start), End: at(end), Duration: time.Duration(end-start) * time.Second}
}

// mstep is one call: Observe when sensor is set, else Tick; then the
// events TakeEvents returns and, if set, the machine's state.
type mstep struct {
	at     int
	sensor string
	value  float64
	want   []reading.Event
	state  string
	since  int
}

func runMachineSteps(t *testing.T, e *Engine, steps []mstep) {
	t.Helper()
	for _, s := range steps {
		if s.sensor != "" {
			e.Observe(reading.Reading{Sensor: s.sensor, Value: s.value}, at(s.at))
		} else {
			e.Tick(at(s.at))
		}
		if got := e.TakeEvents(); !reflect.DeepEqual(got, s.want) {
			t.Errorf("at %d (%q=%v): events\n got  %+v\n want %+v", s.at, s.sensor, s.value, got, s.want)
		}
		if s.state != "" {
			ms := e.Machines(at(s.at))[0]
			if ms.State != s.state || !ms.Since.Equal(at(s.since)) {
				t.Errorf("at %d: state %s since %v, want %s since %v", s.at, ms.State, ms.Since, s.state, at(s.since))
			}
		}
	}
}

func TestDowntimeEvents(t *testing.T) {
	const r = "press_running"
	tests := []struct {
		name    string
		machine config.Machine
		steps   []mstep
	}{
		{
			name:    "a stop longer than min_downtime: down at start+min_downtime, then up",
			machine: press(30 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1, state: "up", since: 0},
				{at: 10, sensor: r, value: 0, state: "down", since: 10},
				{at: 20, sensor: r, value: 0},
				{at: 39},
				{at: 40, want: []reading.Event{down("press", 10, 40)}},
				{at: 41},
				{at: 45, sensor: r, value: 0},
				{at: 55, sensor: r, value: 1, want: []reading.Event{up("press", 10, 55)}, state: "up", since: 55},
				{at: 56},
				{at: 60, sensor: r, value: 1},
			},
		},
		{
			name:    "a short stop is no event",
			machine: press(30 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1},
				{at: 10, sensor: r, value: 0},
				{at: 39},
				{at: 39, sensor: r, value: 1, state: "up", since: 39},
				{at: 70},
			},
		},
		{
			name:    "a stop of exactly min_downtime is an event",
			machine: press(10 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1},
				{at: 5, sensor: r, value: 0},
				{at: 15, sensor: r, value: 1, want: []reading.Event{down("press", 5, 15), up("press", 5, 15)}},
			},
		},
		{
			name:    "no evaluation at start+min_downtime: down right before up",
			machine: press(30 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1},
				{at: 10, sensor: r, value: 0},
				{at: 50, sensor: r, value: 1, want: []reading.Event{down("press", 10, 50), up("press", 10, 50)}},
			},
		},
		{
			name:    "machine starting down",
			machine: press(30 * time.Second),
			steps: []mstep{
				{at: 0, state: "unknown", since: 0},
				{at: 5, sensor: r, value: 0, state: "down", since: 5},
				{at: 20, sensor: r, value: 0},
				{at: 35, want: []reading.Event{down("press", 5, 35)}},
				{at: 40, sensor: r, value: 1, want: []reading.Event{up("press", 5, 40)}},
			},
		},
		{
			name:    "two stops, one event each",
			machine: press(10 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 0},
				{at: 10, want: []reading.Event{down("press", 0, 10)}},
				{at: 12, sensor: r, value: 1, want: []reading.Event{up("press", 0, 12)}},
				{at: 20, sensor: r, value: 0},
				{at: 29},
				{at: 30, want: []reading.Event{down("press", 20, 30)}},
				{at: 31, sensor: r, value: 1, want: []reading.Event{up("press", 20, 31)}},
			},
		},
		{
			name:    "down then stale: the stop stays open and its clock runs",
			machine: press(60 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1},
				{at: 10, sensor: r, value: 0},
				{at: 40, state: "down", since: 10},
				{at: 41, state: "unknown", since: 41},
				{at: 70, want: []reading.Event{down("press", 10, 70)}, state: "unknown", since: 41},
				{at: 80, sensor: r, value: 0, state: "down", since: 80},
				{at: 90, sensor: r, value: 1, want: []reading.Event{up("press", 10, 90)}},
			},
		},
		{
			name:    "up then unknown then down: the stop starts when down is seen",
			machine: press(10 * time.Second),
			steps: []mstep{
				{at: 0, sensor: r, value: 1},
				{at: 31, state: "unknown", since: 31},
				{at: 50, sensor: r, value: 0, state: "down", since: 50},
				{at: 60, want: []reading.Event{down("press", 50, 60)}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newMachineEngine(t, t0, []config.Machine{tt.machine})
			runMachineSteps(t, e, tt.steps)
		})
	}
}

func TestMachineUnknown(t *testing.T) {
	t.Run("no data", func(t *testing.T) {
		e, _ := newMachineEngine(t, t0, []config.Machine{press(0)})
		runMachineSteps(t, e, []mstep{
			{at: 0, state: "unknown", since: 0},
			{at: 100, state: "unknown", since: 0},
			{at: 100, sensor: "press_temp", value: 1, state: "unknown", since: 0}, // not its sensor
		})
	})
	t.Run("stale after 30s without interval", func(t *testing.T) {
		e, _ := newMachineEngine(t, t0, []config.Machine{press(0)})
		runMachineSteps(t, e, []mstep{
			{at: 0, sensor: "press_running", value: 1, state: "up", since: 0},
			{at: 30, state: "up", since: 0},
			{at: 31, state: "unknown", since: 31},
			{at: 32, sensor: "press_running", value: 1, state: "up", since: 32},
		})
	})
	t.Run("bad and NaN readings leave it stale", func(t *testing.T) {
		e, _ := newMachineEngine(t, t0, []config.Machine{press(0)})
		e.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(0))
		e.Observe(reading.Reading{Sensor: "press_running", Value: 1, Quality: reading.Bad}, at(20))
		e.Observe(reading.Reading{Sensor: "press_running", Value: math.NaN()}, at(25))
		e.Tick(at(31))
		if got := e.Machines(at(31))[0].State; got != "unknown" {
			t.Errorf("state %s, want unknown", got)
		}
	})
	t.Run("stale after 3 × interval", func(t *testing.T) {
		m := config.Machine{Name: "oven", Running: "oil_temp > 50 && press_running == 1"}
		e, _ := newMachineEngine(t, t0, []config.Machine{m})
		e.Observe(reading.Reading{Sensor: "oil_temp", Value: 60}, at(0))
		e.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(50))
		for _, c := range []struct {
			at    int
			state string
		}{{50, "up"}, {60, "up"}, {61, "unknown"}} {
			e.Tick(at(c.at))
			if got := e.Machines(at(c.at))[0].State; got != c.state {
				t.Errorf("at %d: state %s, want %s", c.at, got, c.state)
			}
		}
	})
	t.Run("history-only sensors are not stale: age() decides", func(t *testing.T) {
		m := config.Machine{Name: "press", Running: "age(press_running) < 60"}
		e, _ := newMachineEngine(t, t0, []config.Machine{m})
		e.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(0))
		for _, c := range []struct {
			at    int
			state string
		}{{59, "up"}, {60, "down"}} {
			e.Tick(at(c.at))
			if got := e.Machines(at(c.at))[0].State; got != c.state {
				t.Errorf("at %d: state %s, want %s", c.at, got, c.state)
			}
		}
	})
}

func TestMachinesToday(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	day := func(d, h, m, s int) time.Time { return time.Date(2026, 3, d, h, m, s, 0, cet) }
	type check struct {
		now   time.Time
		down  time.Duration
		stops int
		avail float64
	}
	type op struct {
		now     time.Time
		running float64 // -1: Tick
	}
	tests := []struct {
		name   string
		ops    []op
		checks []check
	}{
		{
			name: "availability since the first observation",
			ops: []op{
				{day(2, 8, 0, 0), 1},
				{day(2, 9, 0, 0), 0}, {day(2, 9, 30, 0), 1}, // 30m, an event
				{day(2, 10, 0, 0), 0}, {day(2, 10, 0, 10), 1}, // 10s, no event
				{day(2, 11, 0, 0), 0}, // open
			},
			checks: []check{
				{day(2, 11, 0, 0), 30*time.Minute + 10*time.Second, 1, 1 - float64(1810)/float64(3*3600)},
				{day(2, 12, 0, 0), 90*time.Minute + 10*time.Second, 1, 1 - float64(5410)/float64(4*3600)},
			},
		},
		{
			name: "the day rolls over at local midnight",
			ops: []op{
				{day(2, 22, 0, 0), 1},
				{day(2, 23, 0, 0), 0},
				{day(2, 23, 1, 0), -1}, // the down event
				{day(2, 23, 59, 59), -1},
			},
			checks: []check{
				{day(2, 23, 30, 0), 30 * time.Minute, 1, 1 - 30.0/90},
				// Machines on a later day shows that day without rolling.
				{day(3, 0, 10, 0), 10 * time.Minute, 0, 0},
				{day(2, 23, 30, 0), 30 * time.Minute, 1, 1 - 30.0/90},
			},
		},
		{
			name: "after midnight: the open stop counts from midnight, then closes",
			ops: []op{
				{day(2, 22, 0, 0), 1},
				{day(2, 23, 0, 0), 0},
				{day(2, 23, 1, 0), -1},
				{day(3, 0, 10, 0), -1},
				{day(3, 0, 20, 0), 1},
			},
			checks: []check{
				{day(3, 0, 30, 0), 20 * time.Minute, 0, 1 - 20.0/30},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newMachineEngine(t, tt.ops[0].now, []config.Machine{press(time.Minute)})
			for _, o := range tt.ops {
				if o.running < 0 {
					e.Tick(o.now)
				} else {
					e.Observe(reading.Reading{Sensor: "press_running", Value: o.running}, o.now)
				}
			}
			for _, c := range tt.checks {
				ms := e.Machines(c.now)[0]
				if ms.DowntimeToday != c.down || ms.StopsToday != c.stops || !near(ms.Availability, c.avail) {
					t.Errorf("Machines(%v) = downtime %v, stops %d, availability %v; want %v, %d, %v",
						c.now, ms.DowntimeToday, ms.StopsToday, ms.Availability, c.down, c.stops, c.avail)
				}
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestMachinesStatus(t *testing.T) {
	e, _ := newMachineEngine(t, t0, []config.Machine{press(10 * time.Second)})
	e.Observe(reading.Reading{Sensor: "press_running", Value: 0}, at(1))
	got := e.Machines(at(5))
	want := []MachineStatus{{Name: "press", State: "down", Since: at(1), StopStart: at(1), DowntimeToday: 4 * time.Second,
		Availability: 0, Running: "press_running == 1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Machines\n got  %+v\n want %+v", got, want)
	}
	if got, want := e.Sensors(), []string{"press_running"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sensors() = %q, want %q", got, want)
	}
}

func TestSnapshotRestore(t *testing.T) {
	hot := ruleCfg("hot", "press_temp > 80", 0, "")
	oil := ruleCfg("oil", "oil_temp > 50", 0, "")
	slow := ruleCfg("slow", "oil_temp > 40", time.Minute, "")
	old := config.Machine{Name: "old", Running: "press_running == 1"}

	a, _ := newMachineEngine(t, t0, []config.Machine{press(30 * time.Second), old}, hot, oil, slow)
	a.Observe(reading.Reading{Sensor: "press_temp", Value: 90}, at(0))
	a.Observe(reading.Reading{Sensor: "oil_temp", Value: 60}, at(0))
	a.Observe(reading.Reading{Sensor: "press_running", Value: 0}, at(10))
	a.Tick(at(40))
	if got, want := a.TakeEvents(), []reading.Event{down("press", 10, 40), down("old", 10, 40)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("before snapshot: events %+v, want %+v", got, want)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	// The new config changes oil's expr and drops the machine "old".
	oil2 := ruleCfg("oil", "oil_temp > 55", 0, "")
	b, m := newMachineEngine(t, at(50), []config.Machine{press(30 * time.Second)}, hot, oil2, slow)
	if err := b.Restore(snap, at(50)); err != nil {
		t.Fatal(err)
	}
	byRule := map[string]Status{}
	for _, s := range b.Alerts() {
		byRule[s.Rule] = s
	}
	if s := byRule["hot"]; s.State != "firing" || !s.FiredAt.Equal(at(0)) || !s.Since.Equal(at(0)) {
		t.Errorf("hot restored as %s since %v fired %v, want firing since and fired at %v", s.State, s.Since, s.FiredAt, at(0))
	}
	if s := byRule["oil"]; s.State != "inactive" {
		t.Errorf("oil (expr changed) restored as %s, want inactive", s.State)
	}
	if s := byRule["slow"]; s.State != "pending" || !s.Since.Equal(at(0)) {
		t.Errorf("slow restored as %s since %v, want pending since %v", s.State, s.Since, at(0))
	}
	if got := testutil.ToFloat64(m.AlertsFiring); got != 1 {
		t.Errorf("alerts firing gauge = %v, want 1", got)
	}
	ms := b.Machines(at(50))
	if len(ms) != 1 || ms[0].State != "down" || !ms[0].StopStart.Equal(at(10)) || ms[0].StopsToday != 1 || ms[0].DowntimeToday != 40*time.Second {
		t.Errorf("machines restored as %+v", ms)
	}

	// No data yet: the firing alert is held, not resolved.
	if got := b.Tick(at(51)); len(got) != 0 {
		t.Errorf("tick after restore: %+v, want nothing", got)
	}
	if got := b.Observe(reading.Reading{Sensor: "press_temp", Value: 91}, at(52)); len(got) != 0 {
		t.Errorf("hot still true after restore: %+v, want no new transition", got)
	}
	if got := b.Observe(reading.Reading{Sensor: "oil_temp", Value: 60}, at(52)); len(got) != 1 || got[0].Rule != "oil" || !got[0].Since.Equal(at(52)) {
		t.Errorf("oil after its reset: %+v, want it firing anew since %v", got, at(52))
	}
	if got := b.Tick(at(60)); len(got) != 1 || got[0].Rule != "slow" || !got[0].Since.Equal(at(0)) {
		t.Errorf("slow after restore: %+v, want firing at 60 since %v", got, at(0))
	}
	if got := b.Observe(reading.Reading{Sensor: "press_temp", Value: 70}, at(61)); len(got) != 1 || got[0].State != "resolved" {
		t.Errorf("hot false after restore: %+v, want resolved", got)
	}
	if got := b.TakeEvents(); len(got) != 0 {
		t.Errorf("events before the machine runs: %+v, want none (down is not repeated)", got)
	}
	b.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(70))
	if got, want := b.TakeEvents(), []reading.Event{up("press", 10, 70)}; !reflect.DeepEqual(got, want) {
		t.Errorf("after restore: events %+v, want %+v", got, want)
	}
	if ms := b.Machines(at(70))[0]; ms.DowntimeToday != 60*time.Second || ms.StopsToday != 1 {
		t.Errorf("after restore: downtime %v, stops %d; want 60s, 1", ms.DowntimeToday, ms.StopsToday)
	}

	// Restored on another day: today's figures start afresh, the open stop continues.
	c, _ := newMachineEngine(t, at(50), []config.Machine{press(30 * time.Second)})
	tomorrow := at(0).Add(24 * time.Hour)
	if err := c.Restore(snap, tomorrow); err != nil {
		t.Fatal(err)
	}
	c.Observe(reading.Reading{Sensor: "press_running", Value: 1}, tomorrow)
	if got, want := c.TakeEvents(), []reading.Event{{Machine: "press", State: "up", Start: at(10), End: tomorrow, Duration: tomorrow.Sub(at(10))}}; !reflect.DeepEqual(got, want) {
		t.Errorf("next day: events %+v, want %+v", got, want)
	}
	if ms := c.Machines(tomorrow)[0]; ms.StopsToday != 0 || ms.DowntimeToday != 0 || ms.Availability != 1 {
		t.Errorf("next day: %+v, want no downtime, no stops, availability 1", ms)
	}

	// Round trip of b's own snapshot, and bad input.
	snap2, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := newMachineEngine(t, at(70), []config.Machine{press(30 * time.Second)}, hot, oil2, slow)
	if err := d.Restore(snap2, at(70)); err != nil {
		t.Fatal(err)
	}
	if got, want := d.Alerts(), b.Alerts(); !reflect.DeepEqual(statesOf(got), statesOf(want)) {
		t.Errorf("round trip alerts %v, want %v", statesOf(got), statesOf(want))
	}
	for _, bad := range []string{"", "{", `{"version":2}`, `{"version":1,"rules":[{"name":"hot","expr":"press_temp > 80","state":"on"}]}`} {
		if err := d.Restore([]byte(bad), at(70)); err == nil {
			t.Errorf("Restore(%q) = nil, want an error", bad)
		}
	}
}

func statesOf(ss []Status) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Rule+"="+s.State+"@"+s.Since.String())
	}
	return out
}

func TestMachinesConcurrent(t *testing.T) {
	e, _ := newMachineEngine(t, t0, []config.Machine{press(time.Second)}, ruleCfg("hot", "press_temp > 80", 0, ""))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 500 {
			_ = e.Machines(at(i))
			if _, err := e.Snapshot(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := range 500 {
		e.Observe(reading.Reading{Sensor: "press_running", Value: float64(i / 10 % 2)}, at(i))
		e.Tick(at(i))
		e.TakeEvents()
	}
	<-done
}
