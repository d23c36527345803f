package mqtt

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
)

func TestMalformedPayloadsCountedAckedNotFatal(t *testing.T) {
	b := mqtttest.Start(t)
	clock := clockwork.NewFakeClock()
	h := startDriver(t, b, setup{clock: clock},
		config.Sensor{ID: "plain", Topic: "m/plain"},
		config.Sensor{ID: "nested", Topic: "m/json", Value: "$.a.b"})

	for _, p := range []struct{ topic, payload string }{
		{"m/plain", "abc"},            // not a number
		{"m/json", `{"a":`},           // not JSON
		{"m/json", `{"a":{}}`},        // path missing
		{"m/json", `{"a":{"b":"x"}}`}, // not a number at the path
		{"m/plain", "NaN"},            // a number, but none to use
		{"m/plain", "5"},
		{"m/json", `{"a":{"b":6}}`},
	} {
		b.Publish(t, p.topic, p.payload, false, 1)
	}
	got := h.sink.wait(t, 2)
	if v := values(got, "plain"); len(v) != 1 || v[0] != 5 {
		t.Errorf("plain = %v, want [5]", v)
	}
	if v := values(got, "nested"); len(v) != 1 || v[0] != 6 {
		t.Errorf("nested = %v, want [6]", v)
	}
	if n := errorsOf(h, "malformed"); n != 4 {
		t.Errorf("driver_errors{malformed} = %v, want 4", n)
	}
	if n := dropped(h, metrics.DropMalformed); n != 4 {
		t.Errorf("dropped{malformed} = %v, want 4", n)
	}
	if n := dropped(h, metrics.DropNotANumber); n != 1 {
		t.Errorf("dropped{not_a_number} = %v, want 1", n)
	}
	for _, e := range got {
		e.ack()
	}
	// The bad ones were acknowledged on the spot, the good ones now.
	mqtttest.Eventually(t, waitLong, "every message acknowledged", func() bool { return b.Inflight("gw-test") == 0 })

	// One line per sensor per minute, however many bad payloads.
	logs := h.logs.String()
	if n := strings.Count(logs, "sensor=nested"); n != 1 {
		t.Errorf("%d log lines for sensor nested, want 1:\n%s", n, logs)
	}
	if n := strings.Count(logs, "sensor=plain"); n != 1 {
		t.Errorf("%d log lines for sensor plain, want 1:\n%s", n, logs)
	}
	clock.Advance(time.Minute)
	b.Publish(t, "m/json", "garbage", false, 1)
	mqtttest.Eventually(t, waitLong, "a second line after a minute", func() bool {
		return strings.Count(h.logs.String(), "sensor=nested") == 2
	})
	if !strings.Contains(h.logs.String(), "held_back=2") {
		t.Errorf("second line does not say how many were held back:\n%s", h.logs.String())
	}
}

func TestAckOnlyAfterEveryReadingOfAMessage(t *testing.T) {
	b := mqtttest.Start(t)
	h := startDriver(t, b, setup{},
		config.Sensor{ID: "a", Topic: "line/m", Value: "$.a"},
		config.Sensor{ID: "b", Topic: "line/m", Value: "$.b"})
	b.Publish(t, "line/m", `{"a":1,"b":2}`, false, 1)
	got := h.sink.wait(t, 2)
	if b.Inflight("gw-test") != 1 {
		t.Fatalf("inflight = %d before any ack, want 1", b.Inflight("gw-test"))
	}
	got[0].ack()
	time.Sleep(100 * time.Millisecond) // give a wrong early PUBACK time to arrive
	if n := b.Inflight("gw-test"); n != 1 {
		t.Fatalf("inflight = %d after one of two acks, want 1", n)
	}
	got[1].ack()
	mqtttest.Eventually(t, waitLong, "the PUBACK after the last ack", func() bool { return b.Inflight("gw-test") == 0 })
}

