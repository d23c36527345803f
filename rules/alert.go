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
}

// step advances the alert by one evaluation of its condition at now, with
// hold the rule's `for:`. A condition that turns false while pending
// leaves without a trace; one that turns false while firing resolves.
func (a *alertState) step(cond bool, now time.Time, hold time.Duration) transition {
	if !cond {
		was := a.state
		a.state = Inactive
		if was == Firing {
			a.resolvedAt = now
			return toResolved
		}
		return noTransition
	}
	if a.state == Inactive {
		a.state = Pending
		a.activeAt = now
	}
	// With for: 0 this fires in the same evaluation that saw the condition
	// first, so since == ts.
	if a.state == Pending && now.Sub(a.activeAt) >= hold {
		a.state = Firing
		a.firedAt = now
		return toFiring
	}
	return noTransition
}
