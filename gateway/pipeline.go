package gateway

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// pipeline is the one goroutine that owns the rules engine and the order of
// appends to the spool: each reading is shown to the rules first (alerts do
// not wait for the uplink), then appended, then its transitions. It returns
// once g.in is closed and drained.
func (g *Gateway) pipeline() {
	tick := g.clock.NewTicker(g.opts.TickInterval)
	defer tick.Stop()
	for {
		select {
		case it, ok := <-g.in:
			if !ok {
				return
			}
			g.handle(it)
		case req := <-g.swap:
			g.applySwap(req)
		case <-tick.Chan():
			now := g.clock.Now()
			for _, a := range g.engine.Load().Tick(now) {
				g.route(a)
			}
			g.routeEvents()
			if now.Sub(g.savedAt) >= stateSaveEvery {
				g.saveState(now)
			}
		}
	}
}

// stateSaveEvery is how often the rules' state (alerts, machines, today's
// downtime) is written besides at a clean stop; a crash loses at most this
// much of today's totals, never a downtime event (those are in the spool).
const stateSaveEvery = 30 * time.Second

// routeEvents appends the downtime events the last evaluation produced.
func (g *Gateway) routeEvents() {
	for _, e := range g.engine.Load().TakeEvents() {
		g.routeEventValue(e)
	}
}

func (g *Gateway) routeEventValue(e reading.Event) {
	if _, err := g.spool.Append(reading.FromEvent(e), nil); err != nil {
		g.log.Error("downtime event not spooled", "machine", e.Machine, "state", e.State, "err", err)
	}
	g.log.Info("downtime", "machine", e.Machine, "state", e.State, "start", e.Start, "duration", e.Duration)
}

// saveState writes the rules' state next to the spool, atomically.
func (g *Gateway) saveState(now time.Time) {
	g.savedAt = now
	b, err := g.engine.Load().Snapshot()
	if err == nil {
		err = writeFileAtomic(g.statePath, b)
	}
	if err != nil {
		g.log.Warn("rules state not saved", "path", g.statePath, "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (g *Gateway) handle(it item) {
	r := it.r
	if !g.sensors.Load().update(&r) {
		g.log.Warn("reading for a sensor the config does not have; dropped", "sensor", r.Sensor)
		g.metrics.Dropped.WithLabelValues(metrics.DropMalformed).Inc()
		if it.ack != nil {
			it.ack()
		}
		return
	}
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		r.Quality = reading.Bad
	}
	transitions := g.engine.Load().Observe(r, g.clock.Now())
	if _, err := g.spool.Append(reading.FromReading(r), it.ack); err != nil {
		// ErrFull with reject_new: refused and counted by the spool. The
		// source is acknowledged anyway: a broker redelivering what the
		// policy refuses would only block its in-flight window.
		if errors.Is(err, buffer.ErrFull) && it.ack != nil {
			it.ack()
		} else if !errors.Is(err, buffer.ErrFull) {
			g.log.Error("spool append failed", "sensor", r.Sensor, "err", err)
		}
	}
	for _, a := range transitions {
		g.route(a)
	}
	g.routeEvents()
}

// route sends an alert transition to every sink: the spool (for Kafka) and
// the retained MQTT topic.
func (g *Gateway) route(a reading.Alert) {
	seq, err := g.spool.Append(reading.FromAlert(a), nil)
	if err != nil {
		g.log.Error("alert not spooled", "rule", a.Rule, "state", a.State, "err", err)
	}
	if g.alerts != nil {
		g.alerts.Publish(a, seq)
	}
	g.updateAnnunciator()
	g.log.Info("alert", "rule", a.Rule, "state", a.State, "severity", a.Severity, "value", a.Value, "message", a.Message)
}

// raise fires one of the gateway's own alerts (edgegw_<condition>).
func (g *Gateway) raise(rule, severity, message string) {
	now := g.clock.Now()
	g.route(reading.Alert{Rule: rule, State: reading.StateFiring, Severity: severity,
		Value: math.NaN(), Since: now, TS: now, Message: message})
}

func (g *Gateway) httpOptions() httpapi.Options {
	return httpapi.Options{
		Listen:   g.cfg.HTTP.Listen,
		Registry: g.metrics.Registry,
		Logger:   g.log,
		Sensors:  func() []httpapi.Sensor { return g.sensors.Load().snapshot(g.clock.Now()) },
		Alerts:   g.alertRows,
		Machines: g.machineRows,
		AckToken: g.ackToken,
		Ack:      g.ack,
		Health:   g.health,
	}
}

func (g *Gateway) alertRows() []httpapi.Alert {
	st := g.engine.Load().Alerts()
	out := make([]httpapi.Alert, 0, len(st))
	for _, s := range st {
		row := httpapi.Alert{Rule: s.Rule, Expr: s.Expr, State: s.State, Severity: s.Severity,
			Message: s.Message, Labels: s.Labels, Acked: s.Acked}
		if !s.Since.IsZero() {
			since := s.Since
			row.Since = &since
		}
		if v := s.Value; !math.IsNaN(v) && !math.IsInf(v, 0) && s.State != "inactive" {
			row.Value = &v
		}
		out = append(out, row)
	}
	return out
}

func (g *Gateway) health() httpapi.Health {
	h := httpapi.Health{Gateway: g.cfg.Gateway.ID, Version: g.opts.Version, Ready: g.ready.Load()}
	if g.uplink != nil {
		h.UplinkConnected = g.uplink.Connected()
	}
	if sp := g.spool; sp != nil {
		st := sp.Stats()
		h.SpoolRecords, h.SpoolBytes = int64(st.Records), int64(st.Bytes)
	}
	return h
}

func (g *Gateway) machineRows() []httpapi.Machine {
	ms := g.engine.Load().Machines(g.clock.Now())
	out := make([]httpapi.Machine, 0, len(ms))
	for _, m := range ms {
		row := httpapi.Machine{Name: m.Name, State: m.State, DowntimeTodayS: m.DowntimeToday.Seconds(),
			StopsToday: m.StopsToday, Availability: m.Availability, Running: m.Running}
		if !m.Since.IsZero() {
			since := m.Since
			row.Since = &since
		}
		if m.HasReason {
			reason := m.Reason
			row.Reason = &reason
		}
		if !m.StopStart.IsZero() {
			start := m.StopStart
			row.StopStart = &start
		}
		out = append(out, row)
	}
	return out
}
