package rules

import "time"

// State is where a rule is in its alert lifecycle.
type State uint8

const (
	// Inactive: the condition is false (or cannot be evaluated yet).
	Inactive State = iota
	// Pending: the condition is true but has not yet held for `for:`.
	Pending
	// Firing: the condition has held for `for:` and still holds.
	Firing
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Firing:
		return "firing"
	}
	return "inactive"
}

// transition is what one evaluation did to a rule's alert. Only the two
// that leave the gateway (firing, resolved) are transitions a caller sees;
// entering or leaving pending is internal.
type transition uint8

const (
	noTransition transition = iota
	toFiring
	toResolved
)

// alertState is one rule's alert, after Prometheus' rules/alerting.go: a
// small state machine advanced by step with the evaluation time passed in,
// never read from a clock. Its fields are what a later restart or reload
// has to carry over to keep a firing alert firing.
type alertState struct {
	state State
	// activeAt is when the condition became true: the alert's `since`.
	// It stays set after a resolve (like resolvedAt) and is meaningful
	// only while pending or firing.
	activeAt   time.Time
	firedAt    time.Time
	resolvedAt time.Time
	// keepFiringSince is when a firing alert's condition cleared, while
	// keep_firing_for holds it firing; zero otherwise.
	keepFiringSince time.Time
	// ackedAt is when an operator acknowledged the firing alert (see
	// Engine.Ack); zero when not acknowledged. Every new firing starts
	// unacknowledged.
	ackedAt time.Time
}

// step advances the alert by one evaluation at now: cond is the rule's
// condition, cleared whether a firing alert may resolve (its clear:
// expression, or simply !cond without one), hold the rule's `for:` and
// keep its `keep_firing_for:`.
//
// A condition that turns false while pending leaves without a trace. A
// firing alert resolves once cleared has held for keep (at once with keep
// 0); a condition that returns meanwhile keeps it firing with no
// transition at all, and a later clearing starts keep again.
func (a *alertState) step(cond, cleared bool, now time.Time, hold, keep time.Duration) transition {
	if cond {
		a.keepFiringSince = time.Time{}
		if a.state == Inactive {
			a.state = Pending
			a.activeAt = now
		}
		// With for: 0 this fires in the same evaluation that saw the
		// condition first, so since == ts.
		if a.state == Pending && now.Sub(a.activeAt) >= hold {
			a.state = Firing
			a.firedAt = now
			a.ackedAt = time.Time{}
			return toFiring
		}
		return noTransition
	}
	switch a.state {
	case Pending:
		a.state = Inactive
	case Firing:
		if !cleared {
			// Between expr and clear (hysteresis): still firing, and
			// keep_firing_for has not started.
			a.keepFiringSince = time.Time{}
			return noTransition
		}
		if keep > 0 {
			if a.keepFiringSince.IsZero() {
				a.keepFiringSince = now
			}
			if now.Sub(a.keepFiringSince) < keep {
				return noTransition
			}
		}
		a.state = Inactive
		a.resolvedAt = now
		a.keepFiringSince = time.Time{}
		a.ackedAt = time.Time{}
		return toResolved
	}
	return noTransition
}
