package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/reading"
)

// The bench's config is one the gateway accepts, with every check of
// `edgegw check`: 1,000 sensors, 200 rules (the probe's among them).
func TestBenchConfigLoads(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []options{{sensors: 1000, rules: 200, qos: 1}, {sensors: 10, rules: 200, qos: 0}, {sensors: 1, rules: 1, qos: 1}} {
		p := filepath.Join(dir, "bench.yaml")
		if err := os.WriteFile(p, []byte(benchConfig(o, dir, "tcp://127.0.0.1:1883", "127.0.0.1:9092", 8080)), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := gateway.Load(p)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if len(c.Sensors) != o.sensors+1 || len(c.Rules) != max(2, o.rules) {
			t.Errorf("%+v: %d sensors, %d rules", o, len(c.Sensors), len(c.Rules))
		}
	}
}

// readingNumber reads the value back from the gateway's own Kafka JSON, for
// the values the bench publishes; the probe's records are skipped.
func TestReadingNumber(t *testing.T) {
	for _, n := range []int64{0, 1, 7, 999_999, 1_000_000, 123_456_789, 9_007_199_254_740_991} {
		r := reading.FromReading(reading.Reading{Sensor: sensorID(int(n % 1000)), TS: time.Unix(1, 0), Value: float64(n), Quality: reading.Good})
		r.Seq = 42
		got, ok := readingNumber(r.AppendJSON(nil, "bench-gw"))
		if !ok || got != n {
			t.Errorf("%d: read back %d, %v", n, got, ok)
		}
	}
	probe := reading.FromReading(reading.Reading{Sensor: "probe", Value: 3})
	if _, ok := readingNumber(probe.AppendJSON(nil, "bench-gw")); ok {
		t.Error("the probe's record was taken for a reading")
	}
}

func TestQuantile(t *testing.T) {
	var d durations
	if d.q(0.5) != -1 {
		t.Error("no samples: want -1")
	}
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := d.q(q); got != want {
			t.Errorf("q(%v) = %v, want %v", q, got, want)
		}
	}
}

// A gateway that dies during the run (killed with SIGKILL two seconds
// into it, by the script standing in for the binary) makes the bench fail
// and name the gateway's log, never report a rate.
func TestBenchGatewayDies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	dir := t.TempDir()
	real := filepath.Join(dir, "edgegw")
	build := exec.Command("go", "build", "-o", real, "../edgegw")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	script := filepath.Join(dir, "dying-edgegw")
	body := fmt.Sprintf("#!/bin/sh\n%q \"$@\" &\npid=$!\nsleep 2\nkill -9 $pid\nwait $pid\nexit 1\n", real)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	o := options{gateway: script, broker: "mochi", qos: 0, rates: []int{500, 1000}, step: 4 * time.Second, sensors: 10, rules: 2}
	err := run(o)
	_, logPath, ok := strings.Cut(fmt.Sprint(err), "(log: ")
	if err == nil || !ok {
		t.Fatalf("run = %v, want an error naming the gateway's log", err)
	}
	logPath = strings.TrimSuffix(logPath, ")")
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(logPath)) })
	if log, rerr := os.ReadFile(logPath); rerr != nil || !strings.Contains(string(log), "msg=") {
		t.Fatalf("the gateway's log %s: %v, %q: want it kept, with what the gateway wrote", logPath, rerr, log)
	}
	t.Log(err)
}

// rising walks the rates, gives a failed step o.again more tries, and
// stops at a rate that failed them all.
func TestRising(t *testing.T) {
	o := options{rates: []int{10, 20, 30, 40}, again: 1}
	// Whether each step keeps up, in the order the steps come.
	kept := []bool{true, false, true, false, false}
	var r rising
	var walked []int
	for i := 0; ; i++ {
		rate, ok := r.next(o)
		if !ok {
			break
		}
		if i == len(kept) {
			t.Fatalf("a step after %v", walked)
		}
		walked = append(walked, rate)
		r.result(o, kept[i])
	}
	if fmt.Sprint(walked) != "[10 20 20 30 30]" {
		t.Errorf("steps %v, want [10 20 20 30 30]", walked)
	}
	var all rising
	n := 0
	for rate, ok := all.next(o); ok; rate, ok = all.next(o) {
		all.result(options{rates: o.rates}, rate > 0)
		n++
	}
	if n != len(o.rates) {
		t.Errorf("every step kept up: %d steps, want %d", n, len(o.rates))
	}
}
