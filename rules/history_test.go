package rules

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/expr-lang/expr/parser"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

// historyValue evaluates one history call such as `avg(press_temp, "5s")`
// at now, through the same validation compile uses. missing reports that
// there was no data (the rule would be false).
func historyValue(t *testing.T, e *Engine, call string, now time.Time) (v float64, missing bool) {
	t.Helper()
	tree, err := parser.Parse(call)
	if err != nil {
		t.Fatal(err)
	}
	q, isHistory, msg := e.sensors.historyCall(tree.Node, nil)
	if !isHistory || msg != "" || q.sensor < 0 {
		t.Fatalf("%s: not a valid history call: %q", call, msg)
	}
	e.hist.now = now
	e.hist.missing = false
	v = e.hist.eval(q)
	return v, e.hist.missing
}

type obs struct {
	at      int
	sensor  string
	value   float64
	quality reading.Quality
}

type probe struct {
	at      int
	call    string
	want    float64
	missing bool // want no data: the rule is not firing
}

func TestHistoryFunctions(t *testing.T) {
	tests := []struct {
		name   string
		obs    []obs
		probes []probe
	}{
		{
			name: "age before, at and after the first reading",
			obs: []obs{
				{at: 7, sensor: "press_temp", value: 1},
				{at: 12, sensor: "press_temp", value: 2, quality: reading.Bad},       // not a reading for age()
				{at: 12, sensor: "press_temp", value: math.NaN()},                    // nor this
				{at: 15, sensor: "press_temp", value: 3, quality: reading.Uncertain}, // uncertain is a value
			},
			probes: []probe{
				{at: 0, call: "age(press_temp)", want: 0}, // at the gateway's start
				{at: 5, call: "age(press_temp)", want: 5}, // not yet seen: since start
				{at: 7, call: "age(press_temp)", want: 0},
				{at: 10, call: "age(press_temp)", want: 3},
				{at: 14, call: "age(press_temp)", want: 7},
				{at: 16, call: "age(press_temp)", want: 1},
				{at: 16, call: "age(oil_temp)", want: 16},
			},
		},
		{
			name: "avg, min, max with points leaving the window",
			obs: []obs{
				{at: 0, sensor: "press_temp", value: 10},
				{at: 2, sensor: "press_temp", value: 20},
				{at: 4, sensor: "press_temp", value: 30},
				{at: 6, sensor: "press_temp", value: 40},
				{at: 6, sensor: "press_temp", value: 1, quality: reading.Bad}, // not recorded
			},
			probes: []probe{
				{at: 6, call: `avg(press_temp, "10s")`, want: 25},
				{at: 6, call: `min(press_temp, "10s")`, want: 10},
				{at: 6, call: `max(press_temp, "10s")`, want: 40},
				{at: 6, call: `avg(press_temp, "5s")`, want: 30},
				{at: 5, call: `avg(press_temp, "5s")`, want: 25}, // (0s, 5s]: the point at 0 is out
				{at: 7, call: `avg(press_temp, "5s")`, want: 35},
				{at: 7, call: `min(press_temp, "5s")`, want: 30},
				{at: 7, call: `max(press_temp, "5s")`, want: 40},
				{at: 10, call: `avg(press_temp, "5s")`, want: 40},
				{at: 11, call: `avg(press_temp, "5s")`, missing: true},
				{at: 11, call: `min(press_temp, "5s")`, missing: true},
				{at: 11, call: `max(press_temp, "5s")`, missing: true},
				{at: 6, call: `avg(press_temp, "1500ms")`, want: 40},
				{at: 6, call: `avg(oil_temp, "1h")`, missing: true}, // never seen
			},
		},
		{
			name: "rate of a counter with a reset, delta",
			obs: []obs{
				{at: 0, sensor: "press_temp", value: 100},
				{at: 10, sensor: "press_temp", value: 120},
				{at: 20, sensor: "press_temp", value: 10}, // reset: counted up from 0 to 10
				{at: 40, sensor: "press_temp", value: 50},
			},
			probes: []probe{
				{at: 40, call: `rate(press_temp, "1m")`, want: 70.0 / 40}, // 20 + 10 + 40 over 40 s
				{at: 40, call: `delta(press_temp, "1m")`, want: -50},      // a gauge's last minus first
				{at: 40, call: `rate(press_temp, "25s")`, want: 2},        // 10 -> 50 over 20 s
				{at: 40, call: `delta(press_temp, "25s")`, want: 40},
				{at: 10, call: `rate(press_temp, "1m")`, want: 2},
				{at: 10, call: `delta(press_temp, "1m")`, want: 20},
				{at: 5, call: `rate(press_temp, "1m")`, missing: true}, // one point: no rate
				{at: 5, call: `delta(press_temp, "1m")`, missing: true},
				{at: 55, call: `rate(press_temp, "20s")`, missing: true},
			},
		},
		{
			name: "changes",
			obs: []obs{
				{at: 0, sensor: "press_running", value: 1},
				{at: 1, sensor: "press_running", value: 1},
				{at: 2, sensor: "press_running", value: 0},
				{at: 3, sensor: "press_running", value: 0},
				{at: 4, sensor: "press_running", value: 1},
			},
			probes: []probe{
				{at: 4, call: `changes(press_running, "10s")`, want: 2},
				{at: 4, call: `changes(press_running, "2s")`, want: 1}, // (2s, 4s]: 0, 1
				{at: 5, call: `changes(press_running, "1s")`, missing: true},
				{at: 4, call: `changes(press_running, "1s")`, want: 0}, // one point, no change
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A rule per call, so that each window is sized as in use.
			var rules []config.Rule
			for i, p := range tt.probes {
				rules = append(rules, ruleCfg("r"+string(rune('a'+i)), p.call+" > -1e300", 0, ""))
			}
			e, _ := newEngine(t, rules...)
			// Readings up to each probe's time, in time order, as a
			// pipeline would: probes may look back, not forward.
			obs := tt.obs
			for _, p := range tt.probes {
				for len(obs) > 0 && obs[0].at <= p.at {
					o := obs[0]
					obs = obs[1:]
					e.Observe(reading.Reading{Sensor: o.sensor, Value: o.value, Quality: o.quality}, at(o.at))
				}
				v, missing := historyValue(t, e, p.call, at(p.at))
				if missing != p.missing || !missing && v != p.want {
					t.Errorf("%s at %ds = %v (missing %v), want %v (missing %v)", p.call, p.at, v, missing, p.want, p.missing)
				}
			}
		})
	}
}

