package rules

import (
	"reflect"
	"testing"

	"github.com/edgegw/edgegw/gateway/config"
)

func TestOwners(t *testing.T) {
	c := &config.Config{
		File: "t.yaml",
		Sensors: []config.Sensor{
			{ID: "press_running", Driver: "sim"},
			{ID: "press_reason", Driver: "sim"},
			{ID: "press_temp", Driver: "sim", Machine: "press"},
			{ID: "oven_on", Driver: "sim"},
			{ID: "hall_temp", Driver: "sim"},
			{ID: "shared", Driver: "sim"}, // named by both machines' running: no owner
		},
		Machines: []config.Machine{
			{Name: "press", Running: "press_running == 1 && shared > 0", Reason: "press_reason", Line: "l1"},
			{Name: "oven", Running: "oven_on == 1 || shared > 0", Line: "l2"},
		},
		Rules: []config.Rule{
			{Name: "press_hot", Expr: "press_temp > 80"},                             // explicit sensor owner
			{Name: "press_stuck", Expr: "press_running == 0 && age(press_temp) > 5"}, // both press
			{Name: "mixed", Expr: "press_temp > 80 && oven_on == 1"},                 // two machines
			{Name: "hall_hot", Expr: "hall_temp > 30"},                               // no machine
			{Name: "hall_for_oven", Expr: "hall_temp > 40", Machine: "oven"},         // explicit
			{Name: "clear_other", Expr: "press_temp > 80", Clear: "oven_on == 0"},    // clear counts too
			{Name: "shared_only", Expr: "shared > 3"},                                // shared sensor: none
			{Name: "reason_rule", Expr: "press_reason == 7", Severity: "info"},       // reason sensor: press
		},
	}
	for i := range c.Rules {
		if c.Rules[i].Severity == "" {
			c.Rules[i].Severity = "warning"
		}
	}
	e, err := New(c, nil, at(0))
	if err != nil {
		t.Fatal(err)
	}
	wantSensors := map[string]string{"press_running": "press", "press_reason": "press", "press_temp": "press", "oven_on": "oven"}
	if got := e.SensorMachines(); !reflect.DeepEqual(got, wantSensors) {
		t.Errorf("SensorMachines = %v, want %v", got, wantSensors)
	}
	got := map[string]string{}
	for _, s := range e.Alerts() {
		got[s.Rule] = s.Machine
	}
	want := map[string]string{
		"press_hot": "press", "press_stuck": "press", "mixed": "", "hall_hot": "", "hall_for_oven": "oven",
		"clear_other": "", "shared_only": "", "reason_rule": "press",
		"press_signal_stale": "press", "oven_signal_stale": "oven",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alert machines = %v, want %v", got, want)
	}
	ms := e.Machines(at(1))
	if ms[0].Line != "l1" || ms[1].Line != "l2" {
		t.Errorf("machine lines = %q, %q", ms[0].Line, ms[1].Line)
	}
}
