// Package rules evaluates edgegw's alert rules on the gateway, next to the
// machines, independent of the uplink: alerts fire on the plant floor while
// Kafka is unreachable.
//
// A rule is a boolean expr-lang expression over sensor ids (`press_temp >
// 80`), compiled once. Its alert walks the lifecycle of Prometheus'
// alerting rules: inactive → pending (true, `for:` not yet elapsed) →
// firing → resolved (back to inactive). Only firing and resolved leave the
// package, as reading.Alert values the caller routes to its sinks; each is
// returned exactly once.
//
// The contract a caller relies on:
//   - Time is passed in (`now`), never read from a clock, so `for:` is
//     tested with exact timestamps and no sleeps. The engine starts no
//     goroutine.
//   - Observe and Tick are called from one goroutine (the pipeline).
//     Alerts may be called from any goroutine at the same time.
//   - A rule that names a sensor without a value yet is false, not an
//     error; so is a rule whose history function has no data in its
//     window (see history.go), and a rule whose evaluation fails at run
//     time (it is counted and logged once per distinct error). Nothing
//     here panics on bad data.
//   - Bad-quality readings and NaN values are not values: the sensor keeps
//     its previous value, its history does not record them and age()
//     keeps counting.
//   - `clear:` gives hysteresis: a firing alert resolves only once clear
//     is true (a false clear, or one over missing data, keeps it firing),
//     not merely when expr turns false. `keep_firing_for:` then holds it
//     firing that much longer; if expr returns meanwhile nothing is
//     emitted. Both act only on a firing alert: a pending one whose expr
//     turns false goes back to inactive.
//
// The engine also tracks the config's machines (up, down or unknown, from
// their `running` expressions) and turns stops into downtime events, handed
// out by TakeEvents; today's figures per machine come from Machines. See
// machine.go. Snapshot and Restore carry alert and machine state across a
// restart or reload; see state.go.
package rules

