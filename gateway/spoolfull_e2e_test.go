package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw/buffer/disktest"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/internal/peers"
	"github.com/edgegw/edgegw/gateway/metrics"
)

// waitAlert polls /api/state until rule is in state ("" for not listed)
// and returns that alert.
func waitAlert(t *testing.T, addr, rule, state string, timeout time.Duration) httpapi.Alert {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st httpapi.State
		getJSON(t, "http://"+addr+"/api/state", &st)
		for _, a := range st.Alerts {
			if a.Rule == rule && a.State == state {
				return a
			}
		}
		if state == "" && alertState(st.Alerts, rule) == "" {
			return httpapi.Alert{}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %q within %s; alerts %+v", rule, state, timeout, st.Alerts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spoolFullOnKafka waits for edgegw_spool_full's firing and resolved
// transitions on the alerts topic and returns the firing message.
func spoolFullOnKafka(t *testing.T, k *peers.Kafka) string {
	t.Helper()
	var states []string
	var msg string
	k.Consume([]string{"plant.alerts"}, 30*time.Second, func(r *kgo.Record) bool {
		if string(r.Key) == "edgegw_spool_full" {
			var a struct{ State, Severity, Message string }
			_ = json.Unmarshal(r.Value, &a)
			states = append(states, a.State)
			if a.State == "firing" {
				msg = a.Message
				if a.Severity != "warning" {
					t.Errorf("severity %q", a.Severity)
				}
			}
		}
		return len(states) < 2
	})
	if strings.Join(states, ",") != "firing,resolved" {
		t.Fatalf("edgegw_spool_full on Kafka: %v", states)
	}
	return msg
}

// Kafka is away and the spool reaches buffer.max_bytes: drop_oldest drops,
// edgegw_spool_full fires saying so, and more than max_bytes of readings
// follow, which drop_oldest drops instead of that firing transition;
// Kafka returns, the spool drains, the alert resolves, and both
// transitions reach Kafka.
func TestSpoolFullAlertMaxBytes(t *testing.T) {
	s := newStack(t)
	s.bufExtra = ", max_bytes: 64KiB"
	gw := start(t, s.config(t, fourSensors))
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
	s.kafka.Stop()
	publishStream(t, pub, 0, 4000) // about 160 KiB of readings
	a := waitAlert(t, gw.g.Addr(), "edgegw_spool_full", "firing", 20*time.Second)
	if a.Severity != "warning" || !strings.Contains(a.Message, "max_bytes") || !strings.Contains(a.Message, "drop_oldest") {
		t.Errorf("alert %+v", a)
	}
	drops := gw.g.Metrics().Dropped.WithLabelValues(metrics.DropSpoolFullOldest)
	before := testutil.ToFloat64(drops)
	if before == 0 {
		t.Error("no drops counted")
	}
	publishStream(t, pub, 4000, 8000) // about 160 KiB more, after the firing transition
	for deadline := time.Now().Add(20 * time.Second); testutil.ToFloat64(drops) < before+2000; {
		if time.Now().After(deadline) {
			t.Fatalf("dropped{spool_full_oldest} went from %v to %v, want 2000 more", before, testutil.ToFloat64(drops))
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.kafka.Start()
	waitAlert(t, gw.g.Addr(), "edgegw_spool_full", "", 60*time.Second)
	if msg := spoolFullOnKafka(t, s.kafka); !strings.Contains(msg, "max_bytes") {
		t.Errorf("firing message %q", msg)
	}
}

// The disk under the spool fills up (a 1 MiB tmpfs) while MQTT QoS 1
// readings arrive: edgegw_spool_full fires at the first failed commit,
// nothing is acknowledged to the broker, nothing is dropped (the broker's
// in-flight window keeps the waiting readings under the memory bound);
// space returns, the commits resume, every reading reaches Kafka and the
// alert resolves.
func TestSpoolFullAlertDiskFull(t *testing.T) {
	dir := disktest.Tmpfs(t, "1m", "buffer's TestDiskFullFileSizeLimit covers a full disk unprivileged")
	s := newStack(t)
	s.bufDir = dir
	gw := start(t, s.config(t, fourSensors))
	t.Cleanup(func() { _ = gw.stop() }) // before the umount
	pub := peers.Client(t, s.broker.URL(), "plc")
	peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")

	free := disktest.Fill(t, s.bufDir)

	const n = 400
	done := make(chan struct{})
	go func() { defer close(done); publishStream(t, pub, 0, n) }()
	a := waitAlert(t, gw.g.Addr(), "edgegw_spool_full", "firing", 20*time.Second)
	if !strings.Contains(a.Message, "is full") || !strings.Contains(a.Message, "no space left on device") {
		t.Errorf("alert message %q", a.Message)
	}
	time.Sleep(time.Second) // the spool retries, and fails again
	free()
	<-done
	byKey := collect(t, s.kafka, n, 60*time.Second)
	if dups := checkOrder(t, byKey); dups != 0 {
		t.Logf("%d duplicates", dups)
	}
	for _, r := range []string{metrics.DropDiskFull, metrics.DropSpoolBacklog} {
		if got := testutil.ToFloat64(gw.g.Metrics().Dropped.WithLabelValues(r)); got != 0 {
			t.Errorf("dropped{%s} = %v", r, got)
		}
	}
	waitAlert(t, gw.g.Addr(), "edgegw_spool_full", "", 30*time.Second)
	if msg := spoolFullOnKafka(t, s.kafka); !strings.Contains(msg, "is full") {
		t.Errorf("firing message %q", msg)
	}
}
