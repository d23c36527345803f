package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/edgegw/edgegw/drivers/all"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/clocksync"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// rec is one Kafka record of the readings or alerts topic, decoded.
type rec struct {
	Topic    string
	Key      string
	Schema   string
	Gateway  string  `json:"gateway"`
	Sensor   string  `json:"sensor"`
	Rule     string  `json:"rule"`
	State    string  `json:"state"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Quality  string  `json:"quality"`
	TS       string  `json:"ts"`
	Since    string  `json:"since"`
	Severity string  `json:"severity"`
	Message  string  `json:"message"`
	Seq      uint64  `json:"seq"`
}

func decode(t *testing.T, r *kgo.Record) rec {
	t.Helper()
	var x rec
	if err := json.Unmarshal(r.Value, &x); err != nil {
		t.Fatalf("%s: value is not JSON: %v: %s", r.Topic, err, r.Value)
	}
	x.Topic, x.Key = r.Topic, string(r.Key)
	for _, h := range r.Headers {
		if h.Key == "schema" {
			x.Schema = string(h.Value)
		}
	}
	return x
}

type stack struct {
	kafka  *peers.Kafka
	broker *peers.Broker
	dir    string
	qos    int // the gateway's subscription QoS
	// bufDir is where the spool goes (default dir); bufExtra adds keys to
	// the buffer section, such as ", max_bytes: 64KiB".
	bufDir, bufExtra string
}

func newStack(t testing.TB) *stack {
	return &stack{kafka: peers.StartKafka(t), broker: peers.StartBroker(t), dir: t.TempDir(), qos: 1}
}

// config writes a gateway config for the stack with the given sensors and
// rules sections.
func (s *stack) config(t testing.TB, sensorsAndRules string) string {
	t.Helper()
	bufDir := s.bufDir
	if bufDir == "" {
		bufDir = s.dir
	}
	y := fmt.Sprintf(`gateway: {id: gw-test-01}
http: {listen: "127.0.0.1:0"}
buffer: {path: %s/buffer.db%s}
mqtt: {url: %q, client_id: gw-test-01, qos: %d}
uplink: {kafka: {brokers: [%q], linger: 20ms, compression: zstd}}
alerts: {mqtt_topic: plant/test/alerts}
%s`, bufDir, s.bufExtra, s.broker.URL(), s.qos, s.kafka.Addr(), sensorsAndRules)
	p := filepath.Join(s.dir, "gw.yaml")
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type running struct {
	g    *gateway.Gateway
	stop func() error
}

func start(t testing.TB, path string) *running {
	t.Helper()
	return startWith(t, path, gateway.Options{})
}

func startWith(t testing.TB, path string, opts gateway.Options) *running {
	t.Helper()
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return startLogTo(t, path, opts, w)
}

// startLogTo starts the gateway of the config at path, logging to w, and
// stops it when the test ends.
func startLogTo(t testing.TB, path string, opts gateway.Options, w io.Writer) *running {
	t.Helper()
	c, err := gateway.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	opts.Logger, opts.Version = slog.New(slog.NewTextHandler(w, nil)), "test"
	if opts.ClockSync == nil {
		// These tests are not about the clock: what this machine's kernel
		// says of its NTP state must not change their alerts.
		opts.ClockSync = func() clocksync.State { return clocksync.Synced }
	}
	g, err := gateway.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = fmt.Errorf("gateway did not stop within 20s")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return &running{g: g, stop: stop}
}

const fourSensors = `sensors:
  - {id: s0, driver: mqtt, topic: line/s0, value: "$.v", unit: C}
  - {id: s1, driver: mqtt, topic: line/s1, value: "$.v", unit: C}
  - {id: s2, driver: mqtt, topic: "line/+/s2"}
  - {id: s3, driver: mqtt, topic: line/s3}
  - {id: temp, driver: mqtt, topic: line/temp, unit: C}
rules:
  - {name: too_hot, expr: "temp > 80", severity: critical, message: "temperature {{ .Value }} C"}
`

func publishStream(t *testing.T, c paho.Client, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		switch i % 4 {
		case 0:
			peers.Publish(t, c, "line/s0", fmt.Sprintf(`{"v": %d}`, i))
		case 1:
			peers.Publish(t, c, "line/s1", fmt.Sprintf(`{"v": %d}`, i))
		case 2:
			peers.Publish(t, c, "line/a/s2", fmt.Sprint(i))
		case 3:
			peers.Publish(t, c, "line/s3", fmt.Sprint(i))
		}
	}
}

// collect reads the readings topic until every value in [0, n) of the four
// stream sensors was seen, returning the records in arrival order per key.
func collect(t *testing.T, k *peers.Kafka, n int, timeout time.Duration) map[string][]rec {
	t.Helper()
	byKey := map[string][]rec{}
	seen := map[int]bool{}
	ok := k.Consume([]string{"plant.readings"}, timeout, func(r *kgo.Record) bool {
		x := decode(t, r)
		if strings.HasPrefix(x.Key, "s") {
			byKey[x.Key] = append(byKey[x.Key], x)
			seen[int(x.Value)] = true
		}
		return len(seen) < n
	})
	if !ok {
		var missing []string
		for i := 0; i < n && len(missing) < 20; i++ {
			if !seen[i] {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		t.Fatalf("only %d of %d values reached Kafka; missing %s", len(seen), n, strings.Join(missing, ","))
	}
	return byKey
}

// checkOrder checks that the first arrival of each value is in publishing
// order per sensor, and that seq increases within each key.
func checkOrder(t *testing.T, byKey map[string][]rec) (dups int) {
	t.Helper()
	for key, rs := range byKey {
		seen := map[float64]bool{}
		last := -1.0
		var lastSeq uint64
		for _, r := range rs {
			if r.Seq <= lastSeq && !seen[r.Value] {
				t.Errorf("%s: seq %d after %d", key, r.Seq, lastSeq)
			}
			if r.Seq > lastSeq {
				lastSeq = r.Seq
			}
			if seen[r.Value] {
				dups++
				continue
			}
			seen[r.Value] = true
			if r.Value <= last {
				t.Errorf("%s: value %v arrived after %v", key, r.Value, last)
			}
			last = r.Value
		}
	}
	return dups
}

func TestEndToEnd(t *testing.T) {
	s := newStack(t)
	gw := start(t, s.config(t, fourSensors))
	pub := peers.Client(t, s.broker.URL(), "publisher")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
	alerts := make(chan paho.Message, 10)
	sub := peers.Client(t, s.broker.URL(), "alert-watcher")
	sub.Subscribe("plant/test/alerts/#", 1, func(_ paho.Client, m paho.Message) { alerts <- m }).Wait()

	const n = 2000
	publishStream(t, pub, 0, n)
	byKey := collect(t, s.kafka, n, 30*time.Second)
	if dups := checkOrder(t, byKey); dups != 0 {
		t.Errorf("%d duplicates without any failure", dups)
	}
	r := byKey["s0"][0]
	if r.Gateway != "gw-test-01" || r.Sensor != "s0" || r.Unit != "C" || r.Quality != "good" ||
		r.Schema != "edgegw.reading.v1" || r.Topic != "plant.readings" {
		t.Errorf("reading = %+v", r)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.TS); err != nil {
		t.Errorf("ts %q: %v", r.TS, err)
	}

	// An alert fires and resolves, on Kafka and on MQTT (retained, QoS 1).
	peers.Publish(t, pub, "line/temp", "92.5")
	peers.Publish(t, pub, "line/temp", "20")
	var states []string
	s.kafka.Consume([]string{"plant.alerts"}, 20*time.Second, func(kr *kgo.Record) bool {
		a := decode(t, kr)
		if a.Key != "too_hot" || a.Schema != "edgegw.alert.v1" || a.Severity != "critical" {
			t.Errorf("alert record = %+v", a)
		}
		if a.State == "firing" && (a.Value != 92.5 || a.Message != "temperature 92.5 C") {
			t.Errorf("firing alert = %+v", a)
		}
		states = append(states, a.State)
		return len(states) < 2
	})
	if strings.Join(states, ",") != "firing,resolved" {
		t.Fatalf("alert states on Kafka: %v", states)
	}
	for _, want := range []string{"firing", "resolved"} {
		select {
		case m := <-alerts:
			var a rec
			_ = json.Unmarshal(m.Payload(), &a)
			if m.Topic() != "plant/test/alerts/too_hot" || a.State != want || m.Qos() != 1 {
				t.Errorf("MQTT alert %s qos %d: %s, want state %s", m.Topic(), m.Qos(), m.Payload(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s alert on MQTT", want)
		}
	}
	// A late subscriber still gets the last state: it is retained.
	late := peers.Client(t, s.broker.URL(), "late")
	got := make(chan paho.Message, 1)
	late.Subscribe("plant/test/alerts/too_hot", 1, func(_ paho.Client, m paho.Message) { got <- m }).Wait()
	select {
	case m := <-got:
		if !m.Retained() || !strings.Contains(string(m.Payload()), `"state":"resolved"`) {
			t.Errorf("retained alert: %s (retained %v)", m.Payload(), m.Retained())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained alert for a late subscriber")
	}

	// The HTTP surface answers.
	base := "http://" + gw.g.Addr()
	for _, p := range []string{"/healthz", "/readyz", "/api/sensors", "/api/alerts", "/metrics", "/"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, body)
		}
		if p == "/metrics" {
			for _, m := range []string{"edgegw_buffer_records", "edgegw_readings_total", "edgegw_uplink_sent_total", "edgegw_dropped_total", "edgegw_alerts_firing"} {
				if !strings.Contains(string(body), m) {
					t.Errorf("/metrics lacks %s", m)
				}
			}
		}
	}
	m := gw.g.Metrics()
	if got := testutil.ToFloat64(m.ReadingsTotal.WithLabelValues("mqtt")); got < n {
		t.Errorf("edgegw_readings_total{driver=mqtt} = %v, want >= %d", got, n)
	}
	if err := gw.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// Kafka goes away mid-stream and comes back on the same address with its
// data: nothing is lost, per-sensor order holds, the backlog drains.
func TestKafkaOutage(t *testing.T) { kafkaOutage(t, "") }

// The same with buffer.mode outage: MQTT QoS 1 messages are acknowledged
// once Kafka has their readings while it answers, after their commit while
// it does not; none is lost either way.
func TestKafkaOutageOutageMode(t *testing.T) { kafkaOutage(t, ", mode: outage") }

func kafkaOutage(t *testing.T, buffer string) {
	s := newStack(t)
	s.bufExtra = buffer
	gw := start(t, s.config(t, fourSensors))
	pub := peers.Client(t, s.broker.URL(), "publisher")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")

	const n = 3000
	publishStream(t, pub, 0, n/3)
	s.kafka.Stop()
	publishStream(t, pub, n/3, 2*n/3) // spooled while Kafka is away
	time.Sleep(2 * time.Second)       // let the uplink fail and back off for real
	if gw.g.Metrics().UplinkErrors != nil && testutil.ToFloat64(gw.g.Metrics().UplinkErrors) == 0 {
		t.Error("no uplink error counted during the outage")
	}
	s.kafka.Start()
	publishStream(t, pub, 2*n/3, n)
	byKey := collect(t, s.kafka, n, 60*time.Second)
	dups := checkOrder(t, byKey)
	t.Logf("outage: %d values, %d duplicates (same seq, from produce answers lost in the outage)", n, dups)
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}
}

// runFast drives a fake clock about fifty times faster than real time (50 ms
// every millisecond) until the test ends, for end-to-end tests whose rules
// wait for tens of seconds.
func runFast(t *testing.T, clock *clockwork.FakeClock) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				clock.Advance(50 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}
