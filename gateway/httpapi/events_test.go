package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sseEvent is one event as a browser's EventSource would see it.
type sseEvent struct {
	id, event, data string
}

// sseClient follows the server-sent events format the way a browser does:
// it reads events, remembers `retry:`, and after the stream ends or the
// connection fails it waits that long and connects again, sending
// Last-Event-ID. Events go to C; Connects counts successful connections.
type sseClient struct {
	C        chan sseEvent
	Connects atomic.Int32
	Retry    atomic.Int64 // milliseconds, as the server last announced
}

func followEvents(ctx context.Context, url string) *sseClient {
	c := &sseClient{C: make(chan sseEvent, 64)}
	c.Retry.Store(3000) // a browser's default before the server says
	go func() {
		lastID := ""
		for ctx.Err() == nil {
			lastID = c.stream(ctx, url, lastID)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(c.Retry.Load()) * time.Millisecond):
			}
		}
	}()
	return c
}

// stream reads one connection's events until it ends.
func (c *sseClient) stream(ctx context.Context, url, lastID string) string {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return lastID
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return lastID
	}
	c.Connects.Add(1)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				if ev.event == "" {
					ev.event = "message"
				}
				if ev.id != "" {
					lastID = ev.id
				}
				select {
				case c.C <- ev:
				case <-ctx.Done():
					return lastID
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		case "retry":
			if ms, err := strconv.Atoi(value); err == nil {
				c.Retry.Store(int64(ms))
			}
		}
	}
	return lastID
}

// next waits for the next state event.
func (c *sseClient) next(t *testing.T) State {
	t.Helper()
	select {
	case ev := <-c.C:
		if ev.event != "state" {
			t.Fatalf("event %q, want state", ev.event)
		}
		var st State
		if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
			t.Fatalf("state event: %v\n%s", err, ev.data)
		}
		return st
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return State{}
}

// runServer serves opts on addr until the returned stop is called; stop
// waits for Run to return.
func runServer(t *testing.T, opts Options) (*Server, func()) {
	t.Helper()
	s, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return s, stop
}

func lineOptions(listen, version string) Options {
	return Options{
		Listen:  listen,
		Gateway: GatewayInfo{ID: "gw-1", Line: "line1", Version: version},
		Machines: func() []Machine {
			return []Machine{{Name: "press", State: "down"}, {Name: "oven", Line: "line2", State: "up"}}
		},
		Sensors: func() []Sensor {
			return []Sensor{{ID: "press_temp", Machine: "press"}, {ID: "oven_temp", Machine: "oven"}, {ID: "hall_temp"}}
		},
		Alerts: func() []Alert {
			return []Alert{{Rule: "press_down", State: "firing", Machine: "press"}, {Rule: "oven_hot", State: "pending", Machine: "oven"},
				{Rule: "hall_hot", State: "inactive"}}
		},
		Health: func() Health { return Health{Gateway: "gw-1", Version: version, Ready: true} },
	}
}