func TestHistoryRing(t *testing.T) {
	t.Run("window bigger than the cap keeps the newest points", func(t *testing.T) {
		e, _ := newEngine(t, ruleCfg("r", `avg(press_temp, "1h") > 0`, 0, ""))
		r := e.hist.rings[e.sensors.index["press_temp"]]
		r.max, r.first = 4, 2
		for i := range 10 {
			e.Observe(reading.Reading{Sensor: "press_temp", Value: float64(i + 1)}, at(i))
		}
		if r.n != 4 || len(r.ts) != 4 || r.dropped != 6 {
			t.Errorf("ring holds %d of capacity %d, dropped %d; want 4 of 4, dropped 6", r.n, len(r.ts), r.dropped)
		}
		for call, want := range map[string]float64{
			`avg(press_temp, "1h")`:   8.5, // 7 8 9 10
			`min(press_temp, "1h")`:   7,
			`max(press_temp, "1h")`:   10,
			`delta(press_temp, "1h")`: 3,
		} {
			if v, missing := historyValue(t, e, call, at(9)); missing || v != want {
				t.Errorf("%s = %v (missing %v), want %v", call, v, missing, want)
			}
		}
	})
	t.Run("sized from the largest window, old points evicted", func(t *testing.T) {
		e, _ := newEngine(t,
			ruleCfg("a", `avg(press_temp, "5s") > 0`, 0, ""),
			ruleCfg("b", `max(press_temp, "3s") > 0`, 0, ""),
			ruleCfg("c", `age(oil_temp) > 5 || oil_temp > 1`, 0, ""),
		)
		if r := e.hist.rings[e.sensors.index["oil_temp"]]; r != nil {
			t.Error("a sensor no window names has a ring")
		}
		r := e.hist.rings[e.sensors.index["press_temp"]]
		if r.keep != int64(5*time.Second) {
			t.Errorf("keep = %v, want 5s", time.Duration(r.keep))
		}
		for i := range 1000 {
			e.Observe(reading.Reading{Sensor: "press_temp", Value: float64(i)}, at(i))
		}
		if r.n != 5 || len(r.ts) > 16 {
			t.Errorf("ring holds %d points in capacity %d; want 5 (995..999 s) in at most 16", r.n, len(r.ts))
		}
		if v, _ := historyValue(t, e, `avg(press_temp, "5s")`, at(999)); v != 997 {
			t.Errorf("avg = %v, want 997", v)
		}
	})
	t.Run("first allocation from the sensor's interval", func(t *testing.T) {
		c := &config.Config{File: "t.yaml",
			Sensors: []config.Sensor{{ID: "oven", Driver: "sim", Interval: config.Duration(100 * time.Millisecond)}},
			Rules:   []config.Rule{{Name: "r", Expr: `avg(oven, "10s") > 200`}},
		}
		e, err := New(c, nil, t0)
		if err != nil {
			t.Fatal(err)
		}
		e.Observe(reading.Reading{Sensor: "oven", Value: 1}, t0)
		if r := e.hist.rings[0]; len(r.ts) != 102 {
			t.Errorf("first capacity %d, want 102 (10 s at 100 ms, +2)", len(r.ts))
		}
	})
}

