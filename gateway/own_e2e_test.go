package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Kafka stays away for over a minute (on a fake clock run fifty times
// faster than real time): edgegw_uplink_down fires, shows in /api/alerts
// and the health with the produce error, the spool's oldest record ages
// in /metrics; Kafka returns, and both transitions reach it.
func TestUplinkDownAlert(t *testing.T) {
	s := newStack(t)
	clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC))
	gw := startWith(t, s.config(t, fourSensors), gateway.Options{Clock: clock})
	runFast(t, clock)
	base := "http://" + gw.g.Addr()

	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
	s.kafka.Stop()
	peers.Publish(t, pub, "line/temp", "21") // waits in the spool

	var st httpapi.State
	deadline := time.Now().Add(30 * time.Second)
	for {
		getJSON(t, base+"/api/state", &st)
		if alertState(st.Alerts, "edgegw_uplink_down") == "firing" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgegw_uplink_down not firing; alerts %+v", st.Alerts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := st.Health
	if h.UplinkConnected || h.UplinkError == "" || h.SpoolRecords == 0 || h.SpoolOldestAgeS == nil || *h.SpoolOldestAgeS < 60 {
		t.Errorf("health during the outage: %+v", h)
	}
	metrics := getText(t, base+"/metrics")
	for _, want := range []string{`edgegw_alerts{state="firing"} 1`, `edgegw_alerts{state="pending"} 0`,
		"edgegw_buffer_oldest_age_seconds ", "edgegw_clock_synchronized ", "edgegw_http_streams 0", "edgegw_uplink_connected 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	s.kafka.Start()
	var states []string
	s.kafka.Consume([]string{"plant.alerts"}, 30*time.Second, func(r *kgo.Record) bool {
		if string(r.Key) == "edgegw_uplink_down" {
			var a struct{ State, Severity, Message string }
			_ = json.Unmarshal(r.Value, &a)
			states = append(states, a.State)
			if a.State == "firing" && !strings.Contains(a.Message, "Kafka unreachable since") {
				t.Errorf("message %q", a.Message)
			}
		}
		return len(states) < 2
	})
	if strings.Join(states, ",") != "firing,resolved" {
		t.Fatalf("edgegw_uplink_down on Kafka: %v", states)
	}
	getJSON(t, base+"/api/state", &st)
	if got := alertState(st.Alerts, "edgegw_uplink_down"); got != "" {
		t.Errorf("after Kafka returned the alert is still listed as %q", got)
	}
	if !st.Health.UplinkConnected || st.Health.UplinkError != "" {
		t.Errorf("health after the outage: %+v", st.Health)
	}
}

func alertState(as []httpapi.Alert, rule string) string {
	for _, a := range as {
		if a.Rule == rule {
			return a.State
		}
	}
	return ""
}
