package rules

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

func reasonPress() config.Machine {
	m := press(10 * time.Second)
	m.Reason = "press_temp" // stands in for a reason-code sensor
	return m
}

func TestMachineReason(t *testing.T) {
	e, _ := newMachineEngine(t, at(0), []config.Machine{reasonPress()})
	obs := func(sec int, sensor string, v float64) {
		e.Observe(reading.Reading{Sensor: sensor, Value: v}, at(sec))
	}
	check := func(sec int, want float64, has bool) {
		t.Helper()
		ms := e.Machines(at(sec))[0]
		if ms.HasReason != has || ms.Reason != want {
			t.Errorf("at %d: reason %v (has %v), want %v (has %v)", sec, ms.Reason, ms.HasReason, want, has)
		}
	}
	obs(1, "press_running", 1)
	obs(2, "press_temp", 7) // while up: not a stop's reason
	check(2, 0, false)
	obs(3, "press_running", 0) // stop begins
	check(3, 0, false)
	obs(4, "press_temp", 12)
	check(4, 12, true)
	obs(5, "press_temp", 14) // the last value seen while down wins
	check(5, 14, true)
	obs(20, "press_running", 1) // stop ends: the code is kept
	check(20, 14, true)
	obs(21, "press_temp", 99) // while up: ignored
	check(21, 14, true)
	obs(30, "press_running", 0) // a new stop starts without a code
	check(30, 0, false)
	obs(31, "press_temp", 3)
	check(31, 3, true)

	// The reason survives a restart.
	b, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e2, _ := newMachineEngine(t, at(40), []config.Machine{reasonPress()})
	if err := e2.Restore(b, at(40)); err != nil {
		t.Fatal(err)
	}
	if ms := e2.Machines(at(40))[0]; !ms.HasReason || ms.Reason != 3 {
		t.Errorf("restored reason %v (has %v), want 3", ms.Reason, ms.HasReason)
	}
	// No events carry it: the events are the usual ones.
	for _, ev := range e.TakeEvents() {
		if ev.Machine != "press" {
			t.Errorf("event %+v", ev)
		}
	}
}

func staleAlert(state string, since, ts int) reading.Alert {
	return reading.Alert{Rule: "press_signal_stale", State: state, Severity: "warning", Value: math.NaN(),
		Since: at(since), TS: at(ts), Message: "Machine press: running signal stale or missing"}
}

func sameAlerts(t *testing.T, when string, got []reading.Alert, want ...reading.Alert) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.Rule == w.Rule && g.State == w.State && g.Severity == w.Severity && math.IsNaN(g.Value) &&
			g.Since.Equal(w.Since) && g.TS.Equal(w.TS) && g.Message == w.Message
	}
	if !ok {
		t.Errorf("%s: alerts\n got  %+v\n want %+v", when, got, want)
	}
}

func staleStatus(t *testing.T, e *Engine) Status {
	t.Helper()
	st := e.Alerts()
	if len(st) != 1 || st[0].Rule != "press_signal_stale" {
		t.Fatalf("Alerts: %+v", st)
	}
	return st[0]
}

func TestMachineStaleAlertNoData(t *testing.T) {
	// press_running has no interval: stale limit 30s, and no firing before
	// start+30s.
	e, m := newMachineEngine(t, at(0), []config.Machine{press(10 * time.Second)})
	sameAlerts(t, "tick 1", e.Tick(at(1)))
	sameAlerts(t, "tick 29", e.Tick(at(29)))
	if s := staleStatus(t, e); s.State != "inactive" {
		t.Errorf("status %+v", s)
	}
	sameAlerts(t, "tick 30", e.Tick(at(30)), staleAlert(reading.StateFiring, 0, 30))
	sameAlerts(t, "tick 31", e.Tick(at(31)))
	if got := testutil.ToFloat64(m.AlertsFiring); got != 1 {
		t.Errorf("firing gauge %v, want 1", got)
	}
	s := staleStatus(t, e)
	if s.State != "firing" || s.Severity != "warning" || !s.Since.Equal(at(0)) || !s.FiredAt.Equal(at(30)) ||
		s.Message != "Machine press: running signal stale or missing" {
		t.Errorf("status %+v", s)
	}
	if err := e.Ack("press_signal_stale", at(32)); err != nil {
		t.Errorf("Ack: %v", err)
	}
	sameAlerts(t, "reading 40", e.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(40)),
		staleAlert(reading.StateResolved, 0, 40))
	sameAlerts(t, "tick 41", e.Tick(at(41)))
	if got := testutil.ToFloat64(m.AlertsFiring); got != 0 {
		t.Errorf("firing gauge %v, want 0", got)
	}
	if s := staleStatus(t, e); s.State != "inactive" || s.Acked {
		t.Errorf("status %+v", s)
	}
	if err := e.Ack("press_signal_stale", at(42)); !errors.Is(err, ErrNotFiring) {
		t.Errorf("Ack while inactive: %v", err)
	}
}

func TestMachineStaleAlertStaleData(t *testing.T) {
	e, m := newMachineEngine(t, at(0), []config.Machine{press(10 * time.Second)})
	sameAlerts(t, "reading 1", e.Observe(reading.Reading{Sensor: "press_running", Value: 0}, at(1)))
	sameAlerts(t, "tick 31", e.Tick(at(31)))
	// Older than 30s at 32: unknown, and the alert fires at once.
	sameAlerts(t, "tick 32", e.Tick(at(32)), staleAlert(reading.StateFiring, 32, 32))
	sameAlerts(t, "tick 33", e.Tick(at(33)))
	sameAlerts(t, "tick 50", e.Tick(at(50)))

	// A restart keeps it firing without a new firing.
	b, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	e2, m2 := newMachineEngine(t, at(60), []config.Machine{press(10 * time.Second)})
	if err := e2.Restore(b, at(60)); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m2.AlertsFiring); got != 1 {
		t.Errorf("restored firing gauge %v, want 1", got)
	}
	sameAlerts(t, "restored tick 61", e2.Tick(at(61)))
	sameAlerts(t, "restored tick 100", e2.Tick(at(100)))
	if s := staleStatus(t, e2); s.State != "firing" || !s.Since.Equal(at(32)) || !s.FiredAt.Equal(at(32)) {
		t.Errorf("restored status %+v", s)
	}
	sameAlerts(t, "restored reading 101", e2.Observe(reading.Reading{Sensor: "press_running", Value: 0}, at(101)),
		staleAlert(reading.StateResolved, 32, 101))
	sameAlerts(t, "restored tick 102", e2.Tick(at(102)))
	if got := testutil.ToFloat64(m2.AlertsFiring); got != 0 {
		t.Errorf("restored firing gauge %v, want 0", got)
	}

	// The original engine resolves too, once.
	sameAlerts(t, "reading 51", e.Observe(reading.Reading{Sensor: "press_running", Value: 1}, at(51)),
		staleAlert(reading.StateResolved, 32, 51))
	sameAlerts(t, "tick 52", e.Tick(at(52)))
	if got := testutil.ToFloat64(m.AlertsFiring); got != 0 {
		t.Errorf("firing gauge %v, want 0", got)
	}
}
