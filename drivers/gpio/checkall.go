package gpio

import (
	"strings"

	"github.com/edgegw/edgegw/gateway/config"
)

// CheckAll reports two sensors on one pin ("GPIO17" and "17" are one pin),
// so that `edgegw check` finds it without the board; New also refuses it
// after resolving the names on the board itself.
func CheckAll(sensors []*config.Sensor, report func(i int, field, format string, args ...any)) {
	byPin := map[string]string{}
	for i, s := range sensors {
		key := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s.Pin)), "GPIO")
		if key == "" {
			continue
		}
		if other, dup := byPin[key]; dup {
			report(i, "pin", "%s is already read by sensor %s", s.Pin, other)
			continue
		}
		byPin[key] = s.ID
	}
}