// A message whose ack had not fired when the gateway stopped is delivered
// again to the next run with the same client id; acknowledged ones are not.
func TestUnackedMessageRedeliveredAfterRestart(t *testing.T) {
	b := mqtttest.Start(t)
	sensor := config.Sensor{ID: "v", Topic: "line/v"}
	first := startDriver(t, b, setup{}, sensor)
	b.Publish(t, "line/v", "1", false, 1)
	first.sink.wait(t, 1)[0].ack()
	b.Publish(t, "line/v", "2", false, 1)
	first.sink.wait(t, 2) // accepted, never acknowledged: the spool did not commit it
	first.stop()
	if got := first.logs.String(); !strings.Contains(got, "not yet committed") {
		t.Errorf("stop did not warn about the uncommitted message:\n%s", got)
	}

	second := startDriver(t, b, setup{}, sensor)
	b.Publish(t, "line/v", "3", false, 1)
	got := second.sink.wait(t, 2)
	if v := values(got, "v"); v[0]+v[1] != 5 || v[0]*v[1] != 6 {
		t.Errorf("after restart got %v, want 2 and 3: 2 again, 1 not", v)
	}
	for _, e := range got {
		e.ack()
	}
	mqtttest.Eventually(t, waitLong, "all acknowledged", func() bool { return b.Inflight("gw-test") == 0 })
	time.Sleep(50 * time.Millisecond)
	if n := len(second.sink.all()); n != 2 {
		t.Errorf("%d readings, want 2", n)
	}
}

// A persistent session keeps the subscriptions of an earlier config; their
// messages are counted and acknowledged, never fatal.
func TestLeftoverSubscriptionDropped(t *testing.T) {
	b := mqtttest.Start(t)
	old := startDriver(t, b, setup{}, config.Sensor{ID: "old", Topic: "old/t"})
	old.stop()
	h := startDriver(t, b, setup{}, config.Sensor{ID: "cur", Topic: "new/t"})
	if subs := strings.Join(b.Subscriptions("gw-test"), " "); subs != "new/t old/t" {
		t.Fatalf("session subscriptions = %q", subs)
	}
	b.Publish(t, "old/t", "1", false, 1)
	b.Publish(t, "new/t", "2", false, 1)
	h.sink.wait(t, 1)[0].ack()
	mqtttest.Eventually(t, waitLong, "both acknowledged", func() bool { return b.Inflight("gw-test") == 0 })
	if n := dropped(h, metrics.DropUnknownTopic); n != 1 {
		t.Errorf("dropped{unknown_topic} = %v, want 1", n)
	}
}

// At QoS 0 the connection hands the messages to the driver itself
// (conn.go): in order, a payload larger than its read buffer among them,
// and again on the connection made after the broker restarted.
func TestQoS0PassesNoAck(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch sink %v", batch), func(t *testing.T) { testQoS0PassesNoAck(t, batch) })
	}
}

