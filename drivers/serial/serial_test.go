package serial

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/serialport"
	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

const waitLong = 5 * time.Second

type sink struct {
	mu   sync.Mutex
	got  []reading.Reading
	acks int
}

func (s *sink) Emit(ctx context.Context, r reading.Reading, ack func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, r)
	if ack != nil {
		s.acks++
	}
	return nil
}

func (s *sink) readings() []reading.Reading {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]reading.Reading(nil), s.got...)
}

// wait returns once n readings arrived.
func (s *sink) wait(t *testing.T, n int) []reading.Reading {
	t.Helper()
	eventually(t, "readings", func() bool { return len(s.readings()) >= n })
	return s.readings()
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type harness struct {
	env   drivers.Env
	clock *clockwork.FakeClock
	sink  *sink
	logs  *logBuf
	ctx   context.Context
}

var t0 = time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)

func start(t *testing.T, sensors ...config.Sensor) *harness {
	t.Helper()
	h := &harness{clock: clockwork.NewFakeClockAt(t0), sink: &sink{}, logs: &logBuf{}}
	h.env = drivers.Env{Clock: h.clock, Logger: slog.New(slog.NewTextHandler(h.logs, nil)), Metrics: metrics.New()}
	for i := range sensors {
		sensors[i].Driver = Name
	}
	d, err := New(h.env, sensors)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, h.sink) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLong):
			t.Error("Run did not return after cancel")
		}
	})
	return h
}