import (
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// Status is one rule's alert as the dashboard and /api/alerts show it.
type Status struct {
	Rule     string
	Expr     string
	Severity string
	State    string    // inactive | pending | firing
	Since    time.Time // when the condition became true; zero while inactive
	FiredAt  time.Time // when it started firing; zero unless firing
	// Acked is whether an operator acknowledged the firing alert (Ack);
	// AckedAt is when, zero unless Acked. A new firing starts unacked.
	Acked   bool
	AckedAt time.Time
	// Value is the latest value of the first sensor the expression names;
	// 0 before that sensor's first reading.
	Value float64
	// Message is the rendered message while pending or firing, with
	// Duration counted to the latest Observe or Tick; "" while inactive.
	Message string
	Labels  map[string]string
	Machine string // the machine the alert is about, "" for none (see owner.go)
	Errors  uint64 // evaluations that failed at run time and counted as false
	Error   string // the latest such failure, "" if none ever did
}

// Engine evaluates a config's rules. Create it with New.
type Engine struct {
	log *slog.Logger

	evals                prometheus.Counter
	firing               prometheus.Gauge
	toFiring, toResolved prometheus.Counter

	sensors *sensorTable
	rules   []*rule
	// bySensor lists, per sensor index, the rules whose expression names
	// it: a reading re-evaluates only those.
	bySensor [][]int
	// machines are the config's machines (see machine.go); byMachine
	// lists, per sensor index, the machines whose running expression
	// names it.
	machines  []*machine
	byMachine [][]int
	// byReason lists, per sensor index, the machines whose reason sensor
	// it is.
	byReason [][]int
	// sensorMachine is, per sensor index, the machine the sensor belongs
	// to ("" for none; owner.go).
	sensorMachine []string

	// mu guards everything below and the rules' alert state: Observe and
	// Tick write them, Alerts reads them from another goroutine.
	mu     sync.Mutex
	values []float64 // per sensor index
	has    []bool    // per sensor index: a value has been seen
	// env is the environment expressions run with. They read sensors
	// through functions (sensorPatcher) from sensors.vals, boxed once per
	// reading; only if some compiled expression still reads a sensor by
	// name (useEnv) does env hold the values too (a map[string]any is
	// expr's fastest path for names: one lookup, no reflection). Both
	// hold the same values as `values`, which the engine itself reads.
	env    map[string]any
	useEnv bool
	// boxes interns boxed reading values, so that a value seen recently
	// (a steady or quantised signal: a 0/1 running signal, a counter, a
	// scaled int16 register) is not boxed, allocated, again.
	boxes   [256]box
	vm      vm.VM // reused so an evaluation allocates no VM stack
	lastNow time.Time
	// hist is the sensors' reading times and windows, read by the
	// history functions; its start is the gateway's start.
	hist *history
	// events are the downtime events produced since the last TakeEvents.
	events []reading.Event
}

// New compiles c's rules. An invalid rule makes it return the same
// config.Problems that Check gives. m may be nil (tools, tests): the
// engine then counts into a private set. start is the gateway's start.
func New(c *config.Config, m *metrics.Set, start time.Time) (*Engine, error) {
	t, rules, machines, ps := compile(c)
	if ps != nil {
		return nil, ps
	}
	interval := make([]time.Duration, len(t.ids))
	for _, sc := range c.Sensors {
		if i, ok := t.index[sc.ID]; ok && t.ids[i] == sc.ID && interval[i] == 0 {
			interval[i] = sc.Interval.D()
		}
	}
	if m == nil {
		m = metrics.New()
	}
	t.hist.start = start
	t.hist.size(len(t.ids), func(s int) time.Duration { return interval[s] }, MaxHistoryPoints)
	e := &Engine{
		hist:       t.hist,
		log:        slog.Default().With("component", "rules"),
		evals:      m.RuleEvals,
		firing:     m.AlertsFiring,
		toFiring:   m.Transitions.WithLabelValues(reading.StateFiring),
		toResolved: m.Transitions.WithLabelValues(reading.StateResolved),
		sensors:    t,
		rules:      rules,
		bySensor:   make([][]int, len(t.ids)),
		values:     make([]float64, len(t.ids)),
		has:        make([]bool, len(t.ids)),
		env:        make(map[string]any, len(t.ids)),
		machines:   machines,
		byMachine:  make([][]int, len(t.ids)),
		byReason:   make([][]int, len(t.ids)),
	}
	for mi, m := range machines {
		m.stale = minStale
		for _, s := range m.cond.sensors {
			m.stale = max(m.stale, 3*interval[s])
			e.byMachine[s] = append(e.byMachine[s], mi)
		}
		m.state, m.since = machineUnknown, start
		if m.reason >= 0 {
			e.byReason[m.reason] = append(e.byReason[m.reason], mi)
		}
	}
	for _, m := range machines {
		e.useEnv = e.useEnv || m.cond.env
	}
	for ri, r := range rules {
		e.useEnv = e.useEnv || r.cond.env || r.clear != nil && r.clear.env
		for _, c := range []*condition{r.cond, r.clear} {
			for _, s := range c.names() {
				if !slices.Contains(e.bySensor[s], ri) {
					e.bySensor[s] = append(e.bySensor[s], ri)
				}
			}
		}
	}
	e.assignOwners(c)
	return e, nil
}

// Observe records r as its sensor's latest value and evaluates the rules
// that name that sensor, at now. It returns the transitions this caused.
func (e *Engine) Observe(r reading.Reading, now time.Time) []reading.Alert {
	i, ok := e.sensors.index[r.Sensor]
	// A sensor no rule names cannot change any rule: skip even the lock,
	// which keeps the pipeline's per-reading cost near zero for them.
	if !ok || len(e.bySensor[i]) == 0 && len(e.byMachine[i]) == 0 && len(e.byReason[i]) == 0 || r.Quality == reading.Bad || math.IsNaN(r.Value) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastNow = now
	e.hist.now = now
	e.hist.record(i, r.Value, now)
	e.values[i] = r.Value
	e.has[i] = true
	e.sensors.vals[i] = e.box(r.Value)
	if e.useEnv {
		e.env[e.sensors.ids[i]] = e.sensors.vals[i]
	}
	var out []reading.Alert
	for _, ri := range e.bySensor[i] {
		out = e.eval(e.rules[ri], now, out)
	}
	for _, mi := range e.byMachine[i] {
		out = e.evalMachine(e.machines[mi], now, out)
	}
	for _, mi := range e.byReason[i] {
		e.machines[mi].observeReason(r.Value)
	}
	// One add per reading, not one per evaluation: the counter is atomic
	// and shared with the /metrics scrape.
	e.evals.Add(float64(len(e.bySensor[i])))
	return out
}

// box returns v as an interface value, from e.boxes if it is there.
func (e *Engine) box(v float64) any {
	bits := math.Float64bits(v)
	b := &e.boxes[(bits*0x9e3779b97f4a7c15)>>56]
	if b.v == nil || b.bits != bits {
		b.v, b.bits = v, bits
	}
	return b.v
}

// Tick evaluates every rule at now, so that `for:`, `keep_firing_for:`,
// age() and windows fire (and end) without new readings. The caller
// ticks every second by default.
func (e *Engine) Tick(now time.Time) []reading.Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.lastNow = now
	e.hist.now = now
	var out []reading.Alert
	for _, r := range e.rules {
		out = e.eval(r, now, out)
	}
	for _, m := range e.machines {
		out = e.evalMachine(m, now, out)
	}
	e.evals.Add(float64(len(e.rules)))
	return out
}

