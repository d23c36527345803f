package uplink

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestLargeBatchSplitsInOrder: a partition's records over maxRequestBytes
// go in several produce requests, one after the other, and arrive whole
// and in order.
func TestLargeBatchSplitsInOrder(t *testing.T) {
	const n = 1000
	c := newCluster(t, kfake.SeedTopics(1, allTopics...))
	var (
		mu    sync.Mutex
		sizes []int // bytes of records per produce request
	)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range tp.Partitions {
				sizes = append(sizes, len(p.Records))
			}
		}
		return nil, nil, false // the broker answers as usual
	})
	long := strings.Repeat("oil pressure low on press 4 ", 120) // 3,360 bytes
	recs := make([]reading.Record, n)
	for i := range recs {
		ts := t0.Add(time.Duration(i) * time.Millisecond)
		recs[i] = reading.FromAlert(reading.Alert{Rule: fmt.Sprintf("rule_%d", i%7), State: reading.StateFiring,
			Severity: "critical", Value: float64(i), Since: ts, TS: ts, Message: long})
	}
	src := newMemSource()
	last := src.Append(recs...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) { o.BatchSize = n })
	env.waitDrained(t, 20*time.Second, last)

	got := consume(t, c.ListenAddrs(), []string{DefaultAlertsTopic}, n, seqOf(t))
	if len(got) != n {
		t.Errorf("consumed %d records, want %d", len(got), n)
	}
	for i, r := range got {
		if seq := seqOf(t)(r); seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d: not in order", i, seq)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Some 3.5 MB in one batch: four requests, none over the bound.
	if len(sizes) != 4 {
		t.Errorf("%d produce requests (%v bytes), want 4", len(sizes), sizes)
	}
	for _, s := range sizes {
		if s > maxRequestBytes {
			t.Errorf("a produce request carried %d bytes of records, over %d", s, maxRequestBytes)
		}
	}
	if e := testutil.ToFloat64(env.m.UplinkErrors); e != 0 {
		t.Errorf("%v errors", e)
	}
}

// TestPartitionFailureRetriesWholeBatch: when one partition's produce fails
// and the others succeed, the error says how many records failed, and the
// whole batch is sent again (at least once: the other partitions' records
// arrive twice, in order per key).
func TestPartitionFailureRetriesWholeBatch(t *testing.T) {
	const n = 300
	c := newCluster(t)
	var (
		mu     sync.Mutex
		failed int
	)
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		defer mu.Unlock()
		pr := req.(*kmsg.ProduceRequest)
		if failed > 0 || len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 || pr.Topics[0].Partitions[0].Partition != 1 {
			return nil, nil, false
		}
		failed++
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = pr.Topics[0].Topic
		rp := kmsg.NewProduceResponseTopicPartition()
		rp.Partition = 1
		rp.ErrorCode = kerr.NotEnoughReplicas.Code
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	var logs syncBuffer
	recs := make([]reading.Record, n)
	for i := range recs {
		recs[i] = reading.FromReading(reading.Reading{Sensor: fmt.Sprintf("sensor_%d", i%30),
			TS: t0.Add(time.Duration(i) * time.Millisecond), Value: float64(i)})
	}
	src := newMemSource()
	last := src.Append(recs...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
		o.BatchSize = n
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	env.waitDrained(t, 10*time.Second, last)
	if e := testutil.ToFloat64(env.m.UplinkErrors); e != 1 {
		t.Errorf("%v errors, want 1", e)
	}
	got := consume(t, c.ListenAddrs(), []string{DefaultReadingsTopic}, n, seqOf(t))
	onOne := 0
	for _, r := range got {
		if r.Partition == 1 {
			onOne++
		}
	}
	if onOne == 0 || onOne == n {
		t.Fatalf("%d of %d records on partition 1: the test needs some on each side", onOne, n)
	}
	// The first attempt landed on partitions 0 and 2: those arrive twice.
	if dups := checkOrder(t, got, last); dups != n-onOne {
		t.Errorf("%d duplicates, want %d (the records of the partitions that succeeded)", dups, n-onOne)
	}
	want := fmt.Sprintf("of %d records failed: ", n)
	if log := logs.String(); !strings.Contains(log, want) || !strings.Contains(log, "NOT_ENOUGH_REPLICAS") && !strings.Contains(log, "Not Enough Replicas") {
		t.Errorf("the log does not say %q and why:\n%s", want, log)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
