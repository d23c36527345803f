package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/gateway/clocksync"
	"github.com/edgegw/edgegw/gateway/internal/peers"
	"github.com/edgegw/edgegw/gateway/reading"
)

// BenchmarkPipeline is the pipeline alone (DESIGN.md: at least 200,000
// readings/s): readings handed in process to the drivers' sink, as a
// driver does, through the rules (200 over 1,000 sensors), the spool
// (durable, group commits) and the uplink to Kafka (kfake, in this
// process too). The clock stops when Kafka has acknowledged all of them.
//
//	go test -run '^$' -bench Pipeline -benchtime 200000x -count 5 ./gateway
func BenchmarkPipeline(b *testing.B) {
	const sensors, rules = 1000, 200
	k := peers.StartKafka(b)
	dir := b.TempDir()
	var y strings.Builder
	fmt.Fprintf(&y, "gateway: {id: gw-bench}\nhttp: {listen: \"127.0.0.1:0\"}\nbuffer: {path: %s}\n", filepath.Join(dir, "buffer.db"))
	// No broker listens there: the MQTT sensors only name the ids the
	// readings below carry.
	fmt.Fprintf(&y, "mqtt: {url: \"tcp://127.0.0.1:1\"}\nuplink: {kafka: {brokers: [%q]}}\nsensors:\n", k.Addr())
	ids := make([]string, sensors)
	for i := range ids {
		ids[i] = fmt.Sprintf("s%04d", i)
		fmt.Fprintf(&y, "  - {id: %s, driver: mqtt, topic: bench/%s}\n", ids[i], ids[i])
	}
	y.WriteString("rules:\n")
	per := sensors / rules
	for r := range rules {
		terms := make([]string, per)
		for j := range terms {
			terms[j] = ids[r*per+j] + " > 1e15"
		}
		fmt.Fprintf(&y, "  - {name: r%03d, expr: %q}\n", r, strings.Join(terms, " || "))
	}
	cfg := loadYAML(b, dir, y.String())
	g, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClockSync: func() clocksync.State { return clocksync.Synced }})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() { cancel(); <-done }()

	s := sink{g}
	sent := g.metrics.UplinkSent.WithLabelValues("plant.readings")
	base := testutil.ToFloat64(sent)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	ts := start
	for i := range b.N {
		if i%1000 == 0 {
			ts = time.Now()
		}
		r := reading.Reading{Sensor: ids[i%sensors], TS: ts, Value: float64(i % 100), Quality: reading.Good}
		if err := s.Emit(ctx, r, nil); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for testutil.ToFloat64(sent)-base < float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("%v of %d readings reached Kafka", testutil.ToFloat64(sent)-base, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "readings/s")
}
