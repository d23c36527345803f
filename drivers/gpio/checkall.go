package gpio

import (
	"strings"

	"github.com/edgegw/edgegw/gateway/config"
)

// pinKey is a pin as CheckAll compares them without the board: "GPIO17",
// "gpio17" and "17" are one pin.
func pinKey(pin string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(pin)), "GPIO")
}

// CheckAll reports two sensors on one pin ("GPIO17" and "17" are one pin),
// except a counter and at most one rate sensor, and a rate sensor whose pin
// has no counter sensor, so that `edgegw check` finds them without the
// board; New also refuses them after resolving the names on the board
// itself.
func CheckAll(sensors []*config.Sensor, report func(i int, field, format string, args ...any)) {
	reader := map[string]*config.Sensor{} // pin → the state or counter sensor reading it
	rater := map[string]*config.Sensor{}  // pin → its rate sensor
	var rates []int
	for i, s := range sensors {
		key := pinKey(s.Pin)
		if key == "" {
			continue
		}
		if s.Mode == ModeRate {
			if other, dup := rater[key]; dup {
				report(i, "pin", "%s already has the rate sensor %s (one rate sensor per counter)", s.Pin, other.ID)
				continue
			}
			rater[key] = s
			rates = append(rates, i)
			continue
		}
		if other, dup := reader[key]; dup {
			report(i, "pin", "%s is already read by sensor %s", s.Pin, other.ID)
			continue
		}
		reader[key] = s
	}
	// Then the rates, whatever order the config gives counter and rate in.
	for _, i := range rates {
		s := sensors[i]
		switch r := reader[pinKey(s.Pin)]; {
		case r == nil:
			report(i, "mode", "mode rate needs a counter sensor on pin %s", s.Pin)
		case r.Mode != ModeCounter:
			report(i, "mode", "mode rate needs a counter sensor on pin %s, and sensor %s reads it in mode state", s.Pin, r.ID)
		}
	}
}
