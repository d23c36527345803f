package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jonboulle/clockwork"
)

// systemd integration (sd_notify): READY=1 once everything runs, STOPPING=1
// when the stop begins, and, when the unit sets WatchdogSec, WATCHDOG=1
// every half of it, but only while the pipeline really moves: its
// goroutine has gone round its loop recently (it does at least every
// TickInterval) and no spool commit has hung. A gateway stuck on a dead SD
// card or a deadlock stops pinging, and systemd restarts it. Each check
// also sets STATUS=, which `systemctl status edgegw` shows. Without
// NOTIFY_SOCKET (not started by systemd) all of it is a no-op.

// notify sends state to systemd, if it listens; a failure is logged once.
func (g *Gateway) notify(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil && !g.notifyFailed.Swap(true) {
		g.log.Warn("sd_notify failed", "err", err)
	}
}

// stallLimit is how long the pipeline may go without a beat before the
// watchdog stops pinging: half the watchdog interval, and never less than
// three ticks.
func (g *Gateway) stallLimit(interval time.Duration) time.Duration {
	return max(interval/2, 3*g.opts.TickInterval)
}

// watchdog pings systemd's watchdog on every tick (interval/2) while
// healthy.
func (g *Gateway) watchdog(ctx context.Context, interval time.Duration, tick clockwork.Ticker) {
	defer tick.Stop()
	stalled := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.Chan():
		}
		now := g.clock.Now()
		problem := g.stalled(now, g.stallLimit(interval))
		switch {
		case problem == "":
			if stalled {
				g.log.Info("pipeline moves again; pinging systemd's watchdog")
			}
			stalled = false
			g.notify(daemon.SdNotifyWatchdog + "\nSTATUS=" + g.statusLine())
		default:
			if !stalled {
				g.log.Error("not pinging systemd's watchdog: systemd will restart the gateway", "problem", problem)
			}
			stalled = true
			g.notify("STATUS=stalled: " + problem)
		}
	}
}

// stalled says what is stuck, or "" when the pipeline moves.
func (g *Gateway) stalled(now time.Time, limit time.Duration) string {
	if last := time.Unix(0, g.beat.Load()); now.Sub(last) > limit {
		return fmt.Sprintf("pipeline idle for %s", now.Sub(last).Round(time.Second))
	}
	if since := g.spool.CommitSince(); !since.IsZero() && now.Sub(since) > limit {
		return fmt.Sprintf("spool commit running for %s", now.Sub(since).Round(time.Second))
	}
	return ""
}

// statusLine is the one-line summary systemctl status shows.
func (g *Gateway) statusLine() string {
	st := g.spool.Stats()
	up := "kafka connected"
	if !g.uplink.Connected() {
		up = "kafka NOT connected"
	}
	spool := fmt.Sprintf("spool %d records", st.Records)
	if st.Memory {
		spool += " (in memory)"
	}
	return fmt.Sprintf("running: %s, %s, %d sensors", up, spool, len(g.sensors.Load().order))
}