// run plays steps (an Observe when sensor is set, else a Tick) and checks
// each step's transitions and the metrics they leave.
func run(t *testing.T, rules []config.Rule, steps []step) {
	t.Helper()
	e, m := newEngine(t, rules...)
	var fired, resolved int
	for i, s := range steps {
		var got []reading.Alert
		if s.sensor != "" {
			got = e.Observe(reading.Reading{Sensor: s.sensor, TS: at(s.at), Value: s.value, Quality: s.quality}, at(s.at))
		} else {
			got = e.Tick(at(s.at))
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d (t=%ds):\n got %+v\nwant %+v", i, s.at, got, s.want)
		}
		for _, a := range s.want {
			if a.State == reading.StateFiring {
				fired++
			} else {
				resolved++
			}
		}
	}
	if g := testutil.ToFloat64(m.AlertsFiring); g != float64(fired-resolved) {
		t.Errorf("alerts firing = %v, want %d", g, fired-resolved)
	}
}

func TestHistoryRules(t *testing.T) {
	const stale = "press_stale"
	staleMsg := func(v string) string { return "press_stale: age(press_temp) > 30 (value " + v + ")" }
	tests := []struct {
		name  string
		rules []config.Rule
		steps []step
	}{
		{
			name:  "age fires through Tick with no readings at all",
			rules: []config.Rule{ruleCfg(stale, "age(press_temp) > 30", 0, "")},
			steps: []step{
				{at: 0},
				{at: 30},
				{at: 31, want: []reading.Alert{alert(stale, "firing", 0, 31, 31, staleMsg("0"))}},
				{at: 32},
				// A reading ends it, and its own age starts a new episode.
				{at: 40, sensor: "press_temp", value: 5, want: []reading.Alert{alert(stale, "resolved", 5, 31, 40, staleMsg("5"))}},
				{at: 70},
				{at: 71, want: []reading.Alert{alert(stale, "firing", 5, 71, 71, staleMsg("5"))}},
			},
		},
		{
			name: "age with for:, and the message fields",
			rules: []config.Rule{ruleCfg(stale, "age(press_temp) > 30", 10*time.Second,
				"{{ .Sensor }} silent, value {{ .Value }}, for {{ .Duration }}, line {{ .Labels.line }}")},
			steps: []step{
				{at: 31},
				{at: 40},
				{at: 41, want: []reading.Alert{alert(stale, "firing", 0, 31, 41, "press_temp silent, value 0, for 10s, line l1")}},
				{at: 50, sensor: "press_temp", value: 3, want: []reading.Alert{alert(stale, "resolved", 3, 31, 50, "press_temp silent, value 3, for 19s, line l1")}},
			},
		},
		{
			name:  "a window that empties resolves: no data is not firing",
			rules: []config.Rule{ruleCfg("hot", `avg(press_temp, "10s") > 80`, 0, "{{ .Value }}")},
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90, want: []reading.Alert{alert("hot", "firing", 90, 0, 0, "90")}},
				{at: 5, sensor: "press_temp", value: 100},
				{at: 9},
				{at: 10}, // (0s, 10s] holds only 100
				{at: 14},
				{at: 15, want: []reading.Alert{alert("hot", "resolved", 100, 0, 15, "100")}}, // empty
			},
		},
		{
			name:  "no data even where NaN would compare true",
			rules: []config.Rule{ruleCfg("x", `avg(press_temp, "10s") != 5 || !(rate(oil_temp, "1m") > 1)`, 0, "")},
			steps: []step{
				{at: 0},
				{at: 1, sensor: "oil_temp", value: 1},
				{at: 2, sensor: "press_temp", value: 5},
				{at: 3},
			},
		},
		{
			name:  "plain use next to a history function still needs a value",
			rules: []config.Rule{ruleCfg("x", `age(press_temp) < 100 && press_temp > -1`, 0, "{{ .Value }}")},
			steps: []step{
				{at: 0},
				{at: 1, sensor: "press_temp", value: 1, want: []reading.Alert{alert("x", "firing", 1, 1, 1, "1")}},
			},
		},
		{
			name:  "rate of a counter over a tick",
			rules: []config.Rule{ruleCfg("slow", `rate(press_running, "10s") < 0.5`, 0, "{{ .Value }}")},
			steps: []step{
				{at: 0, sensor: "press_running", value: 0},
				{at: 5, sensor: "press_running", value: 5},
				{at: 10, sensor: "press_running", value: 10}, // (0s, 10s]: 5 parts in 5 s
				{at: 14},
				{at: 16, sensor: "press_running", value: 11, want: []reading.Alert{alert("slow", "firing", 11, 16, 16, "11")}}, // 1 in 6 s
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, tt.rules, tt.steps) })
	}
}

