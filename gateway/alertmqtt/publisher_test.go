package alertmqtt

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

var testTiming = timing{
	retryMin:       20 * time.Millisecond,
	retryMax:       100 * time.Millisecond,
	publishTimeout: 2 * time.Second,
	flushTimeout:   time.Second,
}

const waitLong = 10 * time.Second

var t0 = time.Date(2026, 3, 1, 6, 0, 0, 0, time.UTC)

func alert(rule, state string, value float64) reading.Alert {
	return reading.Alert{Rule: rule, State: state, Severity: "critical", Value: value,
		Since: t0, TS: t0.Add(10 * time.Second), Message: fmt.Sprintf("%s is %s", rule, state)}
}

func wantJSON(a reading.Alert, seq uint64) string {
	rec := reading.FromAlert(a)
	rec.Seq = seq
	return string(rec.AppendJSON(nil, "gw-test"))
}

// startPublisher runs a publisher against url until the test ends.
func startPublisher(t *testing.T, url string) *Publisher {
	p, _ := startPublisherLogs(t, url)
	return p
}

func startPublisherLogs(t *testing.T, url string) (*Publisher, *mqtttest.LogBuffer) {
	t.Helper()
	logs := &mqtttest.LogBuffer{}
	p, err := newPublisher(config.MQTT{URL: url, ClientID: "gw-test"}, "gw-test", "plant/line1/alerts",
		slog.New(slog.NewTextHandler(logs, nil)), metrics.New(), testTiming)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLong):
			t.Error("Run did not return")
		}
	})
	return p, logs
}

// received is a message as a subscriber saw it.
type received struct {
	topic, payload string
	retained       bool
	qos            byte
}

// subscribe connects a paho subscriber to filter and collects what arrives.
func subscribe(t *testing.T, url, id, filter string) func() []received {
	t.Helper()
	var mu sync.Mutex
	var got []received
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, received{m.Topic(), string(m.Payload()), m.Retained(), m.Qos()})
		}))
	if tok := c.Connect(); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("subscriber connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	if tok := c.Subscribe(filter, 1, nil); !tok.WaitTimeout(waitLong) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	return func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func TestPublishRetainedQoS1(t *testing.T) {
	b := mqtttest.Start(t)
	p := startPublisher(t, b.URL())
	live := subscribe(t, b.URL(), "screen-live", "plant/line1/alerts/#")
	mqtttest.Eventually(t, waitLong, "publisher connected", p.Connected)

	fire := alert("press_overtemp", reading.StateFiring, 86.5)
	p.Publish(fire, 41)
	// At least once: a subscription racing the publish can see it twice.
	mqtttest.Eventually(t, waitLong, "the live subscriber gets the alert", func() bool { return len(live()) >= 1 })
	got := live()[0]
	if got.topic != "plant/line1/alerts/press_overtemp" || got.payload != wantJSON(fire, 41) || got.qos != 1 {
		t.Errorf("got %+v, want the alert JSON on plant/line1/alerts/press_overtemp at QoS 1", got)
	}
	var decoded map[string]any
	if err := json.Unmarshal([]byte(got.payload), &decoded); err != nil || decoded["gateway"] != "gw-test" || decoded["seq"] != 41.0 {
		t.Errorf("payload %s: %v", got.payload, err)
	}

	resolve := alert("press_overtemp", reading.StateResolved, 79)
	p.Publish(resolve, 42)
	mqtttest.Eventually(t, waitLong, "the resolution", func() bool {
		got := live()
		return got[len(got)-1].payload == wantJSON(resolve, 42)
	})

	// A screen switched on later sees the last state, retained.
	late := subscribe(t, b.URL(), "screen-late", "plant/line1/alerts/#")
	mqtttest.Eventually(t, waitLong, "the late subscriber gets the retained state", func() bool { return len(late()) >= 1 })
	if got := late()[0]; !got.retained || got.payload != wantJSON(resolve, 42) || got.qos != 1 {
		t.Errorf("late subscriber got %+v, want the retained resolution at QoS 1", got)
	}
	ids := map[string]bool{}
	for _, l := range b.Logins() {
		ids[l.ClientID] = true
	}
	if !ids["gw-test-alerts"] {
		t.Errorf("client ids %v, want gw-test-alerts for the publisher", ids)
	}
}

