package gpio

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/edgegw/edgegw/gateway/config"
)

// pulses drives the pin through the levels, one edge each.
func pulses(pin *kernelPin, levels ...gpio.Level) {
	for _, l := range levels {
		pin.EdgesChan <- l
	}
}

var hlhlh = []gpio.Level{gpio.High, gpio.Low, gpio.High, gpio.Low, gpio.High}

func TestCounterEdges(t *testing.T) {
	for _, tc := range []struct {
		edge  string
		asked gpio.Edge
		want  int
	}{
		{"", gpio.RisingEdge, 3}, // default rising
		{"rising", gpio.RisingEdge, 3},
		{"falling", gpio.FallingEdge, 2},
		{"both", gpio.BothEdges, 5},
	} {
		t.Run("edge="+tc.edge, func(t *testing.T) {
			pin := &kernelPin{Pin: newPin("GPIO27", 27)}
			useBoard(t, pin)
			h := run(t, t.TempDir(), config.Sensor{ID: "press_parts", Driver: Name, Pin: "GPIO27", Mode: "counter", Edge: tc.edge, Pull: "down"})
			h.expect(0, 0)
			if got := gpio.Edge(pin.asked.Load()); got != tc.asked {
				t.Fatalf("In asked for %v, want %v", got, tc.asked)
			}
			pulses(pin, hlhlh...)
			for range tc.want {
				h.step("count")
			}
			h.waiters(1)
			h.clock.Advance(10 * time.Second) // default interval
			h.expect(float64(tc.want), 10*time.Second)
		})
	}
}

func TestCounterDebounce(t *testing.T) {
	pin := &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h := run(t, "", config.Sensor{ID: "flow", Driver: Name, Pin: "GPIO27", Mode: "counter", Debounce: config.Duration(ms(50)), Interval: config.Duration(time.Second)})
	h.expect(0, 0)
	h.waiters(1) // the publication ticker runs from start
	pulses(pin, gpio.High)
	h.step("count")
	h.clock.Advance(ms(10))
	pulses(pin, gpio.Low, gpio.High) // a second rising edge 10ms later: a bounce
	h.step("bounce")
	h.clock.Advance(ms(40))
	pulses(pin, gpio.Low, gpio.High) // 50ms after the counted one
	h.step("count")
	h.clock.Advance(time.Second - ms(50))
	h.expect(2, time.Second)
}

func readTotal(t *testing.T, dir, sensor string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "gpio-"+sensor+".count"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCounterPersists(t *testing.T) {
	dir := t.TempDir()
	s := config.Sensor{ID: "press_parts", Driver: Name, Pin: "GPIO27", Mode: "counter", Interval: config.Duration(time.Second)}

	pin := &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h := run(t, dir, s)
	h.expect(0, 0)
	if _, err := os.Stat(filepath.Join(dir, "gpio-press_parts.count")); !os.IsNotExist(err) {
		t.Fatalf("a total of 0 was written: %v", err)
	}
	pulses(pin, hlhlh...)
	for range 3 {
		h.step("count")
	}
	h.waiters(1)
	h.clock.Advance(time.Second)
	h.expect(3, time.Second)
	// The save follows the emit: the next publication shows it was made.
	h.clock.Advance(time.Second)
	h.expect(3, 2*time.Second)
	if got := readTotal(t, dir, "press_parts"); got != "3\n" {
		t.Fatalf("saved %q after a publication, want 3", got)
	}
	pulses(pin, gpio.Low, gpio.High)
	h.step("count")
	h.stop() // the stop saves what came since the last publication
	if got := readTotal(t, dir, "press_parts"); got != "4\n" {
		t.Fatalf("saved %q at stop, want 4", got)
	}

	// A restart: a new driver on the same state directory goes on from 4.
	pin = &kernelPin{Pin: newPin("GPIO27", 27)}
	useBoard(t, pin)
	h = run(t, dir, s)
	h.expect(4, 0)
	pulses(pin, gpio.Low, gpio.High)
	h.step("count")
	h.waiters(1)
	h.clock.Advance(time.Second)
	h.expect(5, time.Second)
	h.stop()
	if got := readTotal(t, dir, "press_parts"); got != "5\n" {
		t.Fatalf("saved %q, want 5", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("state dir holds %d files, want only the total (no temp files left)", len(ents))
	}
}

// A damaged total is logged and counted, and the counter starts from 0
// rather than the gateway not starting.
func TestCounterBadStateFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gpio-press_parts.count"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	useBoard(t, &kernelPin{Pin: newPin("GPIO27", 27)})
	h := run(t, dir, config.Sensor{ID: "press_parts", Driver: Name, Pin: "GPIO27", Mode: "counter"})
	h.expect(0, 0)
	if n := counterValue(h, "state_file"); n != 1 {
		t.Fatalf("state_file errors %v, want 1", n)
	}
}