// testQoS0PassesNoAck: QoS 0 readings come straight from the connection,
// with no ack, in order, across a broker restart; to a drivers.BatchSink
// they all go in batches.
func testQoS0PassesNoAck(t *testing.T, batch bool) {
	b := mqtttest.Start(t)
	h := startDriver(t, b, setup{qos0: true, clientID: "gw-qos0", batch: batch},
		config.Sensor{ID: "v", Topic: "q0/v"}, config.Sensor{ID: "j", Topic: "q0/j", Value: "$.v"})
	b.Publish(t, "q0/v", "4", false, 1) // published at 1, delivered at the subscription's 0
	if e := h.sink.wait(t, 1)[0]; e.ack != nil || e.r.Value != 4 {
		t.Errorf("QoS 0 reading %+v with ack %v, want value 4 and no ack", e.r, e.ack != nil)
	}
	const n = 500
	for i := range n {
		if i == n/2 {
			b.Publish(t, "q0/j", fmt.Sprintf(`{"pad": %q, "v": %d}`, strings.Repeat("x", 40<<10), i), false, 0)
			continue
		}
		b.Publish(t, "q0/v", strconv.Itoa(i), false, 0)
	}
	got := h.sink.wait(t, 1+n)[1:]
	for i, e := range got {
		if e.r.Value != float64(i) || (e.r.Sensor == "j") != (i == n/2) {
			t.Fatalf("reading %d is %s = %v", i, e.r.Sensor, e.r.Value)
		}
	}

	b = b.Restart(t)
	h.waitSubscribed(t, b)
	b.Publish(t, "q0/v", "7", false, 0)
	if e := h.sink.wait(t, 2+n)[1+n]; e.r.Value != 7 {
		t.Errorf("after the restart: %+v, want 7", e.r)
	}
	if got := h.d.fromConn.Load(); got != 2+n {
		t.Errorf("%d messages came straight from the connection, want all %d", got, 2+n)
	}
	sizes, sum := h.sink.batchSizes(), 0
	for _, s := range sizes {
		sum += s
		if s > maxHeld {
			t.Errorf("a batch of %d readings, over %d", s, maxHeld)
		}
	}
	want := 0 // a plain sink gets Emit only
	if batch {
		want = 2 + n
	}
	if sum != want {
		t.Errorf("%d readings came in %d batches, want %d", sum, len(sizes), want)
	}
}

func TestBrokerRestartReconnectsAndResubscribes(t *testing.T) {
	b := mqtttest.Start(t)
	h := startDriver(t, b, setup{}, config.Sensor{ID: "v", Topic: "r/v"})
	b.Publish(t, "r/v", "1", false, 1)
	h.sink.wait(t, 1)[0].ack()

	b = b.Restart(t) // a new broker: no session, no subscriptions
	h.waitSubscribed(t, b)
	mqtttest.Eventually(t, waitLong, "Connected()", h.d.Connected)
	b.Publish(t, "r/v", "2", false, 1)
	got := h.sink.wait(t, 2)
	if got[1].r.Value != 2 {
		t.Errorf("after restart got %v", values(got, "v"))
	}
	got[1].ack()
	mqtttest.Eventually(t, waitLong, "ack on the new connection", func() bool { return b.Inflight("gw-test") == 0 })
	if n := errorsOf(h, "disconnect"); n < 1 {
		t.Errorf("driver_errors{disconnect} = %v, want >= 1", n)
	}
}

func TestBrokerDownAtStartIsRetried(t *testing.T) {
	addr := mqtttest.FreeAddr(t)
	h := startDriver(t, nil, setup{url: "tcp://" + addr}, config.Sensor{ID: "v", Topic: "d/v"})
	time.Sleep(300 * time.Millisecond) // several failed attempts
	if h.d.Connected() || h.d.Subscribed() {
		t.Fatal("connected without a broker")
	}
	b := mqtttest.StartAt(t, addr)
	h.waitSubscribed(t, b)
	b.Publish(t, "d/v", "9", false, 1)
	h.sink.wait(t, 1)[0].ack()
	if n := strings.Count(h.logs.String(), "broker unreachable"); n != 1 {
		t.Errorf("%d 'unreachable' lines, want 1 per outage:\n%s", n, h.logs.String())
	}
}

// Emit blocks while the pipeline is full; cancelling must unblock it, and
// Run must still disconnect and return.
func TestStopUnblocksAFullSink(t *testing.T) {
	b := mqtttest.Start(t)
	sink := &testSink{block: true, entered: make(chan struct{}, 10)}
	h := startDriver(t, b, setup{sink: sink}, config.Sensor{ID: "v", Topic: "s/v"})
	b.Publish(t, "s/v", "1", false, 1)
	b.Publish(t, "s/v", "2", false, 1)
	select {
	case <-sink.entered:
	case <-time.After(waitLong):
		t.Fatal("Emit not called")
	}
	start := time.Now()
	h.stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("stop took %v with a blocked sink", d)
	}
	if n := b.Inflight("gw-test"); n != 2 {
		t.Errorf("inflight = %d after stop, want 2 (neither was accepted)", n)
	}
}