// While the broker is reachable every transition is published, in order,
// even when a rule fires and resolves within a millisecond.
func TestEveryTransitionWhileConnected(t *testing.T) {
	b := mqtttest.Start(t)
	p := startPublisher(t, b.URL())
	live := subscribe(t, b.URL(), "screen", "plant/line1/alerts/#")
	// Once one alert got through, Run treats the broker as reachable:
	// before that, transitions collapse as during an outage.
	p.Publish(alert("warm_up", reading.StateFiring, 0), 0)
	mqtttest.Eventually(t, waitLong, "a first alert", func() bool { return len(live()) > 0 })
	mqtttest.Eventually(t, waitLong, "it settled", func() bool { return p.queue.len() == 0 })

	var want []string
	for i := range 20 {
		state := reading.StateFiring
		if i%2 == 1 {
			state = reading.StateResolved
		}
		a := alert("press_overtemp", state, float64(i))
		p.Publish(a, uint64(i+1))
		want = append(want, wantJSON(a, uint64(i+1)))
	}
	overtemp := func() []received {
		var out []received
		for _, m := range live() {
			if m.topic == "plant/line1/alerts/press_overtemp" {
				out = append(out, m)
			}
		}
		return out
	}
	mqtttest.Eventually(t, waitLong, "all 20 transitions", func() bool { return len(overtemp()) >= 20 })
	for i, m := range overtemp()[:20] {
		if m.payload != want[i] {
			t.Fatalf("message %d = %s, want %s", i, m.payload, want[i])
		}
	}
}

// While the broker is away Publish never blocks, and only the latest state
// of each rule is published once it is back.
func TestBrokerAwayKeepsLatestPerRule(t *testing.T) {
	addr := mqtttest.FreeAddr(t)
	p, logs := startPublisherLogs(t, "tcp://"+addr)

	start := time.Now()
	var last map[string]string
	for i := range 3000 {
		last = map[string]string{}
		for _, rule := range []string{"press_down", "press_overtemp", "edgegw_uplink_down"} {
			state := reading.StateFiring
			if i%2 == 1 {
				state = reading.StateResolved
			}
			a := alert(rule, state, float64(i))
			p.Publish(a, uint64(i))
			last["plant/line1/alerts/"+rule] = wantJSON(a, uint64(i))
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("9000 Publish calls with the broker down took %v", d)
	}
	time.Sleep(100 * time.Millisecond) // a few failed connection attempts

	b := mqtttest.StartAt(t, addr)
	var mu sync.Mutex
	seen := map[string][]string{}
	// An inline subscriber sees every publish the broker receives.
	err := b.Server.Subscribe("plant/line1/alerts/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		defer mu.Unlock()
		seen[pk.TopicName] = append(seen[pk.TopicName], string(pk.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, waitLong, "three rules published", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 3
	})
	mqtttest.Eventually(t, waitLong, "nothing pending", func() bool { return p.queue.len() == 0 })
	if n := strings.Count(logs.String(), "unreachable"); n != 1 {
		t.Errorf("%d 'unreachable' lines for one outage, want 1:\n%s", n, logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	for topic, want := range last {
		// A publish racing the inline subscription may be seen twice.
		got := seen[topic]
		for _, g := range got {
			if g != want {
				t.Errorf("%s: broker received %q, want only the latest %s", topic, got, want)
				break
			}
		}
	}
}

// A broker that restarts loses nothing the publisher still had pending, and
// the publisher reconnects by itself.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	b := mqtttest.Start(t)
	p := startPublisher(t, b.URL())
	p.Publish(alert("press_down", reading.StateFiring, 0), 1)
	mqtttest.Eventually(t, waitLong, "first publish", func() bool { return p.Connected() && p.queue.len() == 0 })

	b = b.Restart(t)
	mqtttest.Eventually(t, waitLong, "reconnect", p.Connected)
	resolved := alert("press_down", reading.StateResolved, 1)
	p.Publish(resolved, 2)
	late := subscribe(t, b.URL(), "screen", "plant/line1/alerts/+")
	mqtttest.Eventually(t, waitLong, "the new state on the new broker", func() bool {
		got := late()
		return len(got) > 0 && got[len(got)-1].payload == wantJSON(resolved, 2)
	})
}

func TestNewRejectsWildcardPrefix(t *testing.T) {
	for _, prefix := range []string{"", "plant/+/alerts", "plant/#"} {
		if _, err := New(config.MQTT{}, "gw", prefix, nil, nil); err == nil {
			t.Errorf("New accepted prefix %q", prefix)
		}
	}
	p, err := New(config.MQTT{}, "gw", "plant/alerts/", nil, nil)
	if err != nil || p.Topic("r") != "plant/alerts/r" {
		t.Errorf("Topic = %q, %v", p.Topic("r"), err)
	}
}

func BenchmarkPublish(b *testing.B) {
	p, err := New(config.MQTT{}, "gw", "plant/alerts", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := alert("press_overtemp", reading.StateFiring, 86.5)
	b.ReportAllocs()
	for b.Loop() {
		p.Publish(a, 1)
	}
}
