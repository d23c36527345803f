package uplink

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// readingsOnly is n readings over 7 sensors.
func readingsOnly(n int) []reading.Record {
	recs := make([]reading.Record, n)
	for i := range recs {
		recs[i] = reading.FromReading(reading.Reading{Sensor: fmt.Sprintf("sensor_%d", i%7),
			TS: t0.Add(time.Duration(i) * time.Millisecond), Value: float64(i)})
	}
	return recs
}

// readLog records the source's reads and lets a test wait for one.
type readLog struct {
	mu   sync.Mutex
	seen map[uint64]bool
	cond *sync.Cond
}

func newReadLog(src *memSource) *readLog {
	l := &readLog{seen: map[uint64]bool{}}
	l.cond = sync.NewCond(&l.mu)
	src.onRead = func(after uint64) {
		l.mu.Lock()
		l.seen[after] = true
		l.cond.Broadcast()
		l.mu.Unlock()
	}
	return l
}

// wait returns once a read after seq after happened, false after 10 s.
func (l *readLog) wait(after uint64) bool {
	timer := time.AfterFunc(10*time.Second, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.seen[after] && time.Now().Before(deadline) {
		l.cond.Wait()
	}
	return l.seen[after]
}

// TestAcksHeldWhileBatchesReady drains 20 batches, each produce answered
// only once the next batch is encoded and waiting: the spool is told at
// most every eight batches, and of everything at the end, not 20 times.
func TestAcksHeldWhileBatchesReady(t *testing.T) {
	const batch, n = 100, 2000
	c := newCluster(t, kfake.SeedTopics(1, allTopics...))
	src := newMemSource()
	reads := newReadLog(src)
	var mu sync.Mutex
	produced := 0
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		k := produced
		produced++
		mu.Unlock()
		// Batch k+1 is in the channel once batch k+2 is being read.
		if next := uint64((k + 2) * batch); next < n && !reads.wait(next) {
			t.Errorf("produce %d: the batch after next was never read", k)
		}
		return nil, nil, false
	})
	last := src.Append(readingsOnly(n)...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) { o.BatchSize = batch })
	env.waitDrained(t, 20*time.Second, last)
	// After batches 8 and 16 (the bound), and after the last. The 19th
	// may find the 20th not yet encoded: one more then.
	if a := src.ackCount(); a < 3 || a > 4 {
		t.Errorf("the spool was acknowledged %d times for %d batches, want 3 or 4", a, n/batch)
	}
}

// TestAcksFlushedWhenProduceFails: records Kafka has are acknowledged to
// the spool while the next batch keeps failing, not held for the outage.
func TestAcksFlushedWhenProduceFails(t *testing.T) {
	const batch, n = 100, 300
	c := newCluster(t, kfake.SeedTopics(1, allTopics...))
	src := newMemSource()
	reads := newReadLog(src)
	var mu sync.Mutex
	produced, failing := 0, true
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		k, fail := produced, failing
		produced++
		mu.Unlock()
		if k == 0 {
			// The first batch succeeds with the second waiting behind it.
			if !reads.wait(2 * batch) {
				t.Error("the third batch was never read")
			}
			return nil, nil, false
		}
		if !fail {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, tp := range pr.Topics {
			rt := kmsg.NewProduceResponseTopic()
			rt.Topic = tp.Topic
			for _, p := range tp.Partitions {
				rp := kmsg.NewProduceResponseTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = kerr.NotEnoughReplicas.Code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	last := src.Append(readingsOnly(n)...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) { o.BatchSize = batch })
	waitFor(t, 10*time.Second, "the first batch acknowledged to the spool while the second fails", func() bool {
		_, acked := src.state()
		return acked == batch
	})
	if env.u.Connected() {
		t.Error("Connected() while produces fail")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	env.waitDrained(t, 10*time.Second, last)
}