// TestEventsStreamAndNotify: the first event comes at once with the whole
// state; with an interval of an hour, the next comes only because of
// Notify; the stream ends when the server stops, without waiting for
// Shutdown's grace period to run out.
func TestEventsStreamAndNotify(t *testing.T) {
	opts := lineOptions("127.0.0.1:0", "v1")
	opts.EventInterval = time.Hour
	s, stop := runServer(t, opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := followEvents(ctx, "http://"+s.Addr()+"/events")
	st := c.next(t)
	if st.Gateway.ID != "gw-1" || len(st.Machines) != 2 || len(st.Sensors) != 3 || len(st.Alerts) != 3 {
		t.Fatalf("first state: %+v", st)
	}
	if c.Retry.Load() != reconnectMillis {
		t.Errorf("retry %d, want %d", c.Retry.Load(), reconnectMillis)
	}
	s.Notify()
	c.next(t)
	start := time.Now()
	stop()
	// The server's Shutdown waits for open requests for up to 2s: the
	// stream must end on its own before that for Run to return sooner.
	if d := time.Since(start); d >= 2*time.Second {
		t.Errorf("Run took %s to stop with a stream open", d)
	}
}

// TestEventsReconnectAfterRestart restarts the server on the same port,
// as a gateway restart does: the client sees the stream end, reconnects
// after the announced retry, and gets the new process's state.
func TestEventsReconnectAfterRestart(t *testing.T) {
	s1, stop1 := runServer(t, lineOptions("127.0.0.1:0", "v1"))
	addr := s1.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := followEvents(ctx, "http://"+addr+"/events?machine=press")
	if st := c.next(t); st.Gateway.Version != "v1" {
		t.Fatalf("version %q", st.Gateway.Version)
	}
	stop1()
	runServer(t, lineOptions(addr, "v2"))
	for {
		st := c.next(t)
		if st.Gateway.Version == "v1" {
			continue // sent before the stop
		}
		if st.Gateway.Version != "v2" || len(st.Machines) != 1 || st.Machines[0].Name != "press" {
			t.Fatalf("after the restart: %+v", st)
		}
		break
	}
	if n := c.Connects.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestFilters(t *testing.T) {
	h := newServer(lineOptions("", "v1")).Handler()
	names := func(st State) (ms, ss, as []string) {
		for _, m := range st.Machines {
			ms = append(ms, m.Name+"@"+m.Line)
		}
		for _, s := range st.Sensors {
			ss = append(ss, s.ID+"@"+s.Line)
		}
		for _, a := range st.Alerts {
			as = append(as, a.Rule+"@"+a.Line)
		}
		return
	}
	cases := []struct {
		query             string
		machines, sensors string
		alerts            string
		code              int
		errContains       string
	}{
		{"", "press@line1 oven@line2", "press_temp@line1 oven_temp@line2 hall_temp@line1", "press_down@line1 oven_hot@line2 hall_hot@line1", 200, ""},
		{"?line=line1", "press@line1", "press_temp@line1 hall_temp@line1", "press_down@line1 hall_hot@line1", 200, ""},
		{"?line=line2", "oven@line2", "oven_temp@line2", "oven_hot@line2", 200, ""},
		{"?machine=oven", "oven@line2", "oven_temp@line2", "oven_hot@line2", 200, ""},
		{"?machine=press,oven", "press@line1 oven@line2", "press_temp@line1 oven_temp@line2", "press_down@line1 oven_hot@line2", 200, ""},
		{"?machine=press&machine=oven&line=line2", "oven@line2", "oven_temp@line2", "oven_hot@line2", 200, ""},
		{"?machine=ovn", "", "", "", 400, `this gateway has no machine "ovn" (machines: press, oven)`},
		{"?line=line9", "", "", "", 400, `this gateway has no line "line9" (lines: line1, line2)`},
	}
	for _, tc := range cases {
		code, body, _ := get(t, h, "GET", "/api/state"+tc.query)
		if code != tc.code {
			t.Errorf("%s: %d, want %d: %s", tc.query, code, tc.code, body)
			continue
		}
		if code != 200 {
			if !strings.Contains(body, tc.errContains) {
				t.Errorf("%s: %q lacks %q", tc.query, body, tc.errContains)
			}
			// /events says the same before it streams anything.
			if c, b, _ := get(t, h, "GET", "/events"+tc.query); c != 400 || !strings.Contains(b, tc.errContains) {
				t.Errorf("/events%s: %d %q", tc.query, c, b)
			}
			continue
		}
		var st State
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		ms, ss, as := names(st)
		if strings.Join(ms, " ") != tc.machines || strings.Join(ss, " ") != tc.sensors || strings.Join(as, " ") != tc.alerts {
			t.Errorf("%s:\n machines %v want %s\n sensors %v want %s\n alerts %v want %s", tc.query, ms, tc.machines, ss, tc.sensors, as, tc.alerts)
		}
		// The per-kind routes filter the same way.
		_, b, _ := get(t, h, "GET", "/api/machines"+tc.query)
		var rows []Machine
		_ = json.Unmarshal([]byte(b), &rows)
		if len(rows) != len(st.Machines) {
			t.Errorf("/api/machines%s: %d rows, /api/state has %d", tc.query, len(rows), len(st.Machines))
		}
	}
}

// TestEventsLimit: streams beyond MaxStreams get 503 with Retry-After,
// and a slot frees when a client goes.
func TestEventsLimit(t *testing.T) {
	opts := lineOptions("127.0.0.1:0", "v1")
	opts.MaxStreams = 2
	s, _ := runServer(t, opts)
	url := "http://" + s.Addr() + "/events"
	open := func() *http.Response {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	a, b := open(), open()
	defer b.Body.Close()
	for _, r := range []*http.Response{a, b} {
		if r.StatusCode != 200 {
			t.Fatalf("stream: %d", r.StatusCode)
		}
		// Read the first event so the handler surely holds its slot.
		if _, err := bufio.NewReader(r.Body).ReadString('}'); err != nil {
			t.Fatal(err)
		}
	}
	c := open()
	body, _ := io.ReadAll(c.Body)
	c.Body.Close()
	if c.StatusCode != 503 || c.Header.Get("Retry-After") == "" {
		t.Fatalf("third stream: %d %q", c.StatusCode, body)
	}
	a.Body.Close()
	for i := 0; ; i++ { // the handler notices the closed connection at its next write
		d := open()
		code := d.StatusCode
		d.Body.Close()
		if code == 200 {
			break
		}
		if i > 100 {
			t.Fatal("the slot never freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