func TestClearAndKeepFiringFor(t *testing.T) {
	const hot = "hot"
	hyst := ruleCfg(hot, "press_temp > 80", 0, "{{ .Value }}")
	hyst.Clear = "press_temp < 75"
	otherClear := ruleCfg(hot, "press_temp > 80", 0, "{{ .Value }}")
	otherClear.Clear = "oil_temp < 50"
	keep := ruleCfg(hot, "press_temp > 80", 0, "{{ .Value }}")
	keep.KeepFiringFor = config.Duration(10 * time.Second)
	both := hyst
	both.KeepFiringFor = config.Duration(5 * time.Second)
	pend := ruleCfg(hot, "press_temp > 80", 10*time.Second, "{{ .Value }}")
	pend.Clear = "press_temp < 75"
	pend.KeepFiringFor = config.Duration(time.Minute)
	tests := []struct {
		name  string
		rule  config.Rule
		steps []step
	}{
		{
			name: "clear hysteresis: fires > 80, holds at 78, resolves at 74",
			rule: hyst,
			steps: []step{
				{at: 0, sensor: "press_temp", value: 81, want: []reading.Alert{alert(hot, "firing", 81, 0, 0, "81")}},
				{at: 1, sensor: "press_temp", value: 78},
				{at: 2},
				{at: 3, sensor: "press_temp", value: 75},
				{at: 4, sensor: "press_temp", value: 85},
				{at: 5, sensor: "press_temp", value: 74, want: []reading.Alert{alert(hot, "resolved", 74, 0, 5, "74")}},
				{at: 6, sensor: "press_temp", value: 78}, // below expr: inactive, not firing
				{at: 7, sensor: "press_temp", value: 81, want: []reading.Alert{alert(hot, "firing", 81, 7, 7, "81")}},
			},
		},
		{
			name: "a clear over another sensor resolves on that sensor's reading",
			rule: otherClear,
			steps: []step{
				{at: 0, sensor: "oil_temp", value: 60},
				{at: 1, sensor: "press_temp", value: 90, want: []reading.Alert{alert(hot, "firing", 90, 1, 1, "90")}},
				{at: 2, sensor: "press_temp", value: 70},
				{at: 3, sensor: "oil_temp", value: 40, want: []reading.Alert{alert(hot, "resolved", 70, 1, 3, "70")}},
			},
		},
		{
			name: "keep_firing_for under flapping: short gaps emit nothing, a long one resolves once",
			rule: keep,
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90, want: []reading.Alert{alert(hot, "firing", 90, 0, 0, "90")}},
				{at: 2, sensor: "press_temp", value: 70},
				{at: 5},
				{at: 11}, // 9 s cleared
				{at: 11, sensor: "press_temp", value: 90},
				{at: 12, sensor: "press_temp", value: 70}, // the count starts again
				{at: 15, sensor: "press_temp", value: 91},
				{at: 16, sensor: "press_temp", value: 60},
				{at: 25},
				{at: 26, want: []reading.Alert{alert(hot, "resolved", 60, 0, 26, "60")}},
				{at: 27},
				{at: 40},
			},
		},
		{
			name: "clear and keep_firing_for: keep counts from clear turning true",
			rule: both,
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90, want: []reading.Alert{alert(hot, "firing", 90, 0, 0, "90")}},
				{at: 1, sensor: "press_temp", value: 70},
				{at: 3, sensor: "press_temp", value: 78}, // not cleared any more: keep stops
				{at: 10},
				{at: 11, sensor: "press_temp", value: 70},
				{at: 15},
				{at: 16, want: []reading.Alert{alert(hot, "resolved", 70, 0, 16, "70")}},
			},
		},
		{
			name: "pending is not held by clear or keep_firing_for",
			rule: pend,
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90},
				{at: 5, sensor: "press_temp", value: 78},
				{at: 10},
				{at: 20},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, []config.Rule{tt.rule}, tt.steps) })
	}
}