// eval evaluates r at now and appends the transition it causes, if any.
func (e *Engine) eval(r *rule, now time.Time, out []reading.Alert) []reading.Alert {
	if r.restored {
		for _, s := range r.cond.needs {
			if !e.has[s] {
				return out
			}
		}
		r.restored = false
	}
	cond := e.test(r, r.cond)
	cleared := !cond
	if cleared && r.clear != nil && r.alert.state == Firing {
		cleared = e.test(r, r.clear)
	}
	switch r.alert.step(cond, cleared, now, r.hold, r.keep) {
	case toFiring:
		// Inc/Dec rather than Set: the gateway's own edgegw_* alerts count
		// into the same gauge.
		e.firing.Inc()
		e.toFiring.Inc()
		return append(out, e.transition(r, reading.StateFiring, now))
	case toResolved:
		e.firing.Dec()
		e.toResolved.Inc()
		return append(out, e.transition(r, reading.StateResolved, now))
	}
	return out
}

// test evaluates c, one of r's conditions. Missing data and run-time
// errors are false.
func (e *Engine) test(r *rule, c *condition) bool {
	b, known, err := e.run(c)
	if err == nil {
		return b && known
	}
	r.errors++
	if msg := firstLine(err.Error()); msg != r.err {
		// Once per distinct error, not once per evaluation: a broken rule
		// is evaluated on every reading and every tick.
		e.log.Warn("rule evaluation failed, counted as false", "rule", r.cfg.Name, "err", msg)
		r.err = msg
	}
	return false
}

// run evaluates c. known is false when a sensor it reads as a value has
// none yet or a history function had no data; err is a run-time failure.
func (e *Engine) run(c *condition) (b, known bool, err error) {
	for _, s := range c.needs {
		if !e.has[s] {
			return false, false, nil
		}
	}
	e.hist.missing = false
	// vm.Run recovers the VM's own panics (an integer division by zero, a
	// bad conversion) into err.
	out, err := e.vm.Run(c.program, e.env)
	if err != nil {
		return false, false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, false, fmt.Errorf("result %v (%T) is not a boolean", out, out)
	}
	return b, !e.hist.missing, nil
}

func (e *Engine) transition(r *rule, state string, now time.Time) reading.Alert {
	d := e.messageData(r, now)
	msg, err := r.message(d)
	if err != nil {
		e.log.Warn("alert message template failed, sent the default message", "rule", r.cfg.Name, "err", err)
	}
	return reading.Alert{
		Rule:     r.cfg.Name,
		State:    state,
		Severity: r.cfg.Severity,
		Value:    d.Value,
		Since:    r.alert.activeAt,
		TS:       now,
		Message:  msg,
	}
}

func (e *Engine) messageData(r *rule, now time.Time) messageData {
	return messageData{
		Rule:     r.cfg.Name,
		Severity: r.cfg.Severity,
		Value:    e.value(r),
		Sensor:   e.sensor(r),
		Since:    r.alert.activeAt,
		Duration: now.Sub(r.alert.activeAt),
		Labels:   r.cfg.Labels,
	}
}

// value is the latest value of the first sensor r names (0 if none).
func (e *Engine) value(r *rule) float64 {
	if len(r.cond.sensors) == 0 {
		return 0
	}
	return e.values[r.cond.sensors[0]]
}

// sensor is the first sensor r names ("" if none).
func (e *Engine) sensor(r *rule) string {
	if len(r.cond.sensors) == 0 {
		return ""
	}
	return e.sensors.ids[r.cond.sensors[0]]
}

// Alerts returns a snapshot of every rule's alert, in config order, then
// every machine's stale-signal alert (see machine.go), in config order. It
// is safe to call while Observe and Tick run on another goroutine.
func (e *Engine) Alerts() []Status {
	out := make([]Status, len(e.rules), len(e.rules)+len(e.machines))
	data := make([]messageData, len(e.rules))
	e.mu.Lock()
	for i, r := range e.rules {
		a := r.alert
		out[i] = Status{
			Rule:     r.cfg.Name,
			Expr:     r.cfg.Expr,
			Severity: r.cfg.Severity,
			State:    a.state.String(),
			Value:    e.value(r),
			Labels:   maps.Clone(r.cfg.Labels),
			Machine:  r.machine,
			Errors:   r.errors,
			Error:    r.err,
		}
		if a.state != Inactive {
			out[i].Since = a.activeAt
			data[i] = e.messageData(r, e.lastNow)
		}
		if a.state == Firing {
			out[i].FiredAt = a.firedAt
			out[i].Acked, out[i].AckedAt = !a.ackedAt.IsZero(), a.ackedAt
		}
	}
	out = e.staleStatuses(out)
	e.mu.Unlock()
	// Templates run outside the lock: the pipeline should not wait on a
	// dashboard request. Rules' templates and config never change.
	for i, r := range e.rules {
		if out[i].State == Inactive.String() {
			continue
		}
		out[i].Message, _ = r.message(data[i])
	}
	return out
}

// Sensors returns the ids of the sensors some rule or machine names, in
// config order: the readings Observe can act on.
func (e *Engine) Sensors() []string {
	var ids []string
	for i, rs := range e.bySensor {
		if len(rs) > 0 || len(e.byMachine[i]) > 0 || len(e.byReason[i]) > 0 {
			ids = append(ids, e.sensors.ids[i])
		}
	}
	return ids
}
