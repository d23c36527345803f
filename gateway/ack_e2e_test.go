package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// A critical alert fires: the stack light on a GPIO output blinks; the
// operator acknowledges it over HTTP with the token: it stays firing, the
// light stops blinking and stays on; when it resolves the light goes off.
func TestAckAndAnnunciator(t *testing.T) {
	pin := &gpiotest.Pin{N: "EDGEGW_TEST_LIGHT", Num: 9077, L: gpio.Low}
	if err := gpioreg.Register(pin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gpioreg.Unregister(pin.N) })
	s := newStack(t)
	token := filepath.Join(s.dir, "ack.token")
	if err := os.WriteFile(token, []byte("s3cret-floor-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := s.config(t, `sensors:
  - {id: temp, driver: mqtt, topic: line/temp}
rules:
  - {name: too_hot, expr: "temp > 80", severity: critical}
`)
	// The stack's config has alerts.mqtt_topic already; add the operator's parts.
	body, _ := os.ReadFile(path)
	cfg := strings.Replace(string(body), "alerts: {mqtt_topic: plant/test/alerts}",
		fmt.Sprintf("alerts: {mqtt_topic: plant/test/alerts, ack_token_file: %s, annunciator: {pin: EDGEGW_TEST_LIGHT, blink: 200ms}}", token), 1)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := start(t, path)
	base := "http://" + gw.g.Addr()
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "95", "temp")

	post := func(auth string) int {
		req, _ := http.NewRequest("POST", base+"/api/alerts/too_hot/ack", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	toggles := func() int { // level changes seen over 700 ms of real time
		n, last := 0, pin.Read()
		for i := 0; i < 70; i++ {
			time.Sleep(10 * time.Millisecond)
			if l := pin.Read(); l != last {
				n, last = n+1, l
			}
		}
		return n
	}
	if n := toggles(); n < 2 {
		t.Errorf("unacknowledged critical alert: light toggled %d times, want blinking", n)
	}
	if code := post(""); code != http.StatusUnauthorized {
		t.Errorf("ack without token: %d", code)
	}
	if code := post("Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("ack with a wrong token: %d", code)
	}
	if code := post("Bearer s3cret-floor-token"); code != http.StatusNoContent {
		t.Fatalf("ack: %d", code)
	}
	if n := toggles(); n != 0 || pin.Read() != gpio.High {
		t.Errorf("acknowledged: light toggled %d times, level %v; want steady on", n, pin.Read())
	}
	resp, err := http.Get(base + "/api/alerts")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var rows []struct {
		Rule, State string
		Acked       bool
	}
	_ = json.Unmarshal(b, &rows)
	if len(rows) != 1 || rows[0].State != "firing" || !rows[0].Acked {
		t.Errorf("/api/alerts after the ack: %s", b)
	}
	peers.Publish(t, pub, "line/temp", "20")
	deadline := time.Now().Add(5 * time.Second)
	for pin.Read() != gpio.Low && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if pin.Read() != gpio.Low {
		t.Error("resolved: the light is still on")
	}
	if code := post("Bearer s3cret-floor-token"); code != http.StatusConflict {
		t.Errorf("ack of a resolved alert: %d", code)
	}
}
