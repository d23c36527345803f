package rules

import (
	"encoding/json"
	"fmt"
	"time"
)

// State that survives a restart or a config reload.
//
// Snapshot writes, as JSON, each rule's alert state (with its expr and
// clear text) and each machine's state, open stop and today's figures.
// Restore, called on a new engine before its first Observe or Tick, takes
// back what still applies:
//   - a rule is restored only if a rule of that name is still configured
//     with the same expr and clear text; otherwise it starts inactive. So a
//     config change resets only the rules it changed.
//   - a restored firing alert stays firing and emits no new firing
//     transition, and keeps its acknowledgement (Ack), if any; a restored pending alert keeps its since, so `for:`
//     counts from the original start. Until every sensor its expression
//     reads as a value has a reading again, a restored pending or firing
//     alert is not evaluated at all (after a restart there is no data yet,
//     which would otherwise drop or resolve it at the first tick).
//   - a machine is restored if one of that name is still configured (a
//     changed running expression keeps its state: the next evaluation
//     decides, so an open stop still ends with an up event). An open stop
//     continues with its original start, and its down event is not
//     repeated. Today's figures are restored only if the snapshot's day is
//     now's local day; otherwise they start afresh.
//     The reason code of the open or last stop is restored with it. A
//     machine's firing stale-signal alert stays firing (with its since and
//     acknowledgement) and emits no new firing; it resolves once the
//     machine reads again.
//   - rules and machines no longer configured are ignored.
//
// A snapshot that is not valid JSON of this shape (or of another version)
// is an error and changes nothing.

const snapshotVersion = 1

type snapshot struct {
	Version  int           `json:"version"`
	Rules    []ruleSnap    `json:"rules"`
	Machines []machineSnap `json:"machines"`
}

type ruleSnap struct {
	Name            string    `json:"name"`
	Expr            string    `json:"expr"`
	Clear           string    `json:"clear,omitempty"`
	State           string    `json:"state"`
	ActiveAt        time.Time `json:"active_at,omitzero"`
	FiredAt         time.Time `json:"fired_at,omitzero"`
	ResolvedAt      time.Time `json:"resolved_at,omitzero"`
	KeepFiringSince time.Time `json:"keep_firing_since,omitzero"`
	// AckedAt is an operator's acknowledgement of a firing alert. Added
	// without a version bump: a snapshot without it restores unacked.
	AckedAt time.Time `json:"acked_at,omitzero"`
}

type machineSnap struct {
	Name        string    `json:"name"`
	Running     string    `json:"running"`
	State       string    `json:"state"`
	Since       time.Time `json:"since,omitzero"`
	StopStart   time.Time `json:"stop_start,omitzero"`
	DownEmitted bool      `json:"down_emitted,omitempty"`
	// Day is the local date the figures below are for, "" if none yet.
	Day             string        `json:"day,omitempty"`
	First           time.Time     `json:"first,omitzero"`
	DowntimeTodayNs time.Duration `json:"downtime_today_ns"`
	StopsToday      int           `json:"stops_today"`
	// Reason and the stale-signal alert were added without a version
	// bump: a snapshot without them restores none.
	Reason *float64 `json:"reason,omitempty"`
	// StaleFiredAt is when the stale-signal alert fired; zero unless it
	// is firing. StaleSince is its since, StaleAckedAt its
	// acknowledgement.
	StaleFiredAt time.Time `json:"stale_fired_at,omitzero"`
	StaleSince   time.Time `json:"stale_since,omitzero"`
	StaleAckedAt time.Time `json:"stale_acked_at,omitzero"`
}

