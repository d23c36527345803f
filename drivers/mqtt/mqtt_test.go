package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// testTiming keeps reconnects and stops fast against a loopback broker.
var testTiming = timing{
	connectRetry: 50 * time.Millisecond,
	maxReconnect: 100 * time.Millisecond,
	ackGrace:     200 * time.Millisecond,
	logEvery:     time.Minute,
	// Well under waitLong: a reconnect that lands on the broker being
	// closed gets no CONNACK and must give up and try the new one.
	connectTimeout: time.Second,
}

const waitLong = 10 * time.Second

// emitted is one reading the sink accepted, with the ack it was given.
type emitted struct {
	r   reading.Reading
	ack func()
}

// testSink records readings and leaves acks to the test. With block set,
// Emit blocks like a full pipeline until ctx is done.
type testSink struct {
	mu      sync.Mutex
	got     []emitted
	block   bool
	entered chan struct{}
	batches []int // sizes of the batches a batchSink took
}

// blocked, with block set, signals entered and waits for ctx, like a full
// pipeline; it returns ctx's error, or nil at once without block.
func (s *testSink) blocked(ctx context.Context) error {
	if !s.block {
		return nil
	}
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func (s *testSink) Emit(ctx context.Context, r reading.Reading, ack func()) error {
	if err := s.blocked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, emitted{r, ack})
	return nil
}

// batchSink is a testSink that also takes batches, as the gateway's sink
// does: it records each batch's size, and its readings as emitted with no
// ack.
type batchSink struct{ *testSink }

func (s batchSink) EmitBatch(ctx context.Context, rs []reading.Reading) error {
	if err := s.blocked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		s.got = append(s.got, emitted{r: r})
	}
	s.batches = append(s.batches, len(rs))
	return nil
}

// batchSizes is the size of each batch EmitBatch took.
func (s *testSink) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.batches...)
}

// wait returns the first n readings once there are n.
func (s *testSink) wait(t *testing.T, n int) []emitted {
	t.Helper()
	var out []emitted
	mqtttest.Eventually(t, waitLong, "readings", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		out = append([]emitted(nil), s.got...)
		return len(out) >= n
	})
	return out[:n]
}

func (s *testSink) all() []emitted {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]emitted(nil), s.got...)
}

// values lists the values of one sensor's readings, in order.
func values(es []emitted, sensor string) []float64 {
	var vs []float64
	for _, e := range es {
		if e.r.Sensor == sensor {
			vs = append(vs, e.r.Value)
		}
	}
	return vs
}

type harness struct {
	d    *Driver
	env  drivers.Env
	sink *testSink
	logs *mqtttest.LogBuffer
	stop func() // cancels Run and waits for it; safe to call twice
}

type setup struct {
	url      string // default the broker's
	clientID string // default "gw-test"
	qos0     bool   // subscribe at QoS 0 instead of 1
	clock    clockwork.Clock
	sink     *testSink
	password string // written to a password file with a trailing newline
	batch    bool   // the sink is a drivers.BatchSink (batchSink), as the gateway's
}

// startDriver runs a driver for sensors against b and waits until the
// broker holds its subscriptions (unless b is nil: a broker still down).
func startDriver(t *testing.T, b *mqtttest.Broker, su setup, sensors ...config.Sensor) *harness {
	t.Helper()
	if su.clientID == "" {
		su.clientID = "gw-test"
	}
	if su.url == "" {
		su.url = b.URL()
	}
	if su.clock == nil {
		su.clock = clockwork.NewRealClock()
	}
	if su.sink == nil {
		su.sink = &testSink{}
	}
	for i := range sensors {
		sensors[i].Driver = Name
		var problems []string
		Check(&sensors[i], func(field, format string, args ...any) { problems = append(problems, field) })
		if problems != nil {
			t.Fatalf("sensor %s: Check: %v", sensors[i].ID, problems)
		}
	}
	logs := &mqtttest.LogBuffer{}
	qos := 1
	if su.qos0 {
		qos = 0
	}
	env := drivers.Env{
		Gateway: config.Gateway{ID: "gw-test"},
		MQTT:    config.MQTT{URL: su.url, ClientID: su.clientID, QoS: &qos, KeepAlive: config.Duration(30 * time.Second)},
		Clock:   su.clock,
		Logger:  slog.New(slog.NewTextHandler(logs, nil)),
		Metrics: metrics.New(),
	}
	if su.password != "" {
		pf := filepath.Join(t.TempDir(), "mqtt.pass")
		if err := os.WriteFile(pf, []byte(su.password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env.MQTT.Username, env.MQTT.PasswordFile = "gw-user", pf
	}
	d, err := newDriver(env, sensors, testTiming)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var sink drivers.Sink = su.sink
	if su.batch {
		sink = batchSink{su.sink}
	}
	go func() { done <- d.Run(ctx, sink) }()
	var once sync.Once
	h := &harness{d: d, env: env, sink: su.sink, logs: logs}
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLong):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(h.stop)
	if b != nil {
		h.waitSubscribed(t, b)
	}
	return h
}

func (h *harness) waitSubscribed(t *testing.T, b *mqtttest.Broker) {
	t.Helper()
	mqtttest.Eventually(t, waitLong, "connection and subscriptions", func() bool {
		have := map[string]bool{}
		for _, f := range b.Subscriptions(h.env.MQTT.ClientID) {
			have[f] = true
		}
		for _, f := range h.d.routes.filters {
			if !have[f] {
				return false
			}
		}
		return h.d.Subscribed()
	})
}

func errorsOf(h *harness, kind string) float64 {
	return testutil.ToFloat64(h.env.Metrics.DriverErrors.WithLabelValues(Name, kind))
}

func dropped(h *harness, reason string) float64 {
	return testutil.ToFloat64(h.env.Metrics.Dropped.WithLabelValues(reason))
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		s    config.Sensor
		want string // fields reported, space separated
	}{
		{config.Sensor{Topic: "a/b"}, ""},
		{config.Sensor{Topic: "a/+/c", Value: "$.x[0].y"}, ""},
		{config.Sensor{}, "topic"},
		{config.Sensor{Topic: "a/#/c"}, "topic"},
		{config.Sensor{Topic: "a/b+"}, "topic"},
		{config.Sensor{Topic: "a", Value: "x.y"}, "value"},
		{config.Sensor{Topic: "a/b#", Value: "$.[x"}, "topic value"},
	} {
		var fields []string
		Check(&tc.s, func(field, format string, args ...any) { fields = append(fields, field) })
		if got := strings.Join(fields, " "); got != tc.want {
			t.Errorf("Check(%+v) reported %q, want %q", tc.s, got, tc.want)
		}
	}
	if f, ok := drivers.Lookup(Name); !ok || f.Check == nil {
		t.Fatal("driver mqtt not registered")
	}
}

