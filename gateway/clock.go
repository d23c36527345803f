package gateway

import (
	"fmt"
	"time"

	"github.com/edgegw/edgegw/gateway/clocksync"
)

// The system clock. A Pi has no real-time clock: it boots with the time it
// last saved (or 1970) until NTP sets it, which steps the clock, often by
// hours. Until the kernel says the clock is synchronised every reading is
// marked (reading.ClockUnsynced: "clock_synced": false on Kafka), and after
// unsyncedAlertAfter the alert edgegw_clock_unsynchronised fires. A step of
// the clock (the wall clock moving unlike the monotonic one between two
// pipeline ticks) is logged and counted; one while the clock was
// synchronised (someone set the time, a broken NTP source) also fires
// edgegw_clock_jump. Nothing orders by time: the spool orders by seq.

const (
	alertClockUnsynced = "edgegw_clock_unsynchronised"
	alertClockJump     = "edgegw_clock_jump"
	// unsyncedAlertAfter gives NTP time to set the clock after a boot.
	unsyncedAlertAfter = 5 * time.Minute
	// jumpThreshold is how far the wall clock may drift from the
	// monotonic one between two ticks before it counts as a step.
	jumpThreshold = 2 * time.Second
)

// clockWatch is the pipeline goroutine's view of the clock.
type clockWatch struct {
	prevWall     time.Time     // the last tick's wall time
	prevMono     time.Duration // and its monotonic time since the start
	unsyncedFrom time.Time     // when the clock was first seen unsynchronised; zero while synced
	wasUnsynced  bool          // at the tick before: a step then is NTP setting the clock
}

// checkClock runs on every tick: it updates the state readings are marked
// with, and raises or resolves the clock alerts.
func (g *Gateway) checkClock(now time.Time) {
	st := g.opts.ClockSync()
	g.clockUnsynced.Store(st == clocksync.Unsynced)
	w := &g.clockWatch
	switch {
	case st == clocksync.Unsynced && w.unsyncedFrom.IsZero():
		w.unsyncedFrom = now
	case st != clocksync.Unsynced:
		if !w.unsyncedFrom.IsZero() {
			g.log.Info("system clock synchronised", "after", now.Sub(w.unsyncedFrom).Round(time.Second))
		}
		w.unsyncedFrom = time.Time{}
		g.resolve(alertClockUnsynced)
	}
	if !w.unsyncedFrom.IsZero() && now.Sub(w.unsyncedFrom) >= unsyncedAlertAfter {
		g.raise(alertClockUnsynced, "warning", fmt.Sprintf(
			"The system clock has not been synchronised (NTP) since %s: readings are marked clock_synced=false; check the NTP servers and the network",
			w.unsyncedFrom.UTC().Format(time.RFC3339)))
	}

	// A step shows as the wall clock moving unlike the monotonic clock:
	// clock.Since measures with the monotonic reading (the real clock's
	// Since is time.Since), Round(0) strips it from the wall time.
	wall, mono := now.Round(0), g.clock.Since(g.started)
	if !w.prevWall.IsZero() {
		step := wall.Sub(w.prevWall) - (mono - w.prevMono)
		if step > jumpThreshold || step < -jumpThreshold {
			g.metrics.ClockJumps.Inc()
			synced := st == clocksync.Synced
			g.log.Warn("system clock stepped", "by", step.Round(time.Millisecond), "synchronised", synced)
			if synced && !w.wasUnsynced {
				g.raise(alertClockJump, "warning", fmt.Sprintf(
					"The system clock stepped by %s while it was synchronised: readings around %s may carry wrong times",
					step.Round(time.Second), wall.UTC().Format(time.RFC3339)))
			}
		}
	}
	w.wasUnsynced = st == clocksync.Unsynced
	w.prevWall, w.prevMono = wall, mono
}
