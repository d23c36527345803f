package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// gatewayProc is the gateway under test, in its own process.
type gatewayProc struct {
	cmd     *exec.Cmd
	http    string
	logPath string
	done    chan struct{}
}

// benchConfig is a gateway with sensors MQTT sensors (bench/sNNNN) and the
// alert probe (bench/probe), rules-1 rules each over its share of the
// sensors, and the probe's rule, whose alerts go to MQTT.
func benchConfig(o options, dir, brokerURL, kafkaAddr string, httpPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {id: bench-gw}\n")
	if o.profile != "" {
		fmt.Fprintf(&b, "http: {listen: \"127.0.0.1:%d\", pprof: true}\n", httpPort)
	} else { // no pprof key: builds from before it was added run too
		fmt.Fprintf(&b, "http: {listen: \"127.0.0.1:%d\"}\n", httpPort)
	}
	fmt.Fprintf(&b, "buffer: {path: %q}\n", filepath.Join(dir, "spool", "buffer.db"))
	fmt.Fprintf(&b, "mqtt: {url: %q, client_id: bench-gw, qos: %d}\n", brokerURL, o.qos)
	fmt.Fprintf(&b, "uplink: {kafka: {brokers: [%q]}}\n", kafkaAddr)
	fmt.Fprintf(&b, "alerts: {mqtt_topic: bench-alerts}\n")
	b.WriteString("sensors:\n")
	for i := range o.sensors {
		fmt.Fprintf(&b, "  - {id: %s, driver: mqtt, topic: bench/%s}\n", sensorID(i), sensorID(i))
	}
	b.WriteString("  - {id: probe, driver: mqtt, topic: bench/probe}\n")
	b.WriteString("rules:\n")
	b.WriteString("  - {name: probe_high, expr: \"probe > 0\"}\n")
	// The other rules share the sensors out between them, so that every
	// reading is evaluated by one rule; their thresholds are never
	// crossed (values are sequence numbers), as on a quiet plant floor.
	n := max(1, o.rules-1)
	per := max(1, (o.sensors+n-1)/n)
	for r := range n {
		var terms []string
		for i := r * per; i < (r+1)*per && i < o.sensors; i++ {
			terms = append(terms, sensorID(i)+" > 1e15")
		}
		if len(terms) == 0 {
			terms = append(terms, sensorID(r%o.sensors)+" < -1")
		}
		fmt.Fprintf(&b, "  - {name: r%03d, expr: %q}\n", r, strings.Join(terms, " || "))
	}
	return b.String()
}

func sensorID(i int) string { return fmt.Sprintf("s%04d", i) }

func startGateway(o options, dir, brokerURL, kafkaAddr string) (*gatewayProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(cfgPath, []byte(benchConfig(o, dir, brokerURL, kafkaAddr, port)), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "gateway.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.gateway, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), o.gwEnv...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w (build it with: go build -o bin/edgegw ./gateway/cmd/edgegw)", o.gateway, err)
	}
	g := &gatewayProc{cmd: cmd, http: fmt.Sprintf("127.0.0.1:%d", port), logPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(g.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + g.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g, nil
			}
		}
		if g.exited() || time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("the gateway did not get ready (log: %s)", logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gatewayProc) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// stop ends the gateway with SIGTERM, as systemd does, and waits.
func (g *gatewayProc) stop() {
	if g.exited() {
		return
	}
	_ = g.cmd.Process.Signal(os.Interrupt)
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.done
	}
}

// cpuSeconds is a process's user plus system CPU time from /proc.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: the fields start after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// utime and stime are fields 14 and 15 of stat(5): 12 and 13 here.
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procStatus reads one "Key:   N kB" line of /proc/PID/status, in bytes.
func procStatus(pid int, key string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// profile saves the gateway's profile at path (/debug/pprof/...) to file.
func (g *gatewayProc) profile(path, file string) error {
	resp, err := http.Get("http://" + g.http + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// metric sums the gateway's /metrics samples whose name (with labels) starts
// with prefix.
func (g *gatewayProc) metric(prefix string) float64 {
	resp, err := http.Get("http://" + g.http + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}
