package gateway_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/drivers/modbus/modbustest"
	"github.com/edgegw/edgegw/drivers/serialport/ptytest"
)

// A temperature controller and a power meter on one Modbus RTU line (a
// real pty with a slave simulator), configured in YAML, through the
// pipeline into Kafka; a slave that stops answering gives bad readings
// while the other goes on.
func TestModbusToKafka(t *testing.T) {
	line := ptytest.New(t, "ttyUSB1")
	slaves := modbustest.New(t, line)
	slaves.Set(3, 3, 100, 2345)                             // oven zone 1: 234.5 C in 0.1 C
	slaves.SetFloat32(7, 0, math.Float32bits(12.75), false) // power meter: 12.75 kW, float32
	s := newStack(t)
	start(t, s.config(t, fmt.Sprintf(`sensors:
  - {id: oven_zone1, driver: modbus, port: %[1]s, baud: 19200, slave: 3,
     register: 100, kind: holding, type: int16, scale: 0.1, interval: 200ms, unit: C}
  - {id: line_kw, driver: modbus, port: %[1]s, baud: 19200, slave: 7,
     register: 0, type: float32, interval: 200ms, unit: kW, timeout: 100ms}
`, line.Path)))
	type seen struct{ good, bad int }
	got := map[string]*seen{"oven_zone1": {}, "line_kw": {}}
	silenced := false
	s.kafka.Consume([]string{"plant.readings"}, 30*time.Second, func(r *kgo.Record) bool {
		x := decode(t, r)
		c := got[x.Key]
		if c == nil {
			return true
		}
		switch {
		case x.Quality == "good":
			want := map[string]float64{"oven_zone1": 234.5, "line_kw": 12.75}[x.Key]
			if x.Value != want {
				t.Errorf("%s = %v, want %v", x.Key, x.Value, want)
			}
			c.good++
		case x.Quality == "bad":
			c.bad++
		}
		if !silenced && got["line_kw"].good >= 3 && got["oven_zone1"].good >= 3 {
			slaves.SetMode(7, modbustest.Silent) // the meter stops answering
			silenced = true
		}
		return !(silenced && got["line_kw"].bad >= 2 && got["oven_zone1"].good >= 10)
	})
	if !silenced || got["line_kw"].bad < 2 || got["oven_zone1"].good < 10 {
		t.Fatalf("readings: oven %+v, meter %+v", *got["oven_zone1"], *got["line_kw"])
	}
}