func TestPlainPayloads(t *testing.T) {
	b := mqtttest.Start(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC))
	h := startDriver(t, b, setup{clock: clock, password: "s3cret"},
		config.Sensor{ID: "temp", Topic: "line1/press/temp", Unit: "C"},
		config.Sensor{ID: "run", Topic: "line1/press/running"})

	b.Publish(t, "line1/press/temp", "23.5", false, 1)
	b.Publish(t, "line1/press/temp", " -7 \n", false, 1)
	for _, p := range []string{"true", "false", "on", "OFF", "1"} {
		b.Publish(t, "line1/press/running", p, false, 1)
	}
	got := h.sink.wait(t, 7)
	if v := values(got, "temp"); len(v) != 2 || v[0] != 23.5 || v[1] != -7 {
		t.Errorf("temp values = %v", v)
	}
	if v := values(got, "run"); len(v) != 5 || v[0] != 1 || v[1] != 0 || v[2] != 1 || v[3] != 0 || v[4] != 1 {
		t.Errorf("running values = %v", v)
	}
	for _, e := range got {
		if !e.r.TS.Equal(clock.Now()) || e.r.Quality != reading.Good || e.ack == nil {
			t.Errorf("reading %+v (ack %v): want ts %v, good, an ack", e.r, e.ack != nil, clock.Now())
		}
		if e.r.Sensor == "temp" && e.r.Unit != "C" {
			t.Errorf("unit = %q", e.r.Unit)
		}
		e.ack()
	}
	mqtttest.Eventually(t, waitLong, "broker to see the acks", func() bool { return b.Inflight("gw-test") == 0 })
	if l := b.Logins(); len(l) == 0 || l[0] != (mqtttest.Login{ClientID: "gw-test", Username: "gw-user", Password: "s3cret"}) {
		t.Errorf("logins = %+v, want gw-user with the password file's content, newline trimmed", l)
	}
	if !h.d.Connected() {
		t.Error("Connected() = false while connected")
	}
}

func TestJSONPathsAndSharedTopic(t *testing.T) {
	b := mqtttest.Start(t)
	h := startDriver(t, b, setup{},
		config.Sensor{ID: "temp", Topic: "line1/press", Value: "$.temp"},
		config.Sensor{ID: "bar", Topic: "line1/press", Value: "$.pressure.bar[1]"},
		config.Sensor{ID: "state", Topic: "line1/press", Value: "$['state']"})
	b.Publish(t, "line1/press", `{"temp": 61.5, "pressure": {"bar": [180.2, 181]}, "state": "on"}`, false, 1)
	got := h.sink.wait(t, 3)
	want := map[string]float64{"temp": 61.5, "bar": 181, "state": 1}
	for _, e := range got {
		if want[e.r.Sensor] != e.r.Value {
			t.Errorf("%s = %v, want %v", e.r.Sensor, e.r.Value, want[e.r.Sensor])
		}
		e.ack()
	}
}

func TestWildcardFilters(t *testing.T) {
	b := mqtttest.Start(t)
	h := startDriver(t, b, setup{},
		config.Sensor{ID: "any_line", Topic: "plant/+/temp"},
		config.Sensor{ID: "everything", Topic: "plant/#"},
		config.Sensor{ID: "line1", Topic: "plant/line1/temp"})
	b.Publish(t, "plant/line1/temp", "1", false, 1)
	b.Publish(t, "plant/line2/temp", "2", false, 1)
	b.Publish(t, "plant/line2/oven/temp", "3", false, 1)
	got := h.sink.wait(t, 6)
	for sensor, want := range map[string]string{"any_line": "[1 2]", "everything": "[1 2 3]", "line1": "[1]"} {
		if v := values(got, sensor); fmt.Sprint(v) != want {
			t.Errorf("%s got %v, want %s", sensor, v, want)
		}
	}
}
