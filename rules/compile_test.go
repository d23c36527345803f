package rules

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/edgegw/edgegw/gateway/reading"
)

// TestSensorPatcher checks that expressions read sensors through their
// sensor functions (none needs the environment map) and that they
// evaluate as the same source does over a plain map environment.
func TestSensorPatcher(t *testing.T) {
	srcs := []string{
		"press_temp > 80",
		"press_temp > 50 && oil_temp < 20",
		"abs(press_temp - oil_temp) > 5",
		"max(press_temp, oil_temp) > 80",
		"min(press_temp, 3) < 1",
		"let t = press_temp; t > 80 || oil_temp == t",
		"any([1, 2, 3], {# * press_temp > oil_temp})",
		"press_temp in [1, 2, 3]",
		"(press_temp > 2 ? oil_temp : press_temp) > 1",
		"press_temp ** 2 + int(oil_temp) % 3 > 7",
		"press_temp > 1 and not (oil_temp > 2)",
		`avg(press_temp, "1m") < press_temp || age(oil_temp) > 3`,
		"press_temp + press_temp + press_temp > oil_temp",
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, src := range srcs {
		e, _ := newEngine(t, ruleCfg("r", src, 0, ""))
		c := e.rules[0].cond
		if c.env || e.useEnv {
			t.Errorf("%s: reads the environment map", src)
		}
		for k := range 50 {
			p, o := float64(rng.IntN(7)), float64(rng.IntN(7))
			e.Observe(reading.Reading{Sensor: "press_temp", Value: p}, at(k))
			e.Observe(reading.Reading{Sensor: "oil_temp", Value: o}, at(k))
			e.hist.now = at(k)
			got, known, err := e.run(c)
			if err != nil || !known {
				t.Fatalf("%s: %v (known %v)", src, err, known)
			}
			if strings.Contains(src, "avg(") {
				continue // what history calls answer is history_test's
			}
			want, err := expr.Eval(src, map[string]any{"press_temp": p, "oil_temp": o})
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if got != want {
				t.Fatalf("%s with press_temp %v, oil_temp %v: %v, want %v", src, p, o, got, want)
			}
		}
	}
}

// TestBox checks that interned boxes hold exactly the value asked, signed
// zeros apart, and are reused.
func TestBox(t *testing.T) {
	e, _ := newEngine(t)
	rng := rand.New(rand.NewPCG(8, 9))
	for range 100000 {
		v := float64(rng.IntN(1000)) / 8
		switch rng.IntN(10) {
		case 0:
			v = math.Copysign(0, -1)
		case 1:
			v = rng.NormFloat64()
		}
		b := e.box(v)
		if f, ok := b.(float64); !ok || math.Float64bits(f) != math.Float64bits(v) {
			t.Fatalf("box(%v) = %v", v, b)
		}
	}
	if n := testing.AllocsPerRun(100, func() { e.box(42); e.box(0.5) }); n != 0 {
		t.Errorf("boxing recent values allocates %v times", n)
	}
}
