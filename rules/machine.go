package rules

import (
	"time"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/reading"
)

// Machines and downtime.
//
// A machine's `running` expression is evaluated on every reading of a
// sensor it names and on every Tick. Its state is:
//   - up: the expression is true;
//   - down: the expression is false;
//   - unknown: it cannot be evaluated — a sensor it reads as a value has
//     no reading yet, a history function has no data in its window, the
//     evaluation fails at run time (logged once per distinct error), or
//     the latest good reading of a sensor it reads as a value is older
//     than the machine's staleness limit: max(3 × the largest configured
//     `interval` of those sensors, 30s). Sensors named only inside history
//     functions (`age(parts) < 60`) are not checked for staleness: the
//     function itself decides. Bad-quality and NaN readings do not count
//     as readings, so a sensor sending only those goes stale.
//
// A stop begins when the machine is seen down while no stop is open (after
// up, after unknown, or as the first state seen: a machine starting down).
// Its start is that evaluation's time. It ends when the machine is next seen
// up. Unknown neither begins nor ends a stop: a down machine that goes
// unknown keeps its stop open (and its clock running: the down event still
// comes at start+min_downtime, and the downtime counts), and an up machine
// that goes unknown has no stop.
//
// A stop that lasts min_downtime (default 30s) becomes a downtime event:
// at the first evaluation (reading or Tick) at or after start+min_downtime
// the engine emits Event{State: down, Start: start, End: zero, Duration:
// now−start}, which with the usual 1s tick is min_downtime up to one tick;
// when it ends, Event{State: up, Start: start, End: now, Duration:
// now−start}. A stop that ends before min_downtime emits nothing. If no
// evaluation fell between start+min_downtime and the end, the down event
// is emitted right before the up event. Events are collected in order and
// handed out by TakeEvents.
//
// Today's figures are per local day of the `now` passed in (its location;
// the day rolls over at midnight). DowntimeToday is the time spent in
// stops today, closed ones and the open one, short stops included
// (micro-stops cost availability even though they are no events); a stop
// crossing midnight counts only its part after midnight. StopsToday counts
// the stops that became events (counted when their down event is emitted).
// Availability is 1 − DowntimeToday / (now − first), where first is the
// first evaluation of the machine today, or midnight when the engine was
// already running across midnight; 1 while nothing has been observed yet.

// minStale is the floor of a machine's staleness limit.
const minStale = 30 * time.Second

// machineState is up, down or unknown.
type machineState uint8

const (
	machineUnknown machineState = iota
	machineUp
	machineDown
)

func (s machineState) String() string {
	switch s {
	case machineUp:
		return reading.StateUp
	case machineDown:
		return reading.StateDown
	}
	return "unknown"
}

func parseMachineState(s string) (machineState, bool) {
	switch s {
	case "unknown":
		return machineUnknown, true
	case reading.StateUp:
		return machineUp, true
	case reading.StateDown:
		return machineDown, true
	}
	return machineUnknown, false
}

// MachineStatus is one machine as the dashboard and /api/machines show it.
type MachineStatus struct {
	Name  string
	State string    // "up" | "down" | "unknown"
	Since time.Time // when the current state began (the engine's start at first)
	// StopStart is when the open stop began; zero if none is open.
	StopStart     time.Time
	DowntimeToday time.Duration
	StopsToday    int
	Availability  float64 // 0..1, see the package notes on machines
	Running       string  // the running expression
}

// machine is one configured machine and its downtime state.
type machine struct {
	cfg   config.Machine
	cond  *condition
	stale time.Duration // staleness limit of its sensors

	state machineState
	since time.Time
	// stopStart is when the open stop began; zero if none is open.
	stopStart time.Time
	downSent  bool   // the open stop's down event was emitted
	err       string // the latest run-time error, logged once

	// Today's figures: day is the local date ("2006-01-02") they are for,
	// "" before the first evaluation; first is the start of the day's
	// observed window.
	day        string
	first      time.Time
	downToday  time.Duration // closed stops' downtime today
	stopsToday int
}

