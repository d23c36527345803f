package rules

import (
	"bytes"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

var t0 = time.Date(2026, 3, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// newEngine builds an engine over the sensors press_temp, oil_temp,
// press_running and scale_kg (which no test rule names).
func newEngine(t testing.TB, rules ...config.Rule) (*Engine, *metrics.Set) {
	t.Helper()
	c := &config.Config{File: "t.yaml", Rules: rules}
	for _, id := range []string{"press_temp", "oil_temp", "press_running", "scale_kg"} {
		c.Sensors = append(c.Sensors, config.Sensor{ID: id, Driver: "sim"})
	}
	m := metrics.New()
	e, err := New(c, m, t0)
	if err != nil {
		t.Fatal(err)
	}
	return e, m
}

func ruleCfg(name, expr string, hold time.Duration, message string) config.Rule {
	return config.Rule{Name: name, Expr: expr, For: config.Duration(hold), Severity: "critical", Message: message,
		Labels: map[string]string{"line": "l1"}}
}

// step is one call on the engine: Observe when sensor is set, else Tick.
type step struct {
	at      int // seconds after t0
	sensor  string
	value   float64
	quality reading.Quality
	want    []reading.Alert
}

func alert(r, state string, value float64, since, ts int, msg string) reading.Alert {
	return reading.Alert{Rule: r, State: state, Severity: "critical", Value: value, Since: at(since), TS: at(ts), Message: msg}
}

func TestLifecycle(t *testing.T) {
	const hot = "press_overtemp"
	hotMsg := func(v string) string { return "press_overtemp: press_temp > 80 (value " + v + ")" }
	tests := []struct {
		name  string
		rule  config.Rule
		steps []step
	}{
		{
			name: "for 0 fires at once, once",
			rule: ruleCfg(hot, "press_temp > 80", 0, ""),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 82.1, want: []reading.Alert{alert(hot, "firing", 82.1, 0, 0, hotMsg("82.1"))}},
				{at: 1, sensor: "press_temp", value: 83},
				{at: 2},
			},
		},
		{
			name: "for 10s: pending, then firing exactly at 10s on a tick",
			rule: ruleCfg(hot, "press_temp > 80", 10*time.Second, ""),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 85},
				{at: 5},
				{at: 9},
				{at: 10, want: []reading.Alert{alert(hot, "firing", 85, 0, 10, hotMsg("85"))}},
				{at: 11},
				{at: 12, sensor: "press_temp", value: 86},
				{at: 15, sensor: "press_temp", value: 50, want: []reading.Alert{alert(hot, "resolved", 50, 0, 15, hotMsg("50"))}},
				{at: 16},
			},
		},
		{
			name: "pending that drops before for: nothing at all",
			rule: ruleCfg(hot, "press_temp > 80", 10*time.Second, ""),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 85},
				{at: 5},
				{at: 6, sensor: "press_temp", value: 70},
				{at: 10},
				{at: 20},
				// A new episode counts from its own start.
				{at: 21, sensor: "press_temp", value: 90},
				{at: 30},
				{at: 31, want: []reading.Alert{alert(hot, "firing", 90, 21, 31, hotMsg("90"))}},
			},
		},
		{
			name: "firing, resolved, firing again: each transition once",
			rule: ruleCfg(hot, "press_temp > 80", 0, ""),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90, want: []reading.Alert{alert(hot, "firing", 90, 0, 0, hotMsg("90"))}},
				{at: 3, sensor: "press_temp", value: 70, want: []reading.Alert{alert(hot, "resolved", 70, 0, 3, hotMsg("70"))}},
				{at: 4},
				{at: 5, sensor: "press_temp", value: 75},
				{at: 8, sensor: "press_temp", value: 95, want: []reading.Alert{alert(hot, "firing", 95, 8, 8, hotMsg("95"))}},
				{at: 9},
			},
		},
		{
			name: "value is the first named sensor's, not the one that arrived",
			rule: ruleCfg(hot, "press_temp > 80 && oil_temp > 50", 0, "{{ .Value }}"),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90},
				{at: 1, sensor: "oil_temp", value: 60, want: []reading.Alert{alert(hot, "firing", 90, 1, 1, "90")}},
				{at: 2, sensor: "oil_temp", value: 40, want: []reading.Alert{alert(hot, "resolved", 90, 1, 2, "90")}},
			},
		},
		{
			name: "message template",
			rule: ruleCfg(hot, "press_temp > 80", 10*time.Second,
				`{{ .Rule }}/{{ .Severity }}: {{ .Value }} C for {{ .Duration }} since {{ .Since.Format "15:04:05" }} line={{ .Labels.line }}`),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 82.5},
				{at: 10, want: []reading.Alert{alert(hot, "firing", 82.5, 0, 10, "press_overtemp/critical: 82.5 C for 10s since 03:04:05 line=l1")}},
				{at: 12, sensor: "press_temp", value: 79, want: []reading.Alert{alert(hot, "resolved", 79, 0, 12, "press_overtemp/critical: 79 C for 12s since 03:04:05 line=l1")}},
			},
		},
		{
			name: "no data yet is not firing, even where NaN would compare true",
			rule: ruleCfg(hot, "press_temp != 5", 0, ""),
			steps: []step{
				{at: 0},
				{at: 1, sensor: "oil_temp", value: 5},
				{at: 100},
			},
		},
		{
			name: "bad quality and NaN are not values",
			rule: ruleCfg(hot, "press_temp > 80", 0, ""),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 90, quality: reading.Bad},
				{at: 1},
				{at: 2, sensor: "press_temp", value: 90, want: []reading.Alert{alert(hot, "firing", 90, 2, 2, hotMsg("90"))}},
				{at: 3, sensor: "press_temp", value: 10, quality: reading.Bad},
				{at: 4},
				{at: 5, sensor: "press_temp", value: math.NaN()},
				{at: 6, sensor: "press_temp", value: 10, quality: reading.Uncertain, want: []reading.Alert{alert(hot, "resolved", 10, 2, 6, hotMsg("10"))}},
			},
		},
		{
			name: "a run-time error is false",
			rule: ruleCfg(hot, "int(press_temp) % int(oil_temp) == 0", 0, "{{ .Value }}"),
			steps: []step{
				{at: 0, sensor: "press_temp", value: 4},
				{at: 1, sensor: "oil_temp", value: 0}, // integer division by zero
				{at: 2},
				{at: 3, sensor: "oil_temp", value: 2, want: []reading.Alert{alert(hot, "firing", 4, 3, 3, "4")}},
			},
		},
		{
			name: "running signal compared as a number",
			rule: ruleCfg("press_down", "press_running == 0", 2*time.Minute, ""),
			steps: []step{
				{at: 0, sensor: "press_running", value: 1},
				{at: 10, sensor: "press_running", value: 0},
				{at: 129},
				{at: 130, want: []reading.Alert{alert("press_down", "firing", 0, 10, 130, "press_down: press_running == 0 (value 0)")}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t, tt.rule)
			var fired, resolved int
			for i, s := range tt.steps {
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
			if g := testutil.ToFloat64(m.Transitions.WithLabelValues("firing")); g != float64(fired) {
				t.Errorf("transitions{firing} = %v, want %d", g, fired)
			}
			if g := testutil.ToFloat64(m.Transitions.WithLabelValues("resolved")); g != float64(resolved) {
				t.Errorf("transitions{resolved} = %v, want %d", g, resolved)
			}
			if g := testutil.ToFloat64(m.AlertsFiring); g != float64(fired-resolved) {
				t.Errorf("alerts firing = %v, want %d", g, fired-resolved)
			}
		})
	}
}

