package gpio

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"periph.io/x/conn/v3/gpio"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/reading"
)

// input is one sensor's pin. Two goroutines serve it: watch turns the
// pin's blocking WaitForEdge into counts and notifications, and loop owns
// the timers (debounce, heartbeat, publication) and emits the readings.
type input struct {
	d                 *Driver
	id, pinName, unit string
	pin               gpio.PinIO
	pull              gpio.Pull
	edge              gpio.Edge
	counter, invert   bool
	debounce          time.Duration
	interval          time.Duration
	log               *slog.Logger
	errWait           prometheus.Counter

	// state mode: an edge was seen since loop last looked. One slot: edges
	// that come while loop is busy (a full pipeline) merge into one, and
	// loop reads the level once they have settled.
	notify chan struct{}

	// counter mode
	count     atomic.Int64 // edges counted since start, by watch
	lastEdge  time.Time    // when watch last counted, for debounce
	store     *counterFile
	base      int64 // the total restored at start
	saved     int64 // the total last written, by loop (and Run after it)
	saveFails bool  // the last save failed: log again only after a success

	// the rate sensor of this counter's pin, if any: edges per second
	// between two publications, published with the second.
	rateID, rateUnit string
}

func (in *input) total() int64 { return in.base + in.count.Load() }

// value is the pin's level as a reading: 1 for high, 0 for low, the other
// way round with invert (an input that pulls the pin low when active).
func (in *input) value() float64 {
	high := in.pin.Read() == gpio.High
	if high != in.invert {
		return 1
	}
	return 0
}

// watch waits for edges until ctx is done. periph's WaitForEdge reports a
// failure only as false; a false that comes back well before the timeout
// is taken as one, counted, logged once per outage and retried after
// retryEvery by configuring the pin again.
func (in *input) watch(ctx context.Context) {
	poll := in.d.pollEvery
	failing := false
	for ctx.Err() == nil {
		start := time.Now()
		if in.pin.WaitForEdge(poll) {
			if failing {
				in.log.Info("gpio: pin works again")
				failing = false
			}
			in.edgeSeen()
			continue
		}
		if ctx.Err() != nil {
			return // Halt at stop
		}
		if time.Since(start) >= poll/2 {
			if failing {
				in.log.Info("gpio: pin works again")
				failing = false
			}
			continue // a plain timeout: no edge
		}
		in.errWait.Inc()
		if !failing {
			in.log.Warn("gpio: waiting for an edge failed; retrying", "every", in.d.retryEvery)
			failing = true
		}
		select {
		case <-ctx.Done():
			return
		case <-in.d.env.Clock.After(in.d.retryEvery):
		}
		if err := in.pin.In(in.pull, in.edge); err != nil {
			in.errWait.Inc()
		}
	}
}

func (in *input) edgeSeen() {
	if !in.counter {
		select {
		case in.notify <- struct{}{}:
		default:
		}
		return
	}
	if in.debounce > 0 {
		now := in.d.env.Clock.Now()
		if !in.lastEdge.IsZero() && now.Sub(in.lastEdge) < in.debounce {
			in.d.step(in.id, "bounce")
			return
		}
		in.lastEdge = now
	}
	in.count.Add(1)
	in.d.step(in.id, "count")
}

func (in *input) loop(ctx context.Context, sink drivers.Sink) {
	if in.counter {
		in.publish(ctx, sink)
		return
	}
	in.follow(ctx, sink)
}

// follow emits a state input's level at start, on each change that held
// debounce, and every interval.
func (in *input) follow(ctx context.Context, sink drivers.Sink) {
	clock := in.d.env.Clock
	level := in.value()
	if !in.emitNow(ctx, sink, level) {
		return
	}
	heartbeat := clock.NewTicker(in.interval)
	defer heartbeat.Stop()
	var settle clockwork.Timer
	var settled <-chan time.Time
	defer func() {
		if settle != nil {
			settle.Stop()
		}
	}()
	changed := func() bool {
		if v := in.value(); v != level {
			level = v
			return in.emitNow(ctx, sink, level)
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat.Chan():
			if !in.emitNow(ctx, sink, level) {
				return
			}
		case <-in.notify:
			if in.debounce <= 0 {
				if !changed() {
					return
				}
				in.d.step(in.id, "edge")
				continue
			}
			// A new edge restarts the wait: the level must hold a whole
			// debounce after the last edge.
			if settle != nil {
				settle.Stop()
			}
			settle = clock.NewTimer(in.debounce)
			settled = settle.Chan()
			in.d.step(in.id, "edge")
		case <-settled:
			settle, settled = nil, nil
			if !changed() {
				return
			}
			in.d.step(in.id, "settle")
		}
	}
}

// publish emits a counter's total at start and every interval, and saves
// it when it changed. With a rate sensor it also emits, from the second
// publication on, the edges per second since the previous publication:
// the count's delta over the time between the two samples on the driver's
// clock, not the nominal interval, so a publication held up by a full
// pipeline (and the ticks it missed) still gives the true rate. The first
// publication after start has no period behind it and no rate.
func (in *input) publish(ctx context.Context, sink drivers.Sink) {
	clock := in.d.env.Clock
	prevTotal, prevAt := in.total(), clock.Now()
	if !in.emit(ctx, sink, in.id, in.unit, prevAt, float64(prevTotal)) {
		return
	}
	tick := clock.NewTicker(in.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
			total, now := in.total(), clock.Now()
			if !in.emit(ctx, sink, in.id, in.unit, now, float64(total)) {
				return
			}
			if in.rateID != "" {
				if elapsed := now.Sub(prevAt); elapsed > 0 {
					rate := float64(total-prevTotal) / elapsed.Seconds()
					if !in.emit(ctx, sink, in.rateID, in.rateUnit, now, rate) {
						return
					}
				}
			}
			prevTotal, prevAt = total, now
			in.save()
		}
	}
}

// save writes the total if it changed since the last write. A failure
// (disk full, read-only) is counted each time and logged once until a
// save succeeds again; the next publication tries again.
func (in *input) save() {
	total := in.total()
	if total == in.saved || in.store.path == "" {
		return
	}
	if err := in.store.save(total); err != nil {
		in.d.env.Metrics.DriverErrors.WithLabelValues(Name, "state_file").Inc()
		if !in.saveFails {
			in.log.Error("gpio: saving the counter total failed", "file", in.store.path, "err", err)
			in.saveFails = true
		}
		return
	}
	in.saved, in.saveFails = total, false
}

// emitNow hands one reading of this input to the sink, stamped now; false
// once ctx is done.
func (in *input) emitNow(ctx context.Context, sink drivers.Sink, v float64) bool {
	return in.emit(ctx, sink, in.id, in.unit, in.d.env.Clock.Now(), v)
}

// emit hands one reading to the sink; false once ctx is done.
func (in *input) emit(ctx context.Context, sink drivers.Sink, id, unit string, ts time.Time, v float64) bool {
	r := reading.Reading{Sensor: id, TS: ts, Value: v, Unit: unit, Quality: reading.Good}
	return sink.Emit(ctx, r, nil) == nil
}
