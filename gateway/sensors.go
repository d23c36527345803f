package gateway

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// sensorTable keeps each sensor's latest reading for the API and the page.
// The pipeline goroutine writes it; HTTP handlers read it.
type sensorTable struct {
	mu    sync.Mutex
	order []string
	byID  map[string]*sensorState
}

type sensorState struct {
	id, driver, unit string
	machine          string        // the machine it belongs to (rules.Engine.SensorMachines)
	staleAfter       time.Duration // see staleLimit
	last             reading.Reading
	seen             bool
	count            uint64
	// counter is the sensor's driver's edgegw_readings_total series,
	// looked up once: WithLabelValues hashes its labels on every call.
	counter prometheus.Counter
}

// newSensorTable makes the table of sensors; machines maps a sensor to the
// machine it belongs to.
func newSensorTable(sensors []config.Sensor, machines map[string]string, m *metrics.Set) *sensorTable {
	t := &sensorTable{byID: make(map[string]*sensorState, len(sensors))}
	for _, s := range sensors {
		t.order = append(t.order, s.ID)
		t.byID[s.ID] = &sensorState{id: s.ID, driver: s.Driver, unit: s.Unit,
			machine: machines[s.ID], staleAfter: staleLimit(s.Interval.D()),
			counter: m.ReadingsTotal.WithLabelValues(s.Driver)}
	}
	return t
}

// staleLimit is how long a sensor may send nothing before the page marks
// it stale: three of its intervals, at least 10 s; 60 s for a sensor that
// has no interval (MQTT sensors publish when they like).
func staleLimit(interval time.Duration) time.Duration {
	if interval <= 0 {
		return time.Minute
	}
	return max(3*interval, 10*time.Second)
}

// update records r and fills in the sensor's unit when the driver left it
// empty. It reports false for a reading of a sensor the config does not
// have, which the pipeline drops: a driver bug, not user input.
func (t *sensorTable) update(r *reading.Reading) bool {
	t.mu.Lock()
	s, ok := t.byID[r.Sensor]
	if ok {
		if r.Unit == "" {
			r.Unit = s.unit
		}
		s.last, s.seen = *r, true
		s.count++
	}
	t.mu.Unlock()
	if ok {
		s.counter.Inc()
	}
	return ok
}

func (t *sensorTable) snapshot(now time.Time) []httpapi.Sensor {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]httpapi.Sensor, 0, len(t.order))
	for _, id := range t.order {
		s := t.byID[id]
		row := httpapi.Sensor{ID: s.id, Driver: s.driver, Unit: s.unit, Readings: s.count,
			Machine: s.machine, Stale: true}
		if s.seen {
			ts := s.last.TS
			age := now.Sub(ts).Seconds()
			row.TS, row.AgeS, row.Quality = &ts, &age, s.last.Quality.String()
			row.Stale = now.Sub(ts) > s.staleAfter
			if v := s.last.Value; !math.IsNaN(v) && !math.IsInf(v, 0) {
				row.Value = &v
			}
		}
		out = append(out, row)
	}
	return out
}
