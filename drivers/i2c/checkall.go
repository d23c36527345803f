package i2c

import (
	"github.com/edgegw/edgegw/gateway/config"
)

// CheckAll reports sensors that name one bus address with a different chip
// or chip settings, so that `edgegw check` finds what New would refuse.
func CheckAll(sensors []*config.Sensor, report func(i int, field, format string, args ...any)) {
	var ok []config.Sensor
	for i, s := range sensors {
		if _, err := group(append(ok, *s)); err != nil {
			report(i, "address", "%v", err)
			continue
		}
		ok = append(ok, *s)
	}
}
