package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/clocksync"
	"github.com/edgegw/edgegw/gateway/reading"
)

// TestEmitBatch: a batch goes through the input queue in buffers of
// batchMax; with the pipeline stopped, EmitBatch waits once the queue is
// full and gives its buffer back when its context ends; the pipeline then
// handles every reading in order and returns every buffer.
func TestEmitBatch(t *testing.T) {
	dir := t.TempDir()
	cfg := loadYAML(t, dir, "gateway: {id: gw-batch}\nhttp: {listen: \"127.0.0.1:0\"}\nbuffer: {path: "+filepath.Join(dir, "buffer.db")+"}\n"+
		"mqtt: {url: \"tcp://127.0.0.1:1\"}\nuplink: {kafka: {brokers: [\"127.0.0.1:1\"]}}\n"+
		"sensors:\n  - {id: v, driver: mqtt, topic: line/v}\n")
	const queue = 4
	g, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), InputQueue: queue,
		ClockSync: func() clocksync.State { return clocksync.Synced }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.closeAll)

	const n = 10 * batchMax // more than the queue holds
	rs := make([]reading.Reading, n)
	ts := time.Now()
	for i := range rs {
		rs[i] = reading.Reading{Sensor: "v", TS: ts, Value: float64(i), Quality: reading.Good}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sink{g}.EmitBatch(ctx, rs) }()
	// The queue fills with four batches; a fifth buffer is taken and waits.
	deadline := time.Now().Add(10 * time.Second)
	for len(g.in) < queue || len(g.batchFree) != batchBuffers-queue-1 {
		if time.Now().After(deadline) {
			t.Fatalf("queue %d, free buffers %d: EmitBatch did not fill the queue and wait", len(g.in), len(g.batchFree))
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("EmitBatch returned %v with the queue full", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("EmitBatch after cancel: %v", err)
	}
	if f := len(g.batchFree); f != batchBuffers-queue {
		t.Fatalf("%d free buffers after the cancel, want %d: the waiting one was not given back", f, batchBuffers-queue)
	}
	for i := range queue { // each taken and put back: the same order after
		it := <-g.in
		if len(it.batch) != batchMax || it.batch[0].Value != float64(i*batchMax) {
			t.Fatalf("batch %d: %d readings from %v", i, len(it.batch), it.batch[0].Value)
		}
		g.in <- it
	}

	// The pipeline takes what was queued, and a batch of odd size after it.
	pipeDone := make(chan struct{})
	go func() { g.pipeline(); close(pipeDone) }()
	if err := (sink{g}).EmitBatch(context.Background(), rs[queue*batchMax:queue*batchMax+3]); err != nil {
		t.Fatal(err)
	}
	close(g.in)
	<-pipeDone
	want := queue*batchMax + 3
	if st := g.spool.Stats(); st.NextSeq != uint64(want)+1 {
		t.Errorf("the spool took %d records, want %d", st.NextSeq-1, want)
	}
	if row := g.sensors.Load().snapshot(ts)[0]; row.Readings != uint64(want) || row.Value == nil || *row.Value != float64(want-1) {
		t.Errorf("sensor v: %d readings, last %v; want %d, last %d", row.Readings, row.Value, want, want-1)
	}
	if f := len(g.batchFree); f != batchBuffers {
		t.Errorf("%d of %d buffers back after the pipeline", f, batchBuffers)
	}
}