func (h *harness) errors(kind string) float64 {
	return testutil.ToFloat64(h.env.Metrics.DriverErrors.WithLabelValues(Name, kind))
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitLong)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// send writes what the device prints.
func send(t *testing.T, line *ptytest.Line, s string) {
	t.Helper()
	if _, err := line.Device().Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// opened waits for the driver to open the port: a fresh pty drops what the
// device printed before, as a real line drops what nobody listened to.
// Open is observed through the request of a polled device, or by printing
// a probe line until it is counted as unmatched.
func (h *harness) opened(t *testing.T, line *ptytest.Line) {
	t.Helper()
	before := h.errors(ErrUnmatched)
	eventually(t, "port opened", func() bool {
		send(t, line, "probe\n")
		time.Sleep(10 * time.Millisecond)
		return h.errors(ErrUnmatched) > before
	})
}

const scalePattern = `^ST,GS,(?P<value>[-+ 0-9.,]+)kg$`

// A printing scale: stable weights are read, unstable ones (US) are not.
func TestScale(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	h := start(t, config.Sensor{ID: "scale_kg", Port: line.Path, Baud: 9600, Pattern: scalePattern, Unit: "kg"})
	h.opened(t, line)
	send(t, line, "ST,GS,+0012.35kg\r\nUS,GS,+0012.40kg\r\nST,GS,-   0.50kg\r\n")
	got := h.sink.wait(t, 2)
	if len(got) != 2 || got[0].Value != 12.35 || got[1].Value != -0.5 {
		t.Fatalf("readings %+v", got)
	}
	for _, r := range got {
		if r.Sensor != "scale_kg" || r.Unit != "kg" || r.Quality != reading.Good || !r.TS.Equal(t0) {
			t.Errorf("reading %+v", r)
		}
	}
	h.sink.mu.Lock()
	acks := h.sink.acks
	h.sink.mu.Unlock()
	if acks != 0 {
		t.Error("serial readings carry an ack")
	}
	eventually(t, "unmatched US line counted", func() bool { return h.errors(ErrUnmatched) >= 2 }) // probe + US
}

// Two sensors take gross and net from one line; a third reads another line.
func TestGroupsOnOnePort(t *testing.T) {
	line := ptytest.New(t, "ttyUSB1")
	p := `^G\s*(?P<gross>[-+ 0-9.]+)\s+N\s*(?P<net>[-+ 0-9.]+)$`
	h := start(t,
		config.Sensor{ID: "gross", Port: line.Path, Pattern: p, Group: "gross", Unit: "kg"},
		config.Sensor{ID: "net", Port: line.Path, Pattern: p, Group: "net", Unit: "kg"},
		config.Sensor{ID: "count", Port: line.Path, Pattern: `^PCS (?P<value>\d+)$`},
	)
	h.opened(t, line)
	send(t, line, "G +105.2 N +100.0\nPCS 17\n")
	got := h.sink.wait(t, 3)
	want := map[string]float64{"gross": 105.2, "net": 100, "count": 17}
	for _, r := range got {
		if want[r.Sensor] != r.Value {
			t.Errorf("%s = %v, want %v", r.Sensor, r.Value, want[r.Sensor])
		}
		delete(want, r.Sensor)
	}
	if len(want) != 0 || len(got) != 3 {
		t.Errorf("readings %+v", got)
	}
}

// readRequest reads what the gateway wrote to the device.
func readRequest(t *testing.T, line *ptytest.Line, n int) string {
	t.Helper()
	dev := line.Device()
	if err := dev.SetReadDeadline(time.Now().Add(waitLong)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	got := 0
	deadline := time.Now().Add(waitLong)
	for got < n {
		m, err := dev.Read(b[got:])
		got += m
		// EIO: the gateway has not opened its end yet.
		if err != nil && (!errors.Is(err, syscall.EIO) || time.Now().After(deadline)) {
			t.Fatalf("reading the request: %v", err)
		}
		if err != nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return string(b)
}

// A polled controller answers each request; the request is sent at open and
// then every interval of the (fake) clock.
func TestPolled(t *testing.T) {
	line := ptytest.New(t, "ttyS0")
	h := start(t, config.Sensor{ID: "oven_temp", Port: line.Path, Pattern: `^T=(?P<value>[-+0-9.]+)C$`,
		Request: `\x05T?\r`, Interval: config.Duration(10 * time.Second), Delimiter: `\r\n`, Unit: "C"})
	for i, answer := range []string{"T=+0023.5C\r\n", "T=+0024.0C\r\n", "T=+0024.5C\r\n"} {
		if got := readRequest(t, line, 4); got != "\x05T?\r" {
			t.Fatalf("request %q", got)
		}
		send(t, line, answer)
		got := h.sink.wait(t, i+1)
		if r := got[i]; r.Value != 23.5+0.5*float64(i) || !r.TS.Equal(h.clock.Now()) {
			t.Fatalf("reading %d: %+v", i, r)
		}
		h.clock.Advance(10 * time.Second)
	}
	// No answer: the next tick counts it.
	if got := readRequest(t, line, 4); got != "\x05T?\r" {
		t.Fatalf("request %q", got)
	}
	h.clock.Advance(10 * time.Second)
	eventually(t, "no_answer counted", func() bool { return h.errors(ErrNoAnswer) == 1 })
}

// Garbage, binary, over-long, unmatched and not-a-number lines are counted
// and skipped; the good lines around them are read; logging is rate-limited.
func TestBadLines(t *testing.T) {
	line := ptytest.New(t, "ttyUSB2")
	h := start(t, config.Sensor{ID: "scale_kg", Port: line.Path, Pattern: scalePattern, MaxLine: 64})
	h.opened(t, line)
	send(t, line, "ST,GS,+1.00kg\r\n"+
		"\x00\xff\xfe\x13\r\n"+ // binary
		"ST,GS,+2\x1b.00kg\r\n"+ // a control character
		strings.Repeat("ST,GS,+9", 20)+"kg\r\n"+ // over-long
		"hello\r\n"+ // unmatched
		"ST,GS,+12,35kg\r\n"+ // a decimal comma
		"ST,GS,+3.00kg\r\n")
	got := h.sink.wait(t, 2)
	if len(got) != 2 || got[0].Value != 1 || got[1].Value != 3 {
		t.Fatalf("readings %+v", got)
	}
	eventually(t, "counts", func() bool {
		return h.errors(ErrBinary) == 2 && h.errors(ErrOverlong) == 1 && h.errors(ErrNotANumber) == 1 && h.errors(ErrUnmatched) >= 2
	})
	if n := testutil.ToFloat64(h.env.Metrics.Dropped.WithLabelValues(metrics.DropNotANumber)); n != 1 {
		t.Errorf("dropped not_a_number = %v", n)
	}
	if n := strings.Count(h.logs.String(), "kind=binary"); n != 1 {
		t.Errorf("binary logged %d times, want once a minute:\n%s", n, h.logs)
	}
	// A minute later the next one is logged again.
	h.clock.Advance(logEvery)
	send(t, line, "\x01\r\n")
	eventually(t, "second binary log", func() bool { return strings.Count(h.logs.String(), "kind=binary") == 2 })
}

// The USB adapter is pulled (the device node vanishes) and put back:
// reading resumes; the line cut short by the pull is counted as partial.
func TestUnplug(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	h := start(t, config.Sensor{ID: "scale_kg", Port: line.Path, Pattern: scalePattern})
	h.opened(t, line)
	send(t, line, "ST,GS,+1.00kg\r\nST,GS,+0")
	h.sink.wait(t, 1)
	line.Unplug()
	eventually(t, "outage counted", func() bool { return h.errors(ErrPort) == 1 })
	eventually(t, "partial line counted", func() bool { return h.errors(ErrPartial) == 1 })
	for range 3 { // retried on the clock while the node is missing
		h.clock.BlockUntilContext(h.ctx, 1)
		h.clock.Advance(serialport.RetryEvery)
	}
	line.Plug()
	eventually(t, "port reopened", func() bool {
		h.clock.Advance(serialport.RetryEvery)
		return strings.Contains(h.logs.String(), "serial port is back")
	})
	h.opened(t, line)
	send(t, line, "ST,GS,+2.00kg\r\n")
	got := h.sink.wait(t, 2)
	if got[1].Value != 2 {
		t.Fatalf("after replug: %+v", got)
	}
	if h.errors(ErrPort) != 1 {
		t.Errorf("outages counted %v, want 1", h.errors(ErrPort))
	}
}

func TestCheck(t *testing.T) {
	ok := config.Sensor{Port: "/dev/ttyUSB0", Pattern: `(?P<value>\d+)`}
	for _, tc := range []struct {
		name string
		edit func(*config.Sensor)
		want string // fields reported, space separated
	}{
		{"ok", func(*config.Sensor) {}, ""},
		{"no port", func(s *config.Sensor) { s.Port = "" }, "port"},
		{"no pattern", func(s *config.Sensor) { s.Pattern = "" }, "pattern"},
		{"bad pattern", func(s *config.Sensor) { s.Pattern = "(?P<value>" }, "pattern"},
		{"no named group", func(s *config.Sensor) { s.Pattern = `(\d+)` }, "pattern"},
		{"group missing", func(s *config.Sensor) { s.Group = "tare" }, "group"},
		{"line settings", func(s *config.Sensor) { s.Baud, s.Parity = 9601, "mark" }, "baud parity"},
		{"max_line", func(s *config.Sensor) { s.MaxLine = -1 }, "max_line"},
		{"max_line huge", func(s *config.Sensor) { s.MaxLine = MaxMaxLine + 1 }, "max_line"},
		{"bad escape", func(s *config.Sensor) { s.Request, s.Delimiter = `\q`, `\x0` }, "delimiter request"},
		{"long delimiter", func(s *config.Sensor) { s.Delimiter = "123456789" }, "delimiter"},
	} {
		s := ok
		tc.edit(&s)
		var fields []string
		Check(&s, func(field, format string, args ...any) { fields = append(fields, field) })
		if got := strings.Join(fields, " "); got != tc.want {
			t.Errorf("%s: reported %q, want %q", tc.name, got, tc.want)
		}
	}
	s := ok
	s.Request = "P"
	Check(&s, func(string, string, ...any) {})
	if s.Group != "value" || s.Delimiter != "\n" || s.MaxLine != 256 || s.Interval != DefaultInterval {
		t.Errorf("defaults not filled: %+v", s)
	}
	if f, ok := drivers.Lookup(Name); !ok || f.Check == nil {
		t.Fatal("driver serial not registered")
	}
}

// Sensors on one port must agree on its settings; the error names both.
func TestNewConflictingSettings(t *testing.T) {
	a := config.Sensor{ID: "gross", Port: "/dev/ttyUSB0", Pattern: `(?P<value>\d+)`, Baud: 9600}
	b := config.Sensor{ID: "tare", Port: "/dev/ttyUSB0", Pattern: `(?P<value>\d+)`}
	if _, err := New(drivers.Env{}, []config.Sensor{a, b}); err != nil {
		t.Fatalf("defaults should agree: %v", err)
	}
	for _, edit := range []func(*config.Sensor){
		func(s *config.Sensor) { s.Baud = 19200 },
		func(s *config.Sensor) { s.Request = "P" },
		func(s *config.Sensor) { s.Delimiter = "\r" },
	} {
		c := b
		edit(&c)
		_, err := New(drivers.Env{}, []config.Sensor{a, c})
		if err == nil || !strings.Contains(err.Error(), "sensor tare") || !strings.Contains(err.Error(), "sensor gross") {
			t.Errorf("New = %v, want an error naming both sensors", err)
		}
	}
	if _, err := New(drivers.Env{}, []config.Sensor{{ID: "x", Port: "/dev/ttyUSB0"}}); err == nil || !strings.Contains(err.Error(), "sensor x: pattern") {
		t.Errorf("New without pattern = %v", err)
	}
}