func TestObserveEvaluatesOnlyRulesNamingTheSensor(t *testing.T) {
	e, m := newEngine(t,
		ruleCfg("a", "press_temp > 80", 0, ""),
		ruleCfg("b", "oil_temp > 80", 0, ""),
		ruleCfg("c", "press_temp > 80 && oil_temp > 1", 0, ""),
	)
	evals := func() float64 { return testutil.ToFloat64(m.RuleEvals) }
	steps := []struct {
		sensor string // "" ticks
		want   float64
	}{
		{"press_temp", 2},    // a, c
		{"oil_temp", 4},      // b, c
		{"scale_kg", 4},      // named by no rule
		{"not_a_sensor", 4},  // not configured
		{"", 7},              // a tick evaluates all three
		{"press_running", 7}, // configured, unnamed
	}
	for _, s := range steps {
		if s.sensor == "" {
			e.Tick(at(1))
		} else {
			e.Observe(reading.Reading{Sensor: s.sensor, Value: 1}, at(1))
		}
		if got := evals(); got != s.want {
			t.Errorf("after %q: evaluations = %v, want %v", s.sensor, got, s.want)
		}
	}
	if got, want := e.Sensors(), []string{"press_temp", "oil_temp"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Sensors() = %q, want %q", got, want)
	}
}

