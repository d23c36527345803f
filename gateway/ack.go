package gateway

import (
	"errors"
	"fmt"

	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/gateway/annunciator"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/rules"
)

// openAlertSinks reads the operator's ack token and opens the annunciator
// output (stack light, siren), when the config has them.
func (g *Gateway) openAlertSinks() error {
	a := g.cfg.Alerts
	if a.AckTokenFile != "" {
		tok, err := ReadSecret(a.AckTokenFile)
		if err != nil {
			return fmt.Errorf("alerts.ack_token_file: %w", err)
		}
		g.ackToken = tok
	}
	if an := a.Annunciator; an != nil {
		opts := []gpio.OutputOption{gpio.WithClock(g.clock), gpio.WithLogger(g.log.With("part", "annunciator"))}
		if an.ActiveLow {
			opts = append(opts, gpio.ActiveLow())
		}
		out, err := gpio.OpenOutput(an.Pin, opts...)
		if err != nil {
			return fmt.Errorf("alerts.annunciator.pin %s: %w", an.Pin, err)
		}
		g.light = out
		g.ann = annunciator.New(out, an.Blink.D(), g.log.With("part", "annunciator"))
	}
	return nil
}

// ack acknowledges a firing alert for the HTTP API: it stays firing, the
// siren stops blinking.
func (g *Gateway) ack(rule string) error {
	if g.ackOwn(rule) {
		g.log.Info("alert acknowledged", "rule", rule)
		g.updateAnnunciator()
		return nil
	}
	err := g.engine.Load().Ack(rule, g.clock.Now())
	switch {
	case errors.Is(err, rules.ErrUnknownRule):
		return fmt.Errorf("%w: %v", httpapi.ErrUnknownRule, err)
	case errors.Is(err, rules.ErrNotFiring):
		return fmt.Errorf("%w: %v", httpapi.ErrNotFiring, err)
	case err != nil:
		return err
	}
	g.log.Info("alert acknowledged", "rule", rule)
	g.updateAnnunciator()
	return nil
}

func (g *Gateway) updateAnnunciator() {
	if g.ann != nil {
		g.ann.Update(g.allAlerts())
	}
}
