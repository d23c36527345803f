package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// State is everything the page shows, as one document: the payload of each
// /events event and of GET /api/state.
type State struct {
	Gateway    GatewayInfo `json:"gateway"`
	Now        time.Time   `json:"now"` // the gateway's clock: the page's timers count from it
	Filter     Filter      `json:"filter"`
	AckEnabled bool        `json:"ack_enabled"`
	Health     Health      `json:"health"`
	Machines   []Machine   `json:"machines"`
	Alerts     []Alert     `json:"alerts"`
	Sensors    []Sensor    `json:"sensors"`
}

// Filter narrows the state to one line or some machines: `?line=line1`,
// `?machine=press,oven` (or machine repeated). Both may be given.
type Filter struct {
	Line     string   `json:"line"`
	Machines []string `json:"machines"`
}

func (f Filter) empty() bool { return f.Line == "" && len(f.Machines) == 0 }

// parseFilter reads the filter from r's query. A line or machine the
// gateway does not have is an error naming what it has: a kiosk URL with a
// typo should say so rather than show an empty screen.
func (s *Server) parseFilter(r *http.Request) (Filter, error) {
	q := r.URL.Query()
	f := Filter{Line: strings.TrimSpace(q.Get("line")), Machines: []string{}}
	for _, v := range q["machine"] {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(f.Machines, name) {
				f.Machines = append(f.Machines, name)
			}
		}
	}
	if f.empty() {
		return f, nil
	}
	lines := []string{}
	if s.opts.Gateway.Line != "" {
		lines = append(lines, s.opts.Gateway.Line)
	}
	var names []string
	for _, m := range s.opts.Machines() {
		names = append(names, m.Name)
		if m.Line != "" && !slices.Contains(lines, m.Line) {
			lines = append(lines, m.Line)
		}
	}
	if f.Line != "" && !slices.Contains(lines, f.Line) {
		return f, fmt.Errorf("line=%s: this gateway has no line %q (lines: %s)", f.Line, f.Line, list(lines))
	}
	for _, m := range f.Machines {
		if !slices.Contains(names, m) {
			return f, fmt.Errorf("machine=%s: this gateway has no machine %q (machines: %s)", m, m, list(names))
		}
	}
	return f, nil
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// state gathers the state and keeps what f selects. A sensor or alert that
// belongs to no machine is on the gateway's line: a line's view shows it, a
// machine's view does not.
func (s *Server) state(f Filter) State {
	st := State{
		Gateway:    s.opts.Gateway,
		Now:        s.opts.Clock().UTC(),
		Filter:     f,
		AckEnabled: s.opts.AckToken != "" && s.opts.Ack != nil,
		Health:     s.opts.Health(),
		Machines:   nonNil(s.opts.Machines()),
		Alerts:     nonNil(s.opts.Alerts()),
		Sensors:    nonNil(s.opts.Sensors()),
	}
	lineOf := map[string]string{}
	for i, m := range st.Machines {
		if m.Line == "" {
			st.Machines[i].Line = s.opts.Gateway.Line
		}
		lineOf[m.Name] = st.Machines[i].Line
	}
	owner := func(machine string) string {
		if l, ok := lineOf[machine]; ok {
			return l
		}
		return s.opts.Gateway.Line
	}
	for i := range st.Sensors {
		st.Sensors[i].Line = owner(st.Sensors[i].Machine)
	}
	for i := range st.Alerts {
		st.Alerts[i].Line = owner(st.Alerts[i].Machine)
	}
	if f.empty() {
		return st
	}
	keep := func(machine, line string) bool {
		if len(f.Machines) > 0 && !slices.Contains(f.Machines, machine) {
			return false
		}
		return f.Line == "" || line == f.Line
	}
	st.Machines = slices.DeleteFunc(st.Machines, func(m Machine) bool { return !keep(m.Name, m.Line) })
	st.Sensors = slices.DeleteFunc(st.Sensors, func(x Sensor) bool { return !keep(x.Machine, x.Line) })
	st.Alerts = slices.DeleteFunc(st.Alerts, func(a Alert) bool { return !keep(a.Machine, a.Line) })
	return st
}

func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