const dayLayout = "2006-01-02"

func midnight(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, t.Location())
}

func (m *machine) minDowntime() time.Duration {
	if d := m.cfg.MinDowntime.D(); d > 0 {
		return d
	}
	return config.DefaultMinDowntime.D()
}

// rollDay starts today's figures at now's first evaluation of a new day.
func (m *machine) rollDay(now time.Time) {
	d := now.Format(dayLayout)
	switch {
	case m.day == "":
		m.day, m.first = d, now
	case d > m.day:
		// Observed across midnight: today's window starts at midnight.
		m.day, m.first = d, midnight(now)
		m.downToday, m.stopsToday = 0, 0
	}
}

// evalMachine evaluates m at now and records the events it causes.
func (e *Engine) evalMachine(m *machine, now time.Time) {
	m.rollDay(now)
	up, known, err := e.run(m.cond)
	if err != nil {
		if msg := firstLine(err.Error()); msg != m.err {
			e.log.Warn("machine running expression failed, state unknown", "machine", m.cfg.Name, "err", msg)
			m.err = msg
		}
	}
	if known {
		for _, s := range m.cond.needs {
			if now.Sub(e.hist.seen[s]) > m.stale {
				known = false
				break
			}
		}
	}
	next := machineUnknown
	switch {
	case known && up:
		next = machineUp
	case known:
		next = machineDown
	}
	if next != m.state {
		m.state, m.since = next, now
	}
	if next == machineDown && m.stopStart.IsZero() {
		m.stopStart, m.downSent = now, false
	}
	if m.stopStart.IsZero() {
		return
	}
	if !m.downSent && now.Sub(m.stopStart) >= m.minDowntime() {
		m.downSent = true
		m.stopsToday++
		e.events = append(e.events, reading.Event{
			Machine: m.cfg.Name, State: reading.StateDown, Start: m.stopStart, Duration: now.Sub(m.stopStart),
		})
	}
	if next == machineUp {
		if m.downSent {
			e.events = append(e.events, reading.Event{
				Machine: m.cfg.Name, State: reading.StateUp, Start: m.stopStart, End: now, Duration: now.Sub(m.stopStart),
			})
		}
		m.downToday += now.Sub(later(m.stopStart, m.first))
		m.stopStart, m.downSent = time.Time{}, false
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// TakeEvents returns the downtime events produced since the last call, in
// order, and forgets them. The pipeline calls it after each Observe and
// Tick.
func (e *Engine) TakeEvents() []reading.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.events
	e.events = nil
	return out
}

// Machines returns every machine's state and today's figures as of now, in
// config order. It does not change the engine (a now on a later day shows
// that day's figures without rolling over), and it is safe to call while
// Observe and Tick run on another goroutine.
func (e *Engine) Machines(now time.Time) []MachineStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]MachineStatus, len(e.machines))
	for i, m := range e.machines {
		down, stops, first := m.downToday, m.stopsToday, m.first
		if d := now.Format(dayLayout); m.day != "" && d > m.day {
			down, stops, first = 0, 0, midnight(now)
		}
		if !m.stopStart.IsZero() && !first.IsZero() {
			if from := later(m.stopStart, first); now.After(from) {
				down += now.Sub(from)
			}
		}
		avail := 1.0
		if elapsed := now.Sub(first); !first.IsZero() && elapsed > 0 {
			avail = min(max(1-float64(down)/float64(elapsed), 0), 1)
		}
		out[i] = MachineStatus{
			Name:          m.cfg.Name,
			State:         m.state.String(),
			Since:         m.since,
			StopStart:     m.stopStart,
			DowntimeToday: down,
			StopsToday:    stops,
			Availability:  avail,
			Running:       m.cfg.Running,
		}
	}
	return out
}
