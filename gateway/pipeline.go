package gateway

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway/clocksync"
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
			if it.batch != nil {
				for i := range it.batch {
					g.handle(item{r: it.batch[i]})
				}
				g.batchFree <- it.batch[:0]
				continue
			}
			g.handle(it)
		case req := <-g.swap:
			g.applySwap(req)
		case <-tick.Chan():
			now := g.clock.Now()
			g.beat.Store(now.UnixNano())
			for _, a := range g.engine.Load().Tick(now) {
				g.route(a)
			}
			g.routeEvents()
			g.checkOwn(now)
			g.checkClock(now)
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
	if g.http != nil {
		g.http.Notify()
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
	r.ClockUnsynced = g.clockUnsynced.Load()
	transitions := g.engine.Load().Observe(r, g.clock.Now())
	var err error
	if it.mark != nil {
		_, err = g.spool.AppendMarked(reading.FromReading(r), it.ack, *it.mark)
	} else {
		_, err = g.spool.Append(reading.FromReading(r), it.ack)
	}
	switch {
	case err == nil:
	case errors.Is(err, buffer.ErrStalled):
		// The disk does not take records (full, failing) and the memory
		// bound is reached: refused, counted and logged once by the spool.
		// A source that can resend is not acknowledged: its broker keeps
		// the message and delivers it again after a reconnect. The spool
		// refuses such records only at twice its bound, which the broker's
		// in-flight window keeps them from reaching.
	case errors.Is(err, buffer.ErrFull):
		// reject_new at max_bytes: refused and counted by the spool. The
		// source is acknowledged anyway: a broker redelivering what the
		// policy refuses would only block its in-flight window.
		if it.ack != nil {
			it.ack()
		}
	default:
		g.log.Error("spool append failed", "sensor", r.Sensor, "err", err)
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
	if g.http != nil {
		g.http.Notify()
	}
	g.log.Info("alert", "rule", a.Rule, "state", a.State, "severity", a.Severity, "value", a.Value, "message", a.Message)
}

func (g *Gateway) httpOptions() httpapi.Options {
	gw := g.cfg.Gateway
	return httpapi.Options{
		Listen:       g.cfg.HTTP.Listen,
		Gateway:      httpapi.GatewayInfo{ID: gw.ID, Site: gw.Site, Line: gw.Line, Version: g.opts.Version},
		Registry:     g.metrics.Registry,
		Logger:       g.log,
		Clock:        g.clock.Now,
		Streams:      g.metrics.HTTPStreams,
		AuthFailures: g.metrics.HTTPAuthFailures,
		Sensors:      func() []httpapi.Sensor { return g.sensors.Load().snapshot(g.clock.Now()) },
		Alerts:       g.alertRows,
		Machines:     g.machineRows,
		AckToken:     g.ackToken,
		Ack:          g.ack,
		Health:       g.health,
		Pprof:        g.cfg.HTTP.Pprof,
	}
}

func (g *Gateway) alertRows() []httpapi.Alert {
	st := g.allAlerts()
	out := make([]httpapi.Alert, 0, len(st))
	for _, s := range st {
		row := httpapi.Alert{Rule: s.Rule, Expr: s.Expr, State: s.State, Severity: s.Severity,
			Message: s.Message, Labels: s.Labels, Acked: s.Acked, Machine: s.Machine}
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
	now := g.clock.Now()
	h := httpapi.Health{Gateway: g.cfg.Gateway.ID, Version: g.opts.Version, Ready: g.ready.Load(),
		SpoolMaxBytes: int64(g.cfg.Buffer.MaxBytes), DroppedByReason: map[string]int64{}}
	if g.uplink != nil {
		h.UplinkConnected = g.uplink.Connected()
		_, h.UplinkError = g.uplink.Outage()
	}
	if sp := g.spool; sp != nil {
		st := sp.Stats()
		h.SpoolRecords, h.SpoolBytes = st.Records, st.Bytes
		if !st.OldestTS.IsZero() {
			ts, age := st.OldestTS, now.Sub(st.OldestTS).Seconds()
			h.SpoolOldestTS, h.SpoolOldestAgeS = &ts, &age
		}
	}
	for reason, n := range g.drops() {
		h.DroppedByReason[reason] = n
		h.Dropped += uint64(n)
	}
	switch g.opts.ClockSync() {
	case clocksync.Synced:
		h.ClockSynced = ptr(true)
	case clocksync.Unsynced:
		h.ClockSynced = ptr(false)
	}
	return h
}

func ptr[T any](v T) *T { return &v }

// drops reads edgegw_dropped_total back, by reason.
func (g *Gateway) drops() map[string]int64 {
	out := map[string]int64{}
	ch := make(chan prometheus.Metric, 16)
	go func() { g.metrics.Dropped.Collect(ch); close(ch) }()
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil {
			continue
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "reason" {
				out[l.GetValue()] = int64(pb.GetCounter().GetValue())
			}
		}
	}
	return out
}

// probes are the metrics read at scrape time.
func (g *Gateway) probes() metrics.Probes {
	return metrics.Probes{
		SpoolOldestAge: func() float64 {
			if sp := g.spool; sp != nil {
				if ts := sp.Stats().OldestTS; !ts.IsZero() {
					return max(g.clock.Now().Sub(ts).Seconds(), 0)
				}
			}
			return 0
		},
		ClockSynced: func() float64 {
			switch g.opts.ClockSync() {
			case clocksync.Synced:
				return 1
			case clocksync.Unsynced:
				return 0
			}
			return -1
		},
		Alerts: func(state string) float64 {
			n := 0
			for _, a := range g.allAlerts() {
				if a.State == state {
					n++
				}
			}
			return float64(n)
		},
	}
}

func (g *Gateway) machineRows() []httpapi.Machine {
	ms := g.engine.Load().Machines(g.clock.Now())
	out := make([]httpapi.Machine, 0, len(ms))
	for _, m := range ms {
		row := httpapi.Machine{Name: m.Name, Line: m.Line, State: m.State, DowntimeTodayS: m.DowntimeToday.Seconds(),
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
