package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/rules"
)

// TestWatchdog runs the gateway as systemd would, with NOTIFY_SOCKET and
// WATCHDOG_USEC set, on a fake clock: READY=1 at start, WATCHDOG=1 while
// the pipeline moves, none while it hangs (here: a reload's hand-over that
// nobody completes blocks the pipeline goroutine, as a deadlock would),
// pings again once it moves, STOPPING=1 at the stop.
func TestWatchdog(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "2000000") // checks every 1 s; stall limit 3 s (three ticks)

	cfg := loadYAML(t, dir, `gateway: {id: gw-wd}
http: {listen: "127.0.0.1:0"}
buffer: {path: `+filepath.Join(dir, "buffer.db")+`}
uplink: {kafka: {brokers: ["127.0.0.1:1"]}}
sensors:
  - {id: press_running, driver: sim, signal: running, interval: 1s}
`)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC))
	g, err := New(cfg, Options{Clock: clock, FlushTimeout: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	recv := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no sd_notify message: %v", err)
		}
		return string(buf[:n])
	}
	// step advances the fake clock one second and returns what the
	// watchdog said since the last step: at least one message, and any
	// others already queued (a tick the watchdog took late).
	step := func() string {
		t.Helper()
		clock.Advance(time.Second)
		msgs := recv()
		buf := make([]byte, 4096)
		for {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			n, err := conn.Read(buf)
			if err != nil {
				return msgs
			}
			msgs += "\x00" + string(buf[:n]) // messages apart
		}
	}
	if msg := recv(); !strings.Contains(msg, "READY=1") || !strings.Contains(msg, "STATUS=running") {
		t.Fatalf("first message %q, want READY=1 and a status", msg)
	}
	healthy := 0
	for i := 0; i < 10 && healthy < 3; i++ {
		if msg := step(); strings.Contains(msg, "WATCHDOG=1") {
			healthy++
		}
	}
	if healthy < 3 {
		t.Fatal("no WATCHDOG=1 while the pipeline runs")
	}

	// Hang the pipeline: it takes the hand-over and then waits for ever
	// to report it.
	eng, err := rules.New(cfg, nil, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	handover := make(chan error) // nobody reads it until the test does
	g.swap <- swapRequest{engine: eng, sensors: g.sensors.Load(), done: handover}
	stalledAt := -1
	for i := 0; i < 10; i++ {
		msg := step()
		if strings.Contains(msg, "STATUS=stalled: pipeline idle") {
			for _, m := range strings.Split(msg, "\x00") {
				if strings.Contains(m, "STATUS=stalled") && strings.Contains(m, "WATCHDOG=1") {
					t.Fatalf("stalled and pinged: %q", m)
				}
			}
			stalledAt = i
			break
		}
	}
	if stalledAt < 0 {
		t.Fatal("the watchdog never noticed the hung pipeline")
	}
	// Stays unpinged while hung.
	for i := 0; i < 3; i++ {
		if msg := step(); strings.Contains(msg, "WATCHDOG=1") {
			t.Fatalf("pinged while the pipeline hangs: %q", msg)
		}
	}
	t.Logf("stall noticed %d s after the hang began (limit 3 s)", stalledAt+1)

	<-handover // the pipeline goes on
	resumed := false
	for i := 0; i < 10 && !resumed; i++ {
		resumed = strings.Contains(step(), "WATCHDOG=1")
	}
	if !resumed {
		t.Fatal("no WATCHDOG=1 after the pipeline moved again")
	}
	cancel()
	for {
		if msg := recv(); strings.Contains(msg, "STOPPING=1") {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	done <- nil
}
