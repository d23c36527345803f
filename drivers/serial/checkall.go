package serial

import (
	"github.com/edgegw/edgegw/gateway/config"
)

// CheckAll reports sensors that share a port but not its line settings, so
// that `edgegw check` finds what New would refuse. The sensors have been
// through Check (defaults filled in).
func CheckAll(sensors []*config.Sensor, report func(i int, field, format string, args ...any)) {
	first := map[string]*line{}
	for i, s := range sensors {
		if s.Port == "" {
			continue
		}
		l := first[s.Port]
		if l == nil {
			first[s.Port] = &line{settings: settingsOf(*s), first: s.ID}
			continue
		}
		if err := l.agrees(*s); err != nil {
			report(i, "port", "%v", err)
		}
	}
}
