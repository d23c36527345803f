package annunciator

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/rules"
)

// fakeLight records each call; fail makes the next calls return an error.
type fakeLight struct {
	calls []string
	fail  error
}

func (l *fakeLight) record(c string) error {
	l.calls = append(l.calls, c)
	return l.fail
}
func (l *fakeLight) On() error                   { return l.record("on") }
func (l *fakeLight) Off() error                  { return l.record("off") }
func (l *fakeLight) Blink(p time.Duration) error { return l.record("blink " + p.String()) }

func st(rule, severity, state string, acked bool) rules.Status {
	return rules.Status{Rule: rule, Severity: severity, State: state, Acked: acked}
}

func TestWant(t *testing.T) {
	cases := []struct {
		name string
		st   []rules.Status
		want Mode
	}{
		{"no rules", nil, Off},
		{"nothing firing", []rules.Status{st("a", "critical", "inactive", false), st("b", "warning", "pending", false)}, Off},
		{"pending critical is not firing", []rules.Status{st("a", "critical", "pending", false)}, Off},
		{"warning firing", []rules.Status{st("a", "warning", "firing", false)}, On},
		{"info firing", []rules.Status{st("a", "info", "firing", false)}, On},
		{"critical firing unacked", []rules.Status{st("a", "warning", "firing", false), st("b", "critical", "firing", false)}, Blinking},
		{"critical firing acked", []rules.Status{st("a", "critical", "firing", true)}, On},
		{"one of two criticals acked", []rules.Status{st("a", "critical", "firing", true), st("b", "critical", "firing", false)}, Blinking},
		{"both criticals acked", []rules.Status{st("a", "critical", "firing", true), st("b", "critical", "firing", true)}, On},
	}
	for _, tc := range cases {
		if got := Want(tc.st); got != tc.want {
			t.Errorf("%s: Want = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUpdateChangesOnlyOnNewMode(t *testing.T) {
	l := &fakeLight{}
	a := New(l, 500*time.Millisecond, nil)
	crit := st("press_overtemp", "critical", "firing", false)
	steps := [][]rules.Status{
		{st("press_overtemp", "critical", "inactive", false)}, // first Update sets off
		{st("press_overtemp", "critical", "inactive", false)}, // same: no call
		{crit},
		{crit}, // still blinking: the rhythm is not restarted
		{st("press_overtemp", "critical", "firing", true)}, // acked: steady
		{st("press_overtemp", "critical", "firing", true), st("oil_low", "warning", "firing", false)},
		{st("press_overtemp", "critical", "inactive", false)}, // resolved
	}
	for _, s := range steps {
		a.Update(s)
	}
	want := []string{"off", "blink 500ms", "on", "off"}
	if !reflect.DeepEqual(l.calls, want) {
		t.Errorf("calls %q, want %q", l.calls, want)
	}
	if m, ok := a.Mode(); m != Off || !ok {
		t.Errorf("Mode = %v, %v; want off, true", m, ok)
	}
}

func TestUpdateErrorLoggedOnceAndRetried(t *testing.T) {
	var logs bytes.Buffer
	l := &fakeLight{fail: errors.New("pin busy")}
	a := New(l, time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	firing := []rules.Status{st("a", "warning", "firing", false)}
	a.Update(firing)
	a.Update(firing)
	a.Update(firing)
	if n := strings.Count(logs.String(), "annunciator output failed"); n != 1 {
		t.Errorf("failure logged %d times, want once:\n%s", n, logs.String())
	}
	if _, ok := a.Mode(); ok {
		t.Error("Mode known after failures")
	}
	l.fail = nil
	a.Update(firing)
	a.Update(firing)
	if want := []string{"on", "on", "on", "on"}; !reflect.DeepEqual(l.calls, want) {
		t.Errorf("calls %q, want %q (retried until it worked, then no more)", l.calls, want)
	}
	if !strings.Contains(logs.String(), "annunciator output works again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
	if m, ok := a.Mode(); m != On || !ok {
		t.Errorf("Mode = %v, %v; want on, true", m, ok)
	}
}
