// Package annunciator drives one output, a stack light or a siren, from
// the gateway's alert states, so that the plant floor sees an alert without
// a screen:
//
//   - nothing firing: off;
//   - something firing, and every firing critical alert acknowledged (or
//     none critical): on, steadily;
//   - a critical alert firing and not acknowledged: blinking.
//
// An operator's acknowledgement (rules.Engine.Ack) so stops the blinking
// while the alert stays firing. The Annunciator starts no goroutine: the
// caller calls Update after each alert transition and each
// acknowledgement; the output (gpio.Output) owns its blink goroutine.
package annunciator

import (
	"log/slog"
	"sync"
	"time"

	"github.com/edgegw/edgegw/rules"
)

// Light is the output the annunciator drives; *gpio.Output satisfies it.
type Light interface {
	On() error
	Off() error
	Blink(period time.Duration) error
}

// Mode is what the light shows.
type Mode uint8

const (
	Off Mode = iota
	On
	Blinking
)

func (m Mode) String() string {
	switch m {
	case On:
		return "on"
	case Blinking:
		return "blinking"
	}
	return "off"
}

// severityCritical and stateFiring are the rules.Status values that matter
// here (config's severity names, rules.Firing.String()).
const severityCritical = "critical"

var stateFiring = rules.Firing.String()

// Annunciator maps alert states to its Light. It is safe for concurrent
// use (the pipeline and the HTTP acknowledgement both call Update).
type Annunciator struct {
	light Light
	blink time.Duration
	log   *slog.Logger

	mu sync.Mutex
	// mode is the mode last set successfully; valid only if shown.
	mode  Mode
	shown bool
	// failing is set after a failed change, so a broken output is logged
	// once, not on every Update; a later success clears it.
	failing bool
}

// New returns an annunciator driving light, blinking with period blink
// (config.Annunciator.Blink). The light is left as it is until the first
// Update. logger nil means slog.Default().
func New(light Light, blink time.Duration, logger *slog.Logger) *Annunciator {
	if logger == nil {
		logger = slog.Default()
	}
	return &Annunciator{light: light, blink: blink, log: logger.With("component", "annunciator")}
}

// Want is the mode the alert states st call for.
func Want(st []rules.Status) Mode {
	m := Off
	for _, s := range st {
		if s.State != stateFiring {
			continue
		}
		if s.Severity == severityCritical && !s.Acked {
			return Blinking
		}
		m = On
	}
	return m
}

// Update sets the light to the mode st calls for (see Want). It touches
// the output only when that mode differs from the one shown, so a
// blinking light keeps its rhythm across Updates. A failed change is
// logged (once until a change succeeds) and retried at the next Update.
func (a *Annunciator) Update(st []rules.Status) {
	want := Want(st)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.shown && a.mode == want {
		return
	}
	var err error
	switch want {
	case Off:
		err = a.light.Off()
	case On:
		err = a.light.On()
	case Blinking:
		err = a.light.Blink(a.blink)
	}
	if err != nil {
		// Unknown what the output shows now: the next Update tries again.
		a.shown = false
		if !a.failing {
			a.log.Warn("annunciator output failed", "mode", want.String(), "err", err)
		}
		a.failing = true
		return
	}
	if a.failing {
		a.log.Info("annunciator output works again", "mode", want.String())
	}
	a.mode, a.shown, a.failing = want, true, false
}

// Mode is the mode last set successfully, and whether there is one.
func (a *Annunciator) Mode() (Mode, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mode, a.shown
}
