package gpio

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/config"
)

func counterValue(h *harness, kind string) float64 {
	return testutil.ToFloat64(h.metrics.DriverErrors.WithLabelValues(Name, kind))
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    config.Sensor
		want []string // "field: text" of each problem
	}{
		{"ok state", config.Sensor{Pin: "GPIO17"}, nil},
		{"ok counter", config.Sensor{Pin: "27", Mode: "counter", Edge: "both", Pull: "up"}, nil},
		{"missing pin", config.Sensor{}, []string{"pin: required"}},
		{"bad mode", config.Sensor{Pin: "GPIO17", Mode: "pwm"}, []string{`mode: "pwm" is not state, counter or rate`}},
		{"bad edge", config.Sensor{Pin: "GPIO17", Mode: "counter", Edge: "up"}, []string{`edge: "up" is not rising, falling or both`}},
		{"edge on state", config.Sensor{Pin: "GPIO17", Edge: "rising"}, []string{"edge: only for mode counter"}},
		{"bad pull", config.Sensor{Pin: "GPIO17", Pull: "high"}, []string{`pull: "high" is not up, down or none`}},
		{"negative", config.Sensor{Pin: "GPIO17", Debounce: -1, Interval: -1}, []string{"debounce: must not be negative", "interval: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			Check(&tc.s, func(field, format string, args ...any) {
				got = append(got, field+": "+fmt.Sprintf(format, args...))
			})
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Fatalf("problem %q, want %q", got[i], tc.want[i])
				}
			}
		})
	}
}

func TestCheckDefaults(t *testing.T) {
	s := config.Sensor{Pin: "GPIO27", Mode: "counter"}
	Check(&s, func(string, string, ...any) { t.Fatal("problem") })
	if s.Edge != "rising" || s.Pull != "none" || s.Interval != DefaultInterval {
		t.Fatalf("defaults %+v", s)
	}
	s = config.Sensor{Pin: "GPIO17"}
	Check(&s, func(string, string, ...any) { t.Fatal("problem") })
	if s.Mode != "state" || s.Edge != "" {
		t.Fatalf("defaults %+v", s)
	}
}

func TestNewPinErrors(t *testing.T) {
	useBoard(t, newPin("GPIO17", 17), busyPin{newPin("GPIO4", 4)})
	for _, tc := range []struct {
		name    string
		sensors []config.Sensor
		is      error
		want    []string
	}{
		{"missing pin", []config.Sensor{{ID: "door", Pin: "GPIO99"}}, ErrNoPin, []string{"sensor door", "GPIO99"}},
		{"busy pin", []config.Sensor{{ID: "estop", Pin: "GPIO4"}}, ErrPinBusy, []string{"sensor estop", "GPIO4", "device or resource busy"}},
		{"same pin twice", []config.Sensor{{ID: "a", Pin: "GPIO17"}, {ID: "b", Pin: "17"}}, nil, []string{"sensor b", "already read by sensor a"}},
		{"bad config", []config.Sensor{{ID: "c", Pin: "GPIO17", Mode: "pwm"}}, nil, []string{"sensor c", "mode"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := newDriver(t, "", tc.sensors...)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// On a machine without GPIO (this one, unless it is a Pi) periph's
// host.Init succeeds and registers no pin: a lookup is ErrNoPin, never a
// nil pin that panics later.
func TestBoardWithoutGPIO(t *testing.T) {
	p, err := boardPin("GPIO17")
	if err == nil {
		t.Skipf("this machine has %s", p)
	}
	if !errors.Is(err, ErrNoPin) {
		t.Fatalf("error %v, want ErrNoPin", err)
	}
	if _, err := boardPin("17"); !errors.Is(err, ErrNoPin) {
		t.Fatalf("error %v, want ErrNoPin", err)
	}
}