// Snapshot returns the engine's restorable state as JSON. It is safe to
// call while Observe and Tick run on another goroutine.
func (e *Engine) Snapshot() ([]byte, error) {
	e.mu.Lock()
	s := snapshot{Version: snapshotVersion, Rules: make([]ruleSnap, 0, len(e.rules)), Machines: make([]machineSnap, 0, len(e.machines))}
	for _, r := range e.rules {
		a := r.alert
		s.Rules = append(s.Rules, ruleSnap{
			Name: r.cfg.Name, Expr: r.cfg.Expr, Clear: r.cfg.Clear, State: a.state.String(),
			ActiveAt: a.activeAt, FiredAt: a.firedAt, ResolvedAt: a.resolvedAt, KeepFiringSince: a.keepFiringSince,
			AckedAt: a.ackedAt,
		})
	}
	for _, m := range e.machines {
		ms := machineSnap{
			Name: m.cfg.Name, Running: m.cfg.Running, State: m.state.String(), Since: m.since,
			StopStart: m.stopStart, DownEmitted: m.downSent,
			Day: m.day, First: m.first, DowntimeTodayNs: m.downToday, StopsToday: m.stopsToday,
		}
		if m.hasReason {
			v := m.reasonVal
			ms.Reason = &v
		}
		if a := m.staleAlert; a.state == Firing {
			ms.StaleFiredAt, ms.StaleSince, ms.StaleAckedAt = a.firedAt, a.activeAt, a.ackedAt
		}
		s.Machines = append(s.Machines, ms)
	}
	e.mu.Unlock()
	return json.Marshal(s)
}

func parseState(s string) (State, bool) {
	for _, st := range []State{Inactive, Pending, Firing} {
		if st.String() == s {
			return st, true
		}
	}
	return Inactive, false
}

// Restore takes back the state of b, a Snapshot of an earlier engine, as
// of now (see the notes above). Call it before the first Observe or Tick.
func (e *Engine) Restore(b []byte, now time.Time) error {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rules state: %w", err)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("rules state: version %d, want %d", s.Version, snapshotVersion)
	}
	states := make([]State, len(s.Rules))
	for i, rs := range s.Rules {
		st, ok := parseState(rs.State)
		if !ok {
			return fmt.Errorf("rules state: rule %q: unknown state %q", rs.Name, rs.State)
		}
		states[i] = st
	}
	mstates := make([]machineState, len(s.Machines))
	for i, ms := range s.Machines {
		st, ok := parseMachineState(ms.State)
		if !ok {
			return fmt.Errorf("rules state: machine %q: unknown state %q", ms.Name, ms.State)
		}
		mstates[i] = st
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	rules := make(map[string]*rule, len(e.rules))
	for _, r := range e.rules {
		rules[r.cfg.Name] = r
	}
	for i, rs := range s.Rules {
		r := rules[rs.Name]
		if r == nil || r.cfg.Expr != rs.Expr || r.cfg.Clear != rs.Clear {
			continue
		}
		was := r.alert.state
		r.alert = alertState{
			state: states[i], activeAt: rs.ActiveAt, firedAt: rs.FiredAt,
			resolvedAt: rs.ResolvedAt, keepFiringSince: rs.KeepFiringSince,
		}
		if states[i] == Firing {
			r.alert.ackedAt = rs.AckedAt
		}
		switch {
		case was != Firing && states[i] == Firing:
			e.firing.Inc()
		case was == Firing && states[i] != Firing:
			e.firing.Dec()
		}
		r.restored = states[i] != Inactive
	}
	machines := make(map[string]*machine, len(e.machines))
	for _, m := range e.machines {
		machines[m.cfg.Name] = m
	}
	today := now.Format(dayLayout)
	for i, ms := range s.Machines {
		m := machines[ms.Name]
		if m == nil {
			continue
		}
		m.state, m.since = mstates[i], ms.Since
		m.stopStart, m.downSent = ms.StopStart, ms.DownEmitted && !ms.StopStart.IsZero()
		m.day, m.first, m.downToday, m.stopsToday = "", time.Time{}, 0, 0
		if ms.Day == today {
			m.day, m.first, m.downToday, m.stopsToday = ms.Day, ms.First, ms.DowntimeTodayNs, ms.StopsToday
		}
		m.reasonVal, m.hasReason = 0, false
		if ms.Reason != nil {
			m.reasonVal, m.hasReason = *ms.Reason, true
		}
		was := m.staleAlert.state
		m.staleAlert = alertState{}
		if !ms.StaleFiredAt.IsZero() && mstates[i] == machineUnknown {
			m.staleAlert = alertState{state: Firing, activeAt: ms.StaleSince, firedAt: ms.StaleFiredAt, ackedAt: ms.StaleAckedAt}
		}
		switch st := m.staleAlert.state; {
		case was != Firing && st == Firing:
			e.firing.Inc()
		case was == Firing && st != Firing:
			e.firing.Dec()
		}
	}
	return nil
}
