package gateway_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// A reload adds a sensor and a rule, keeps the firing alert of the unchanged
// rule firing (no second "firing"), and an invalid file is rejected with the
// running config kept.
func TestReloadKeepsStateAndRejectsBadConfig(t *testing.T) {
	s := newStack(t)
	path := s.config(t, `sensors:
  - {id: temp, driver: mqtt, topic: line/temp}
rules:
  - {name: too_hot, expr: "temp > 80", severity: critical}
`)
	gw := start(t, path)
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "90", "temp") // too_hot fires

	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	grown := strings.Replace(string(body), "rules:\n", "  - {id: pressure, driver: mqtt, topic: line/pressure, unit: bar}\nrules:\n", 1) +
		"  - {name: low_pressure, expr: \"pressure < 2\", severity: warning}\n"
	if err := os.WriteFile(path, []byte(grown), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.g.Reload(path); err != nil {
		t.Fatalf("reload: %v", err)
	}
	// The new sensor reads, the new rule fires, the old alert is still firing.
	peers.WaitReading(t, pub, gw.g.Addr(), "line/pressure", "1.5", "pressure")
	peers.Publish(t, pub, "line/temp", "95")

	bad := strings.Replace(grown, "temp > 80", "temp >", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.g.Reload(path); err == nil {
		t.Fatal("an invalid config was accepted")
	}
	// A valid file whose drivers cannot start (no such pin here) is
	// rejected too, and the running MQTT driver is started again.
	nopin := strings.Replace(grown, "rules:\n", "  - {id: door, driver: gpio, pin: GPIO99}\nrules:\n", 1)
	if err := os.WriteFile(path, []byte(nopin), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := gw.g.Reload(path); err == nil {
		t.Fatal("a config whose pin does not exist was accepted")
	}
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "96", "temp")
	peers.Publish(t, pub, "line/temp", "20") // the running rule still resolves

	// Per rule, in order (the rules' keys may sit in different partitions).
	got := map[string][]string{}
	n := 0
	s.kafka.Consume([]string{"plant.alerts"}, 20*time.Second, func(r *kgo.Record) bool {
		a := decode(t, r)
		got[a.Rule] = append(got[a.Rule], a.State)
		n++
		return n < 3
	})
	if strings.Join(got["too_hot"], ",") != "firing,resolved" || strings.Join(got["low_pressure"], ",") != "firing" {
		t.Fatalf("alert transitions %v; want too_hot firing then resolved (no second firing), low_pressure firing", got)
	}
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}
}

// Saving a changed config file reloads it (the gateway looks every 2 s).
func TestReloadOnFileChange(t *testing.T) {
	s := newStack(t)
	path := s.config(t, `sensors:
  - {id: temp, driver: mqtt, topic: line/temp}
`)
	gw := startWith(t, path, gateway.Options{ConfigPath: path})
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(body, []byte("  - {id: flow, driver: mqtt, topic: line/flow}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	// WaitReading publishes until the new sensor reads, which it can only
	// once the watcher has reloaded the file.
	peers.WaitReading(t, pub, gw.g.Addr(), "line/flow", "3.5", "flow")
}
