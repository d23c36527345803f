package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

type eventRec struct {
	Gateway   string  `json:"gateway"`
	Machine   string  `json:"machine"`
	State     string  `json:"state"`
	Start     string  `json:"start"`
	End       *string `json:"end"`
	DurationS float64 `json:"duration_s"`
	Seq       uint64  `json:"seq"`
}

// A press stops (its running signal on MQTT goes to 0) for longer than
// min_downtime: a down event with the real start, then an up event with
// the whole duration, on the events topic; /api/machines counts the stop.
// The gateway runs on a fake clock that the test drives fifty times faster
// than real time, so the 30 s min_downtime passes in under a second.
func TestDowntimeToKafka(t *testing.T) {
	s := newStack(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	path := s.config(t, `sensors:
  - {id: press_running, driver: mqtt, topic: line/press/running}
  - {id: press_reason, driver: mqtt, topic: line/press/reason}
machines:
  - {name: press, running: "press_running == 1", min_downtime: 30s, reason: press_reason}
rules:
  - {name: press_down, expr: "press_running == 0", for: 20s, severity: critical, message: "Press stopped"}
`)
	gw := startWith(t, path, gateway.Options{Clock: clock})
	runFast(t, clock)

	pub := peers.Client(t, s.broker.URL(), "press-plc")
	alertsOnMQTT := make(chan string, 4)
	sub := peers.Client(t, s.broker.URL(), "floor-screen")
	sub.Subscribe("plant/test/alerts/press_down", 1, func(_ paho.Client, m paho.Message) {
		var a struct{ State string }
		_ = json.Unmarshal(m.Payload(), &a)
		alertsOnMQTT <- a.State
	}).Wait()
	peers.WaitReading(t, pub, gw.g.Addr(), "line/press/running", "1", "press_running")
	peers.Publish(t, pub, "line/press/running", "0")
	peers.Publish(t, pub, "line/press/reason", "17") // the operator keys in "tool change"

	var events []eventRec
	s.kafka.Consume([]string{"plant.events"}, 20*time.Second, func(r *kgo.Record) bool {
		var e eventRec
		if err := json.Unmarshal(r.Value, &e); err != nil {
			t.Fatalf("event is not JSON: %s", r.Value)
		}
		if string(r.Key) != "press" {
			t.Errorf("event key %q", r.Key)
		}
		events = append(events, e)
		return false
	})
	if len(events) != 1 || events[0].State != "down" || events[0].End != nil || events[0].DurationS < 30 {
		t.Fatalf("after a 30 s stop: events %+v", events)
	}
	peers.Publish(t, pub, "line/press/running", "1")
	events = nil
	s.kafka.Consume([]string{"plant.events"}, 20*time.Second, func(r *kgo.Record) bool {
		var e eventRec
		_ = json.Unmarshal(r.Value, &e)
		events = append(events, e)
		return len(events) < 2
	})
	if len(events) != 2 || events[1].State != "up" || events[1].End == nil {
		t.Fatalf("after the restart: events %+v", events)
	}
	down, up := events[0], events[1]
	start, _ := time.Parse(time.RFC3339Nano, up.Start)
	end, _ := time.Parse(time.RFC3339Nano, *up.End)
	if up.Start != down.Start || up.Seq <= down.Seq || up.DurationS < down.DurationS ||
		end.Sub(start).Seconds() != up.DurationS || up.Gateway != "gw-test-01" {
		t.Errorf("down %+v, up %+v", down, up)
	}

	// The press_down rule fired while it stood and resolved when it ran: on
	// Kafka and, retained, on MQTT.
	var states []string
	s.kafka.Consume([]string{"plant.alerts"}, 20*time.Second, func(r *kgo.Record) bool {
		if a := decode(t, r); a.Rule == "press_down" {
			states = append(states, a.State)
		}
		return len(states) < 2
	})
	if strings.Join(states, ",") != "firing,resolved" {
		t.Errorf("press_down on Kafka: %v", states)
	}
	for _, want := range []string{"firing", "resolved"} {
		select {
		case got := <-alertsOnMQTT:
			if got != want {
				t.Errorf("press_down on MQTT: %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s press_down on MQTT", want)
		}
	}

	resp, err := http.Get("http://" + gw.g.Addr() + "/api/machines")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var ms []struct {
		Name           string  `json:"name"`
		State          string  `json:"state"`
		StopsToday     int     `json:"stops_today"`
		DowntimeTodayS float64 `json:"downtime_today_s"`
		Availability   float64 `json:"availability"`
		Reason         float64 `json:"reason"`
	}
	if err := json.Unmarshal(body, &ms); err != nil || len(ms) != 1 {
		t.Fatalf("/api/machines: %s", body)
	}
	if m := ms[0]; m.Name != "press" || m.State != "up" || m.StopsToday != 1 || m.DowntimeTodayS < 30 || m.Availability <= 0 || m.Availability >= 1 || m.Reason != 17 {
		t.Errorf("/api/machines: %+v", m)
	}
}
