package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func edgegw(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckValidPrintsResolvedSensors(t *testing.T) {
	p := write(t, `gateway: {id: gw-1}
uplink: {kafka: {brokers: ["k:9092"]}}
sensors:
  - {id: press_temp, driver: mqtt, topic: line1/press/temp, value: "$.value", unit: C}
  - {id: press_running, driver: sim, signal: running}
rules:
  - {name: hot, expr: "press_temp > 80", for: 10s}
`)
	code, out, errs := edgegw("check", "--config", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"valid; gateway gw-1, 2 sensors, 1 rules",
		"press_temp: {driver: mqtt, topic: line1/press/temp, unit: C, value: $.value}",
		"press_running: {driver: sim, interval: 1s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckInvalidListsEveryProblem(t *testing.T) {
	p := write(t, `gateway: {id: gw-1}
uplink: {kafka: {brokers: ["k:9092"]}}
sensors:
  - {id: press_temp, driver: mqtt, topic: line1/press/temp}
  - {id: oven, driver: profibus}
  - {id: press_temp, driver: mqtt, topic: x}
rules:
  - {name: hot, expr: "press_tmp > 80"}
  - {name: broken, expr: "press_temp >"}
`)
	code, out, errs := edgegw("check", "--config", p)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stdout %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	wantPrefixes := []string{
		p + `:5: sensors[1].driver: unknown driver "profibus"`,
		p + `:6: sensors[2].id: duplicate sensor id "press_temp" (first at line 4)`,
		p + `:8: rules[0].expr: unknown sensor "press_tmp"`,
		p + `:9: rules[1].expr: `,
	}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(wantPrefixes), errs)
	}
	for i, w := range wantPrefixes {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, lines[i], w)
		}
	}
}

func TestCheckUsage(t *testing.T) {
	if code, _, _ := edgegw("check"); code != 2 {
		t.Errorf("check without --config: exit %d", code)
	}
	if code, _, errs := edgegw("check", "--config", "/nonexistent.yaml"); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: exit %d: %s", code, errs)
	}
	if code, _, _ := edgegw("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := edgegw("version")
	if code != 0 || !strings.HasPrefix(out, "edgegw ") || !strings.Contains(out, runtime.GOOS+"/"+runtime.GOARCH) || !strings.Contains(out, "commit ") {
		t.Errorf("version: exit %d: %q", code, out)
	}
}

// What only a driver's sensors together can show is found by check, before
// the gateway would refuse to start.
func TestCheckAcrossSensors(t *testing.T) {
	p := write(t, `gateway: {id: gw-1}
uplink: {kafka: {brokers: ["k:9092"]}}
sensors:
  - {id: a, driver: gpio, pin: GPIO17}
  - {id: b, driver: gpio, pin: "17"}
  - {id: t, driver: i2c, device: sht3x, address: 0x44, channel: temperature}
  - {id: c, driver: i2c, device: ina219, address: 0x44, channel: current}
  - {id: s1, driver: serial, port: /dev/ttyUSB0, pattern: '(?P<value>\d+)'}
  - {id: s2, driver: serial, port: /dev/ttyUSB0, baud: 19200, pattern: '(?P<value>\d+)'}
`)
	code, _, errs := edgegw("check", "--config", p)
	want := []string{
		p + `:5: sensors[1].pin: 17 is already read by sensor a`,
		p + `:7: sensors[3].address: sensor c: device ina219 at bus 1 address 0x44, where sensor t has a sht3x: one address is one chip`,
		p + `:9: sensors[5].port: sensor s2: baud 19200 differs from 9600 of sensor s1: sensors on port /dev/ttyUSB0 share its line settings`,
	}
	if code != 2 || strings.TrimSpace(errs) != strings.Join(want, "\n") {
		t.Fatalf("exit %d:\n%s\nwant:\n%s", code, errs, strings.Join(want, "\n"))
	}
}

// A gateway file that includes shared defaults: check names the included
// files, and --flatten prints one file that checks the same on its own.
func TestCheckIncludesAndFlatten(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "plant.defaults.yaml")
	if err := os.WriteFile(shared, []byte("uplink: {kafka: {brokers: [\"kafka.plant:9092\"], linger: 300ms}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gw := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(gw, []byte("include: plant.defaults.yaml\ngateway: {id: gw-1}\nsensors:\n  - {id: t, driver: mqtt, topic: a/b}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := edgegw("check", "--config", gw)
	if code != 0 || !strings.Contains(out, "# includes "+shared) {
		t.Fatalf("check: exit %d\n%s%s", code, out, errs)
	}
	code, flat, errs := edgegw("check", "--config", gw, "--flatten")
	if code != 0 || strings.Contains(flat, "include:") || !strings.Contains(flat, "kafka.plant:9092") {
		t.Fatalf("check --flatten: exit %d\n%s%s", code, flat, errs)
	}
	alone := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(alone, []byte(flat), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := edgegw("check", "--config", alone); code != 0 || !strings.Contains(out, "valid; gateway gw-1, 1 sensors") {
		t.Fatalf("the flattened file: exit %d\n%s%s", code, out, errs)
	}
}

// `edgegw run` collects garbage at GOGC 50 unless the environment sets
// GOGC, which then decides: as the runtime reports it on /metrics.
func TestRunGOGC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	for _, c := range []struct{ env, want string }{{"", "50"}, {"GOGC=200", "200"}} {
		dir := t.TempDir()
		port := peers.FreePort(t)
		cfg := filepath.Join(dir, "gw.yaml")
		y := fmt.Sprintf(`gateway: {id: gw-gogc}
http: {listen: "127.0.0.1:%d"}
buffer: {path: %s/buffer.db}
uplink: {kafka: {brokers: ["127.0.0.1:%d"]}}
sensors:
  - {id: t, driver: sim, signal: temperature, interval: 1s}
`, port, dir, peers.FreePort(t))
		if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", cfg)
		cmd.Env = append(os.Environ(), "GOGC=")
		if c.env != "" {
			cmd.Env = append(cmd.Env, c.env)
		}
		var logs mqtttest.LogBuffer
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		got := ""
		deadline := time.Now().Add(20 * time.Second)
		for got == "" && time.Now().Before(deadline) {
			if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port)); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for _, line := range strings.Split(string(body), "\n") {
					if v, ok := strings.CutPrefix(line, "go_gc_gogc_percent "); ok {
						got = v
					}
				}
			}
			if got == "" {
				time.Sleep(50 * time.Millisecond)
			}
		}
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if got != c.want {
			t.Errorf("env %q: go_gc_gogc_percent %q, want %s; gateway logs:\n%s", c.env, got, c.want, logs.String())
		}
	}
}
