package rules

import (
	"errors"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
)

func statusOf(t *testing.T, e *Engine, rule string) Status {
	t.Helper()
	for _, s := range e.Alerts() {
		if s.Rule == rule {
			return s
		}
	}
	t.Fatalf("no status for rule %s", rule)
	return Status{}
}

func TestAck(t *testing.T) {
	e, _ := newEngine(t, ruleCfg("hot", "press_temp > 80", 10*time.Second, ""))
	obs := func(v float64, sec int) { e.Observe(reading.Reading{Sensor: "press_temp", Value: v}, at(sec)) }
	wantAck := func(when string, acked bool, ackedAt time.Time) {
		t.Helper()
		if s := statusOf(t, e, "hot"); s.Acked != acked || !s.AckedAt.Equal(ackedAt) {
			t.Errorf("%s: acked %v at %v, want %v at %v", when, s.Acked, s.AckedAt, acked, ackedAt)
		}
	}

	if err := e.Ack("nope", at(0)); !errors.Is(err, ErrUnknownRule) || err.Error() != "rule nope: unknown rule" {
		t.Errorf("Ack(unknown) = %v, want ErrUnknownRule", err)
	}
	if err := e.Ack("hot", at(0)); !errors.Is(err, ErrNotFiring) {
		t.Errorf("Ack(inactive) = %v, want ErrNotFiring", err)
	}
	obs(85, 1) // pending
	if err := e.Ack("hot", at(2)); !errors.Is(err, ErrNotFiring) {
		t.Errorf("Ack(pending) = %v, want ErrNotFiring", err)
	}
	wantAck("pending", false, time.Time{})

	e.Tick(at(11)) // firing
	wantAck("firing", false, time.Time{})
	if err := e.Ack("hot", at(20)); err != nil {
		t.Fatalf("Ack(firing) = %v", err)
	}
	wantAck("acked", true, at(20))
	if err := e.Ack("hot", at(25)); err != nil {
		t.Fatalf("second Ack = %v", err)
	}
	wantAck("acked twice", true, at(20)) // the first acknowledgement counts
	if s := statusOf(t, e, "hot"); s.State != "firing" {
		t.Errorf("acked alert is %s, want still firing", s.State)
	}

	obs(70, 30) // resolved
	wantAck("resolved", false, time.Time{})
	if err := e.Ack("hot", at(31)); !errors.Is(err, ErrNotFiring) {
		t.Errorf("Ack(resolved) = %v, want ErrNotFiring", err)
	}
	obs(90, 40)
	e.Tick(at(50)) // fires anew
	if s := statusOf(t, e, "hot"); s.State != "firing" || s.Acked || !s.AckedAt.IsZero() {
		t.Errorf("new firing: %s acked %v at %v, want firing, unacked", s.State, s.Acked, s.AckedAt)
	}
}

func TestAckSurvivesSnapshot(t *testing.T) {
	hot := ruleCfg("hot", "press_temp > 80", 0, "")
	oil := ruleCfg("oil", "oil_temp > 50", 0, "")
	a, _ := newEngine(t, hot, oil)
	a.Observe(reading.Reading{Sensor: "press_temp", Value: 90}, at(0))
	a.Observe(reading.Reading{Sensor: "oil_temp", Value: 60}, at(0))
	if err := a.Ack("hot", at(5)); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newEngine(t, hot, oil)
	if err := b.Restore(snap, at(10)); err != nil {
		t.Fatal(err)
	}
	if s := statusOf(t, b, "hot"); s.State != "firing" || !s.Acked || !s.AckedAt.Equal(at(5)) {
		t.Errorf("hot restored as %s acked %v at %v, want firing acked at %v", s.State, s.Acked, s.AckedAt, at(5))
	}
	if s := statusOf(t, b, "oil"); s.State != "firing" || s.Acked {
		t.Errorf("oil restored as %s acked %v, want firing unacked", s.State, s.Acked)
	}
}
