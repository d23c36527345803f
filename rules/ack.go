package rules

import (
	"errors"
	"fmt"
	"time"
)

// Errors of Ack, tested with errors.Is.
var (
	// ErrUnknownRule: no rule of that name is configured.
	ErrUnknownRule = errors.New("unknown rule")
	// ErrNotFiring: the rule's alert is inactive or pending, so there is
	// nothing to acknowledge.
	ErrNotFiring = errors.New("alert is not firing")
)

// Ack records at now that an operator acknowledged the firing alert of
// rule. The alert stays firing (and resolves as before); an annunciator
// stops blinking for it. Acknowledging an acknowledged alert keeps the
// first acknowledgement's time and is no error. The acknowledgement ends
// with the firing: a firing after a resolve starts unacknowledged.
//
// Errors wrap ErrUnknownRule or ErrNotFiring. Ack is safe to call while
// Observe and Tick run on another goroutine.
func (e *Engine) Ack(rule string, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range e.rules {
		if r.cfg.Name != rule {
			continue
		}
		if r.alert.state != Firing {
			return fmt.Errorf("rule %s: %w", rule, ErrNotFiring)
		}
		if r.alert.ackedAt.IsZero() {
			r.alert.ackedAt = now
		}
		return nil
	}
	// A machine's stale-signal alert (machine.go) is acknowledged alike.
	for _, m := range e.machines {
		if staleRule(m.cfg.Name) != rule {
			continue
		}
		if m.staleAlert.state != Firing {
			return fmt.Errorf("rule %s: %w", rule, ErrNotFiring)
		}
		if m.staleAlert.ackedAt.IsZero() {
			m.staleAlert.ackedAt = now
		}
		return nil
	}
	return fmt.Errorf("rule %s: %w", rule, ErrUnknownRule)
}
