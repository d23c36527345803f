package gateway

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/clocksync"
	"github.com/edgegw/edgegw/gateway/reading"
)

// steppedClock is a fake clock whose wall time can be stepped while its
// monotonic time (Since) goes on undisturbed, as a real clock does when NTP
// or an operator sets the time.
type steppedClock struct {
	*clockwork.FakeClock
	offset atomic.Int64
}

func (c *steppedClock) Now() time.Time { return c.FakeClock.Now().Add(time.Duration(c.offset.Load())) }

// clockGateway runs a gateway with one sim sensor on clock, its clock
// state read from state.
func clockGateway(t *testing.T, clock clockwork.Clock, state *atomic.Int32) *Gateway {
	t.Helper()
	dir := t.TempDir()
	cfg := loadYAML(t, dir, "gateway: {id: gw-clock}\nhttp: {listen: \"127.0.0.1:0\"}\nbuffer: {path: "+filepath.Join(dir, "buffer.db")+
		"}\nuplink: {kafka: {brokers: [\"127.0.0.1:1\"]}}\nsensors:\n  - {id: temp, driver: sim, signal: temperature, interval: 1s}\n")
	g, err := New(cfg, Options{Clock: clock, FlushTimeout: 50 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClockSync: func() clocksync.State { return clocksync.State(state.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// lastReading waits (advancing the fake clock) for a reading newer than
// after to be committed and returns the newest.
func lastReading(t *testing.T, g *Gateway, clock *clockwork.FakeClock, after uint64) reading.Record {
	t.Helper()
	for i := 0; i < 200; i++ {
		clock.Advance(500 * time.Millisecond)
		_ = g.spool.Flush(context.Background())
		recs, err := g.spool.ReadBatch(after, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for j := len(recs) - 1; j >= 0; j-- {
			if recs[j].Kind == reading.KindReading {
				return recs[j]
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no reading committed")
	return reading.Record{}
}

func hasAlert(g *Gateway, rule string) bool {
	for _, a := range g.allAlerts() {
		if a.Rule == rule && a.State == "firing" {
			return true
		}
	}
	return false
}

// Until the kernel says the clock is synchronised, readings are marked,
// and after five minutes edgegw_clock_unsynchronised fires; once it is,
// readings are not marked and the alert resolves.
func TestClockUnsynchronised(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Date(1970, 1, 1, 0, 0, 30, 0, time.UTC)) // a Pi booting without an RTC
	var state atomic.Int32
	state.Store(int32(clocksync.Unsynced))
	g := clockGateway(t, clock, &state)

	r := lastReading(t, g, clock, 0)
	if !r.Reading.ClockUnsynced {
		t.Fatalf("reading taken while unsynchronised is not marked: %+v", r.Reading)
	}
	for i := 0; i < 700 && !hasAlert(g, alertClockUnsynced); i++ {
		clock.Advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	if !hasAlert(g, alertClockUnsynced) {
		t.Fatal("edgegw_clock_unsynchronised did not fire within five minutes and a bit")
	}

	state.Store(int32(clocksync.Synced))
	clock.Advance(time.Second) // the next tick reads the state
	r2 := lastReading(t, g, clock, r.Seq)
	for i := 0; i < 20 && r2.Reading.ClockUnsynced; i++ {
		r2 = lastReading(t, g, clock, r2.Seq)
	}
	if r2.Reading.ClockUnsynced {
		t.Error("readings still marked after the clock was synchronised")
	}
	if hasAlert(g, alertClockUnsynced) {
		t.Error("edgegw_clock_unsynchronised still firing after the sync")
	}
}

// A step of the wall clock is counted; one while the clock was
// synchronised fires edgegw_clock_jump, the step that synchronises it
// (NTP setting a clock that was unsynchronised) does not.
func TestClockJump(t *testing.T) {
	clock := &steppedClock{FakeClock: clockwork.NewFakeClockAt(time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC))}
	var state atomic.Int32
	state.Store(int32(clocksync.Unsynced))
	g := clockGateway(t, clock, &state)
	tick := func(n int) {
		for range n {
			clock.Advance(time.Second)
			time.Sleep(2 * time.Millisecond)
		}
	}
	tick(3)
	// NTP sets the clock: a step of an hour, after which it is synced.
	clock.offset.Add(int64(time.Hour))
	state.Store(int32(clocksync.Synced))
	tick(3)
	jumps := testutil.ToFloat64(g.metrics.ClockJumps)
	if jumps != 1 {
		t.Fatalf("%v clock steps counted after NTP's, want 1", jumps)
	}
	if hasAlert(g, alertClockJump) {
		t.Fatal("the synchronising step raised edgegw_clock_jump")
	}
	// Someone sets the time back ten minutes on a synchronised clock.
	clock.offset.Add(int64(-10 * time.Minute))
	for i := 0; i < 50 && !hasAlert(g, alertClockJump); i++ {
		tick(1)
	}
	if !hasAlert(g, alertClockJump) {
		t.Fatal("a step of a synchronised clock did not raise edgegw_clock_jump")
	}
	if got := testutil.ToFloat64(g.metrics.ClockJumps); got != 2 {
		t.Errorf("%v steps counted, want 2", got)
	}
	// It reports an event: acknowledging it resolves it.
	if err := g.ack(alertClockJump); err != nil {
		t.Fatal(err)
	}
	if hasAlert(g, alertClockJump) {
		t.Error("edgegw_clock_jump still firing after it was acknowledged")
	}
	// Small drift between ticks is no step.
	tick(10)
	if got := testutil.ToFloat64(g.metrics.ClockJumps); got != 2 {
		t.Errorf("%v steps counted after steady ticks, want 2", got)
	}
}
