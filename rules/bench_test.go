package rules

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// benchEngine is DESIGN's rules target shape: 200 rules over 1,000
// sensors, in a mix of the forms plant rules take, every sensor with a
// value so that each evaluation runs the expression.
func benchEngine(b *testing.B) (*Engine, *metrics.Set) {
	return benchEngineOf(b, []string{
		"s%03[1]d > 80",
		"s%03[1]d > 50 && s%03[2]d < 20",
		"s%03[1]d == 1",
		"abs(s%03[1]d - s%03[2]d) > 5",
	}, 0)
}

// windowForms are plant rules over history: a stale sensor, a smoothed
// threshold, a slow counter, a band, a rise; half of the rules carry one.
var windowForms = []string{
	"s%03[1]d > 80",
	"age(s%03[1]d) > 30",
	"avg(s%03[1]d, \"1m\") > 80",
	"s%03[1]d > 50 && s%03[2]d < 20",
	"rate(s%03[1]d, \"1m\") > 5 || delta(s%03[2]d, \"30s\") > 100",
	"abs(s%03[1]d - s%03[2]d) > 5",
	"max(s%03[1]d, \"1m\") - min(s%03[1]d, \"1m\") > 30",
	"s%03[1]d == 1",
}

// windowRate is how often each sensor reads in the window benchmarks:
// 10 Hz, DESIGN's 10,000 readings/s over 1,000 sensors, so a 1m window
// holds 600 points.
const windowRate = 100 * time.Millisecond

// benchEngineOf builds 200 rules of forms over 1,000 sensors. With
// history > 0 it first feeds every named sensor that much history at
// windowRate, values moving within a band.
func benchEngineOf(b *testing.B, forms []string, history time.Duration) (*Engine, *metrics.Set) {
	const sensors, rules = 1000, 200
	c := &config.Config{File: "bench.yaml"}
	for i := range sensors {
		c.Sensors = append(c.Sensors, config.Sensor{ID: fmt.Sprintf("s%03d", i), Driver: "sim"})
	}
	for i := range rules {
		a, b := i*5%sensors, (i*5+1)%sensors
		c.Rules = append(c.Rules, config.Rule{
			Name: fmt.Sprintf("r%03d", i), Expr: fmt.Sprintf(forms[i%len(forms)], a, b),
			For: config.Duration(10 * time.Second), Severity: "warning",
		})
	}
	m := metrics.New()
	e, err := New(c, m, t0)
	if err != nil {
		b.Fatal(err)
	}
	for i := range sensors {
		e.Observe(reading.Reading{Sensor: c.Sensors[i].ID, Value: 10}, t0)
	}
	ids := e.Sensors()
	for k := range int(history / windowRate) {
		now := t0.Add(time.Duration(k) * windowRate)
		for j, id := range ids {
			e.Observe(reading.Reading{Sensor: id, Value: float64(10 + (k+j)%7)}, now)
		}
	}
	// Warm caches and the VM's stack, so that a short run (-benchtime 2x)
	// measures evaluation rather than first touches.
	for range 100 {
		e.Tick(t0.Add(history))
	}
	return e, m
}

// BenchmarkRulesEval reports rule evaluations per second (target: 2,000,000
// per core). Tick evaluates all 200 rules per op; Observe takes one reading
// per op, round robin over the sensors some rule names (a reading of any
// other sensor costs one map lookup), and evaluates the rules naming it. Values move within a band, so transitions are rare, as
// on a plant floor.
func BenchmarkRulesEval(b *testing.B) {
	b.Run("Tick", func(b *testing.B) {
		e, m := benchEngine(b)
		before := testutil.ToFloat64(m.RuleEvals)
		n := 0
		for b.Loop() {
			n++
			e.Tick(t0.Add(time.Duration(n) * time.Millisecond))
		}
		evals := testutil.ToFloat64(m.RuleEvals) - before
		b.ReportMetric(evals/b.Elapsed().Seconds(), "evals/s")
	})
	b.Run("Observe", func(b *testing.B) {
		e, m := benchEngine(b)
		ids := e.Sensors()
		before := testutil.ToFloat64(m.RuleEvals)
		n := 0
		for b.Loop() {
			r := reading.Reading{Sensor: ids[n%len(ids)], Value: float64(10 + n%7)}
			e.Observe(r, t0.Add(time.Duration(n)*time.Microsecond))
			n++
		}
		evals := testutil.ToFloat64(m.RuleEvals) - before
		b.ReportMetric(evals/b.Elapsed().Seconds(), "evals/s")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
	})
}

// BenchmarkRulesEvalWindows is BenchmarkRulesEval with history functions
// in half of the rules (windowForms), every sensor reading at 10 Hz with
// two minutes of history already kept: Tick evaluates all 200 rules at
// the time of the latest readings; Observe carries the clock on so that
// each sensor still reads at 10 Hz and windows slide.
func BenchmarkRulesEvalWindows(b *testing.B) {
	const history = 2 * time.Minute
	b.Run("Tick", func(b *testing.B) {
		e, m := benchEngineOf(b, windowForms, history)
		before := testutil.ToFloat64(m.RuleEvals)
		for b.Loop() {
			e.Tick(t0.Add(history))
		}
		evals := testutil.ToFloat64(m.RuleEvals) - before
		b.ReportMetric(evals/b.Elapsed().Seconds(), "evals/s")
	})
	b.Run("Observe", func(b *testing.B) {
		e, m := benchEngineOf(b, windowForms, history)
		ids := e.Sensors()
		step := windowRate / time.Duration(len(ids))
		before := testutil.ToFloat64(m.RuleEvals)
		n := 0
		for b.Loop() {
			r := reading.Reading{Sensor: ids[n%len(ids)], Value: float64(10 + n%7)}
			e.Observe(r, t0.Add(history+time.Duration(n)*step))
			n++
		}
		evals := testutil.ToFloat64(m.RuleEvals) - before
		b.ReportMetric(evals/b.Elapsed().Seconds(), "evals/s")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
	})
	// ObserveAnalog is Observe with values that hardly ever repeat, as
	// a noisy analog signal gives: Observe's seven integer values are
	// always among the engine's interned boxes (Engine.box), these
	// almost never, so each reading costs an allocation again.
	b.Run("ObserveAnalog", func(b *testing.B) {
		e, m := benchEngineOf(b, windowForms, history)
		ids := e.Sensors()
		step := windowRate / time.Duration(len(ids))
		vals := make([]float64, 1<<16)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range vals {
			vals[i] = 10 + 6*rng.Float64()
		}
		before := testutil.ToFloat64(m.RuleEvals)
		n := 0
		for b.Loop() {
			r := reading.Reading{Sensor: ids[n%len(ids)], Value: vals[n%len(vals)]}
			e.Observe(r, t0.Add(history+time.Duration(n)*step))
			n++
		}
		evals := testutil.ToFloat64(m.RuleEvals) - before
		b.ReportMetric(evals/b.Elapsed().Seconds(), "evals/s")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "readings/s")
	})
}