func TestAlertsSnapshot(t *testing.T) {
	e, _ := newEngine(t,
		ruleCfg("hot", "press_temp > 80", 10*time.Second, "{{ .Value }} for {{ .Duration }}"),
		ruleCfg("warm", "press_temp > 50", 0, ""),
		ruleCfg("oil", "oil_temp > 50", 0, ""),
	)
	e.Observe(reading.Reading{Sensor: "press_temp", Value: 85}, at(0))
	e.Tick(at(4))
	want := []Status{
		{Rule: "hot", Expr: "press_temp > 80", Severity: "critical", State: "pending", Since: at(0),
			Value: 85, Message: "85 for 4s", Labels: map[string]string{"line": "l1"}},
		{Rule: "warm", Expr: "press_temp > 50", Severity: "critical", State: "firing", Since: at(0), FiredAt: at(0),
			Value: 85, Message: "warm: press_temp > 50 (value 85)", Labels: map[string]string{"line": "l1"}},
		{Rule: "oil", Expr: "oil_temp > 50", Severity: "critical", State: "inactive", Labels: map[string]string{"line": "l1"}},
	}
	got := e.Alerts()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Alerts():\n got %+v\nwant %+v", got, want)
	}
	got[0].Labels["line"] = "changed" // a snapshot shares nothing with the engine
	if e.Alerts()[0].Labels["line"] != "l1" {
		t.Error("Alerts() shares its Labels map with the engine")
	}
}

func TestEvalErrorCountedAndLoggedOnce(t *testing.T) {
	e, _ := newEngine(t, ruleCfg("mod", "int(press_temp) % int(oil_temp) == 0", 0, ""))
	var logs bytes.Buffer
	e.log = slog.New(slog.NewTextHandler(&logs, nil))
	e.Observe(reading.Reading{Sensor: "press_temp", Value: 4}, at(0))
	for i := range 3 {
		if got := e.Observe(reading.Reading{Sensor: "oil_temp", Value: 0}, at(i)); got != nil {
			t.Fatalf("a failing rule fired: %+v", got)
		}
	}
	e.Tick(at(5))
	st := e.Alerts()[0]
	if st.Errors != 4 || !strings.Contains(st.Error, "integer divide by zero") || st.State != "inactive" {
		t.Errorf("status = %+v, want 4 errors, divide by zero, inactive", st)
	}
	if n := strings.Count(logs.String(), "rule evaluation failed"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestAlertsWhileEvaluating is for -race: Alerts from another goroutine
// while the pipeline goroutine observes and ticks.
func TestAlertsWhileEvaluating(t *testing.T) {
	e, _ := newEngine(t, ruleCfg("hot", "press_temp > 80", time.Second, "{{ .Value }}"))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				_ = e.Alerts()
			}
		}
	})
	for i := range 2000 {
		e.Observe(reading.Reading{Sensor: "press_temp", Value: float64(i % 200)}, at(i))
		e.Tick(at(i))
	}
	close(stop)
	wg.Wait()
}
