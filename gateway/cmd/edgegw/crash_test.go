package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/internal/peers"
)

// buildBinary builds the real edgegw binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgegw")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// kill9Iterations is how many times TestCrashKill9 kills the gateway:
// dozens in `make test`, hundreds in `make soak`
// (EDGEGW_KILL9_ITERATIONS).
func kill9Iterations(t *testing.T) int {
	if v := os.Getenv("EDGEGW_KILL9_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDGEGW_KILL9_ITERATIONS=%q", v)
		}
		return n
	}
	return 24
}

// The built binary is killed with SIGKILL at random moments, again and
// again, under a steady stream of QoS 1 readings, and started again each
// time: every reading reaches Kafka; none is stored twice because of a
// crash (a broker redelivery of a message the spool had committed is
// recognised by its packet id and hash and acknowledged, not stored); the
// only duplicates allowed are those of a Kafka produce whose answer was
// lost, which carry the same seq; all are counted by cause.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	iterations := kill9Iterations(t)
	bin := buildBinary(t)
	kafka := peers.StartKafka(t)
	broker := peers.StartBroker(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gw.yaml")
	httpPort := peers.FreePort(t)
	y := fmt.Sprintf(`gateway: {id: gw-crash}
http: {listen: "127.0.0.1:%d"}
buffer: {path: %s/buffer.db}
mqtt: {url: %q, client_id: gw-crash}
uplink: {kafka: {brokers: [%q], linger: 20ms}}
sensors:
  - {id: a, driver: mqtt, topic: crash/a}
  - {id: b, driver: mqtt, topic: crash/b}
  - {id: w, driver: mqtt, topic: crash/w}
`, httpPort, dir, broker.URL(), kafka.Addr())
	if err := os.WriteFile(cfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs mqtttest.LogBuffer // each process's stderr is copied by its own goroutine
	startGW := func() *exec.Cmd {
		cmd := exec.Command(bin, "run", "--config", cfg)
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	gw := startGW()
	defer func() {
		_ = gw.Process.Kill()
		_, _ = gw.Process.Wait()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	}()

	pub := peers.Client(t, broker.URL(), "crash-publisher")
	gwAddr := fmt.Sprintf("127.0.0.1:%d", httpPort)
	peers.WaitReading(t, pub, gwAddr, "crash/w", "1", "w")
	// The publisher holds gate's read lock for each publish; the test takes
	// the write lock while a gateway resumes its session. mochi-mqtt v2.7.9
	// loses QoS 1 messages published at that instant: inheritClientSession
	// clones the old session's in-flight messages, and a message routed to
	// the old client between the clone and the swap is in neither (seen
	// here: 68 lost in a row, the broker counting none dropped). Messages
	// published while the gateway is down are queued in its session, which
	// is what this test is about; the interop check with mosquitto publishes
	// through the reconnect.
	var gate sync.RWMutex
	var published atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			topic := "crash/a"
			if i%2 == 1 {
				topic = "crash/b"
			}
			gate.RLock()
			tok := pub.Publish(topic, 1, false, fmt.Sprint(i))
			tok.Wait()
			gate.RUnlock()
			published.Add(1)
			// A steady stream of about 3,000 a second: what piles up while
			// the gateway is down stays within the broker's queue for an
			// offline client (mochi: 8,192 in flight; beyond it the broker
			// drops, which a gateway cannot help).
			if i%30 == 29 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for k := 0; k < iterations; k++ {
		// A random moment of the stream: the kill lands before, during or
		// after a commit, an acknowledgement or a produce.
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		if err := gw.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = gw.Process.Wait()
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond) // down: the broker queues
		gate.Lock()
		gw = startGW()
		peers.WaitReading(t, pub, gwAddr, "crash/w", "1", "w")
		gate.Unlock()
	}
	close(stop)
	<-done
	n := int(published.Load())

	// Per-sensor order of first arrivals is counted, not asserted, here:
	// mochi-mqtt v2.7.9 resends a resumed session's queued messages sorted
	// by the second they arrived (uint16(Created), Unix seconds), in map
	// order within that second, so the broker itself reorders them. The
	// interop check with mosquitto, which keeps its queue in order, asserts
	// the order.
	reordered := 0
	seqs := map[int][]uint64{} // value -> the seq of each arrival
	last := map[string]int{"a": -1, "b": -1}
	ok := kafka.Consume([]string{"plant.readings"}, 60*time.Second, func(r *kgo.Record) bool {
		var x struct {
			Sensor string  `json:"sensor"`
			Value  float64 `json:"value"`
			Seq    uint64  `json:"seq"`
		}
		if err := json.Unmarshal(r.Value, &x); err != nil {
			t.Fatal(err)
		}
		if x.Sensor == "w" {
			return true
		}
		v := int(x.Value)
		if len(seqs[v]) == 0 {
			if v <= last[x.Sensor] {
				reordered++
			}
			last[x.Sensor] = v
		}
		seqs[v] = append(seqs[v], x.Seq)
		return len(seqs) < n
	})
	if d := broker.Server.Info.InflightDropped; d > 0 {
		t.Fatalf("the broker dropped %d messages at its queue limit for the offline gateway: the stream is too fast for this test", d)
	}
	if !ok {
		var missing []string
		for i := 0; i < n && len(missing) < 10; i++ {
			if len(seqs[i]) == 0 {
				missing = append(missing, fmt.Sprint(i))
			}
		}
		i := broker.Server.Info
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", httpPort)); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(body), "\n") {
				if strings.HasPrefix(l, "edgegw_") && !strings.Contains(l, "_bucket") {
					t.Log(l)
				}
			}
		}
		if cl, ok := broker.Server.Clients.Get("gw-crash"); ok {
			t.Logf("broker session gw-crash: %d in flight, closed %v", cl.State.Inflight.Len(), cl.Closed())
		}
		t.Fatalf("%d of %d readings reached Kafka after %d kill -9; first missing: %s (broker: %d received, %d sent, %d dropped, %d in-flight dropped)",
			len(seqs), n, iterations, strings.Join(missing, ","), i.MessagesReceived, i.MessagesSent, i.MessagesDropped, i.InflightDropped)
	}
	sameSeq, storedTwice := 0, 0
	for v, ss := range seqs {
		distinct := map[uint64]bool{}
		for _, s := range ss {
			distinct[s] = true
		}
		sameSeq += len(ss) - len(distinct)
		if len(distinct) > 1 {
			storedTwice += len(distinct) - 1
			if storedTwice <= 5 {
				t.Errorf("reading %d stored %d times (seqs %v)", v, len(distinct), ss)
			}
		}
	}
	dedup := metricValue(t, gwAddr, `edgegw_mqtt_redeliveries_total{result="deduplicated"}`)
	t.Logf("kill -9 %d times during %d QoS 1 readings: 0 lost, %d stored twice, %d duplicates with the same seq (a Kafka answer lost), "+
		"%d first arrivals reordered by the broker's resend; this last process deduplicated %v redeliveries",
		iterations, n, storedTwice, sameSeq, reordered, dedup)

	// A clean stop after the crashes exits 0.
	if err := gw.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := gw.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// metricValue reads one series of the gateway's /metrics ("" if absent).
func metricValue(t *testing.T, addr, series string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}
