package gateway

import (
	"math"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/edgegw/edgegw/rules"
)

// The gateway's own conditions are alerts too, named edgegw_<condition>
// (DESIGN.md): they go to Kafka and MQTT through route like a rule's, and
// show on the page, in /api/alerts and on the annunciator beside them.
const (
	// alertSpoolCorrupt fires when the spool file was found corrupt at
	// start and moved aside. It reports something that happened rather
	// than a condition that can end: it resolves when an operator
	// acknowledges it.
	alertSpoolCorrupt = "edgegw_spool_corrupt"
	// alertUplinkDown fires when no produce has succeeded for
	// uplinkDownAfter, and resolves with the next one that does.
	alertUplinkDown = "edgegw_uplink_down"
	// alertSpoolFull fires while the spool drops or refuses records
	// (buffer.max_bytes reached, or the disk cannot take them), and from
	// the first failed commit on a full disk; it resolves once records fit
	// again (buffer.Spool.Full).
	alertSpoolFull = "edgegw_spool_full"
)

// reportsEvent tells the own alerts that report something that happened
// (a corrupt file found, the clock stepped) rather than a condition that
// ends by itself: they resolve when an operator acknowledges them.
func reportsEvent(rule string) bool {
	return rule == alertSpoolCorrupt || rule == alertClockJump
}

// uplinkDownAfter is how long Kafka may fail before edgegw_uplink_down
// fires: a broker's leader election or a short network blip should not
// light the stack light.
const uplinkDownAfter = time.Minute

type ownAlert struct {
	severity, message string
	since, ackedAt    time.Time
	resolveOnAck      bool
}

// ownAlerts are the gateway's own firing alerts.
type ownAlerts struct {
	mu     sync.Mutex
	firing map[string]*ownAlert
	order  []string // rule names in the order they first fired
}

// raise fires one of the gateway's own alerts, unless it fires already.
func (g *Gateway) raise(rule, severity, message string) {
	g.own.mu.Lock()
	if g.own.firing == nil {
		g.own.firing = map[string]*ownAlert{}
	}
	if _, ok := g.own.firing[rule]; ok {
		g.own.mu.Unlock()
		return
	}
	now := g.clock.Now()
	a := &ownAlert{severity: severity, message: message, since: now, resolveOnAck: reportsEvent(rule)}
	g.own.firing[rule] = a
	g.own.order = append(g.own.order, rule)
	g.own.mu.Unlock()
	g.route(reading.Alert{Rule: rule, State: reading.StateFiring, Severity: severity,
		Value: math.NaN(), Since: now, TS: now, Message: message})
}

// resolve resolves one of the gateway's own alerts if it fires.
func (g *Gateway) resolve(rule string) {
	g.own.mu.Lock()
	a, ok := g.own.firing[rule]
	if ok {
		delete(g.own.firing, rule)
		for i, r := range g.own.order {
			if r == rule {
				g.own.order = append(g.own.order[:i], g.own.order[i+1:]...)
				break
			}
		}
	}
	g.own.mu.Unlock()
	if ok {
		now := g.clock.Now()
		g.route(reading.Alert{Rule: rule, State: reading.StateResolved, Severity: a.severity,
			Value: math.NaN(), Since: a.since, TS: now, Message: a.message})
	}
}

// ackOwn acknowledges one of the gateway's own alerts; ok is false when
// rule is not one that fires.
func (g *Gateway) ackOwn(rule string) (ok bool) {
	g.own.mu.Lock()
	a, ok := g.own.firing[rule]
	if ok {
		a.ackedAt = g.clock.Now()
	}
	resolve := ok && a.resolveOnAck
	g.own.mu.Unlock()
	if resolve {
		g.resolve(rule)
	}
	return ok
}

// ownStatuses gives the firing own alerts as rules.Status rows.
func (g *Gateway) ownStatuses() []rules.Status {
	g.own.mu.Lock()
	defer g.own.mu.Unlock()
	out := make([]rules.Status, 0, len(g.own.order))
	for _, rule := range g.own.order {
		a := g.own.firing[rule]
		out = append(out, rules.Status{Rule: rule, Severity: a.severity, State: "firing",
			Since: a.since, FiredAt: a.since, Acked: !a.ackedAt.IsZero(), AckedAt: a.ackedAt,
			Value: math.NaN(), Message: a.message})
	}
	return out
}

// allAlerts is the rules' alerts and the gateway's own.
func (g *Gateway) allAlerts() []rules.Status {
	return append(g.engine.Load().Alerts(), g.ownStatuses()...)
}

// checkOwn raises or resolves the conditions the gateway watches; the
// pipeline goroutine calls it on every tick.
func (g *Gateway) checkOwn(now time.Time) {
	if g.spool != nil {
		if f := g.spool.Full(); f.Since.IsZero() {
			g.resolve(alertSpoolFull)
		} else {
			g.raise(alertSpoolFull, "warning", "Buffer full: "+f.Detail)
		}
	}
	if g.uplink == nil {
		return
	}
	since, msg := g.uplink.Outage()
	switch {
	case since.IsZero():
		g.resolve(alertUplinkDown)
	case now.Sub(since) >= uplinkDownAfter:
		g.raise(alertUplinkDown, "warning", "Kafka unreachable since "+since.UTC().Format(time.RFC3339)+
			": "+msg+"; readings are kept in the spool")
	}
}
