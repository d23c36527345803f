package gateway_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// A scale on a serial line (a real pty), configured in YAML, through the
// pipeline into Kafka; the adapter is unplugged and plugged back in.
func TestSerialScaleToKafka(t *testing.T) {
	line := ptytest.New(t, "ttyUSB0")
	s := newStack(t)
	gw := start(t, s.config(t, fmt.Sprintf(`sensors:
  - {id: scale_kg, driver: serial, port: %s, baud: 9600, pattern: 'GS,\s*(?P<value>[-+0-9.]+)', unit: kg}
rules:
  - {name: overweight, expr: "scale_kg > 50", severity: warning}
`, line.Path)))
	send := func(from, to int) {
		t.Helper()
		for i := from; i <= to; i++ {
			dev := line.Device()
			if _, err := fmt.Fprintf(dev, "ST,GS,+%07.2fkg\r\n", float64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The driver opens the port shortly after start; lines written before
	// it does sit in the pty's buffer, which the test tolerates either way
	// by counting only what arrives.
	waitSensor(t, gw, "scale_kg", func() { send(0, 0) })
	send(1, 60)
	want := map[float64]bool{}
	for i := 1; i <= 60; i++ {
		want[float64(i)] = true
	}
	got := map[float64]bool{}
	s.kafka.Consume([]string{"plant.readings"}, 20*time.Second, func(r *kgo.Record) bool {
		x := decode(t, r)
		if x.Key == "scale_kg" && x.Value >= 1 {
			if x.Unit != "kg" || x.Quality != "good" {
				t.Errorf("reading %+v", x)
			}
			got[x.Value] = true
		}
		return len(got) < len(want)
	})
	if len(got) != len(want) {
		t.Fatalf("%d of %d scale readings reached Kafka", len(got), len(want))
	}
	var states []string
	s.kafka.Consume([]string{"plant.alerts"}, 10*time.Second, func(r *kgo.Record) bool {
		states = append(states, decode(t, r).State)
		return len(states) < 1
	})
	if len(states) == 0 || states[0] != "firing" {
		t.Errorf("overweight alert: %v", states)
	}

	// Unplug, plug back in at the same path: readings resume.
	line.Unplug()
	time.Sleep(500 * time.Millisecond) // the driver sees the line drop
	line.Plug()
	waitSensorValue(t, gw, "scale_kg", 99, func() { send(99, 99) }, 15*time.Second)
}

func waitSensor(t *testing.T, gw *running, id string, poke func()) {
	t.Helper()
	waitSensorValue(t, gw, id, 0, poke, 10*time.Second)
}

// waitSensorValue pokes (writes a line) every 200 ms until /api/sensors
// shows the value for the sensor.
func waitSensorValue(t *testing.T, gw *running, id string, v float64, poke func(), timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		poke()
		for _, row := range peers.Sensors(t, gw.g.Addr()) {
			if row.ID == id && row.Value != nil && *row.Value == v {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("sensor %s never showed %v", id, v)
}
