package rules

import (
	"math"
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
//
// A machine's `reason` sensor, if configured, carries the stop's reason
// code: its readings observed while a stop is open (down, or unknown
// during a stop) are recorded, the last one wins, and it stays shown
// after the stop ends, until the next stop begins (which starts without
// one). A reading from before the stop does not count. It is shown by
// Machines only; downtime events do not carry it.
//
// A machine that is unknown is itself an alert, named
// `<machine>_signal_stale` (a rule may not take that name; Check says so),
// severity warning: it fires at the first evaluation that sees the machine
// unknown, with since = when it became unknown, and resolves at the first
// evaluation that sees it up or down; each transition once. Right after
// the engine's start (or a restart) the machine has had no chance to read:
// the alert does not fire before start + the machine's staleness limit
// (then with since = start if it has been unknown all along); a restored
// firing one stays firing meanwhile while the machine is unknown. It counts in
// the firing gauge, is listed by Alerts after the rules, can be
// acknowledged like a rule's alert, and survives a restart (state.go).

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
	Line  string    // machines[].line, default gateway.line
	State string    // "up" | "down" | "unknown"
	Since time.Time // when the current state began (the engine's start at first)
	// StopStart is when the open stop began; zero if none is open.
	StopStart     time.Time
	DowntimeToday time.Duration
	StopsToday    int
	Availability  float64 // 0..1, see the package notes on machines
	Running       string  // the running expression
	// Reason is the reason code of the open stop or, with none open, of
	// the last one: the reason sensor's last value seen during it.
	// HasReason is false when no reason sensor is configured or it sent
	// nothing during that stop.
	Reason    float64
	HasReason bool
}

// staleSeverity is the severity of a machine's stale-signal alert.
const staleSeverity = "warning"

// staleRule is the rule name of machine's stale-signal alert.
func staleRule(machine string) string { return machine + "_signal_stale" }

// machine is one configured machine and its downtime state.
type machine struct {
	cfg   config.Machine
	cond  *condition
	stale time.Duration // staleness limit of its sensors
	// reason is the sensor index of the reason sensor, -1 if none.
	reason int

	state machineState
	since time.Time
	// stopStart is when the open stop began; zero if none is open.
	stopStart time.Time
	downSent  bool   // the open stop's down event was emitted
	err       string // the latest run-time error, logged once
	// reasonVal is the current or last stop's reason code, if hasReason.
	reasonVal float64
	hasReason bool
	// staleAlert is the machine's stale-signal alert (only inactive or
	// firing: it has no `for:`).
	staleAlert alertState

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

// evalMachine evaluates m at now, records the events it causes and
// appends its stale-signal alert's transition, if any, to out.
func (e *Engine) evalMachine(m *machine, now time.Time, out []reading.Alert) []reading.Alert {
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
	out = e.evalStale(m, now, out)
	if next == machineDown && m.stopStart.IsZero() {
		m.stopStart, m.downSent = now, false
		m.reasonVal, m.hasReason = 0, false
	}
	if m.stopStart.IsZero() {
		return out
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
	return out
}

// evalStale advances m's stale-signal alert at now and appends its
// transition, if any.
func (e *Engine) evalStale(m *machine, now time.Time, out []reading.Alert) []reading.Alert {
	// The start grace only delays a firing: a restored firing alert of a
	// machine still unknown stays firing.
	stale := m.state == machineUnknown && (m.staleAlert.state == Firing || now.Sub(e.hist.start) >= m.stale)
	switch m.staleAlert.step(stale, !stale, now, 0, 0) {
	case toFiring:
		m.staleAlert.activeAt = m.since
		e.firing.Inc()
		e.toFiring.Inc()
		return append(out, e.staleTransition(m, reading.StateFiring, now))
	case toResolved:
		e.firing.Dec()
		e.toResolved.Inc()
		return append(out, e.staleTransition(m, reading.StateResolved, now))
	}
	return out
}

func (e *Engine) staleTransition(m *machine, state string, now time.Time) reading.Alert {
	return reading.Alert{
		Rule:     staleRule(m.cfg.Name),
		State:    state,
		Severity: staleSeverity,
		Value:    math.NaN(),
		Since:    m.staleAlert.activeAt,
		TS:       now,
		Message:  staleMessage(m),
	}
}

func staleMessage(m *machine) string {
	return "Machine " + m.cfg.Name + ": running signal stale or missing"
}

// observeReason records v, a reading of m's reason sensor, if a stop is
// open.
func (m *machine) observeReason(v float64) {
	if !m.stopStart.IsZero() {
		m.reasonVal, m.hasReason = v, true
	}
}

// staleStatuses appends the machines' stale-signal alerts as Alerts shows
// them. The caller holds e.mu.
func (e *Engine) staleStatuses(out []Status) []Status {
	for _, m := range e.machines {
		a := m.staleAlert
		st := Status{
			Rule:     staleRule(m.cfg.Name),
			Expr:     m.cfg.Running,
			Severity: staleSeverity,
			State:    a.state.String(),
			Value:    math.NaN(),
			Machine:  m.cfg.Name,
		}
		if a.state == Firing {
			st.Since, st.FiredAt = a.activeAt, a.firedAt
			st.Acked, st.AckedAt = !a.ackedAt.IsZero(), a.ackedAt
			st.Message = staleMessage(m)
		}
		out = append(out, st)
	}
	return out
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
			Line:          m.cfg.Line,
			State:         m.state.String(),
			Since:         m.since,
			StopStart:     m.stopStart,
			DowntimeToday: down,
			StopsToday:    stops,
			Availability:  avail,
			Running:       m.cfg.Running,
			Reason:        m.reasonVal,
			HasReason:     m.hasReason,
		}
	}
	return out
}
