package uplink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// checkOrder checks that every seq 1..last arrived and that, per key, the
// first arrivals are in seq order; it returns the number of duplicates.
func checkOrder(t *testing.T, got []*kgo.Record, last uint64) (dups int) {
	t.Helper()
	seen := map[uint64]bool{}
	lastByKey := map[string]uint64{}
	for _, r := range got {
		seq := seqOf(t)(r)
		if seen[seq] {
			dups++
			continue
		}
		seen[seq] = true
		k := r.Topic + "/" + string(r.Key)
		if seq < lastByKey[k] {
			t.Errorf("key %s: seq %d first arrived after %d", k, seq, lastByKey[k])
		}
		lastByKey[k] = seq
	}
	for s := uint64(1); s <= last; s++ {
		if !seen[s] {
			t.Errorf("seq %d lost", s)
		}
	}
	return dups
}

// TestProduceFaultRetriesSameBatch fails produce requests and checks, on a
// fake clock, that the batch is retried only after the capped exponential
// backoff, in the same order, and that nothing is acknowledged early.
func TestProduceFaultRetriesSameBatch(t *testing.T) {
	for name, inject := range map[string]func(c *kfake.Cluster, n int){
		"error code": func(c *kfake.Cluster, n int) {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: n})
		},
		"dropped connection": func(c *kfake.Cluster, n int) {
			var mu sync.Mutex
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				mu.Lock()
				defer mu.Unlock()
				if n == 0 { // not handled: the broker answers as usual
					c.DropControl()
					return nil, nil, false
				}
				n--
				c.KeepControl()
				return nil, errors.New("injected: drop the connection"), true
			})
		},
	} {
		t.Run(name, func(t *testing.T) {
			const n = 200
			ms := time.Millisecond
			// One partition per topic and readings only: one produce request
			// per attempt, so the fault count is the failed attempt count.
			c := newCluster(t, kfake.SeedTopics(1, allTopics...))
			inject(c, 3)
			src := newMemSource()
			recs := make([]reading.Record, n)
			for i := range recs {
				recs[i] = mixedRecords(1, 7, i*10)[0] // i*10 % 10 == 0: a reading
			}
			last := src.Append(recs...)
			fc := clockwork.NewFakeClock()
			env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
				o.Clock, o.BatchSize = fc, n // a full batch: no linger on the fake clock
				o.BackoffMin, o.BackoffMax = 100*ms, 300*ms
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs := func() int { return int(testutil.ToFloat64(env.m.UplinkErrors)) }
			for i, wait := range []time.Duration{100 * ms, 200 * ms, 300 * ms} {
				// Only the backoff waits on the clock: the reader is parked
				// in WaitCommitted, the acker has nothing to do.
				if err := fc.BlockUntilContext(ctx, 1); err != nil {
					t.Fatalf("attempt %d: no backoff: %v", i+1, err)
				}
				if errs() != i+1 || env.u.Connected() {
					t.Fatalf("attempt %d: errors %d, connected %v", i+1, errs(), env.u.Connected())
				}
				if pending, _ := src.state(); pending != n || env.u.Sent() != 0 {
					t.Fatalf("attempt %d: acknowledged early: %d pending, sent %d", i+1, pending, env.u.Sent())
				}
				fc.Advance(wait - ms)
				if err := fc.BlockUntilContext(ctx, 1); err != nil || errs() != i+1 {
					t.Fatalf("attempt %d: retried before %s of backoff (errors %d)", i+1, wait, errs())
				}
				fc.Advance(ms)
			}
			env.waitDrained(t, 10*time.Second, last)
			if !env.u.Connected() || errs() != 3 {
				t.Errorf("after retry: connected %v, errors %d", env.u.Connected(), errs())
			}
			got := consume(t, c.ListenAddrs(), []string{DefaultReadingsTopic}, n, seqOf(t))
			if dups := checkOrder(t, got, last); dups != 0 {
				t.Errorf("%d duplicates from requests the broker rejected", dups)
			}
			for i, r := range got {
				if seq := seqOf(t)(r); seq != uint64(i+1) {
					t.Fatalf("record %d has seq %d: batch not retried in order", i, seq)
				}
			}
		})
	}
}

// TestBrokerRestart stops the broker mid-stream and starts it again on the
// same port and data dir while records keep arriving.
func TestBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	c1 := newCluster(t, kfake.DataDir(dir))
	addrs := c1.ListenAddrs()
	var port int
	if _, err := fmt.Sscanf(addrs[0], "127.0.0.1:%d", &port); err != nil {
		t.Fatalf("listen addr %q: %v", addrs[0], err)
	}

	src := newMemSource()
	env := startUplink(t, addrs, src, nil)
	stopFeed := make(chan struct{})
	fed := make(chan uint64)
	go func() { // about 10k records/s, 20 keys, until stopped
		var last uint64
		for i := 0; ; i += 50 {
			select {
			case <-stopFeed:
				fed <- last
				return
			case <-time.After(5 * time.Millisecond):
			}
			last = src.Append(mixedRecords(50, 20, i)...)
		}
	}()

	waitFor(t, 10*time.Second, "a first part sent", func() bool { return env.u.Sent() > 1000 })
	c1.Close()
	waitFor(t, 10*time.Second, "Connected() false", func() bool { return !env.u.Connected() })
	time.Sleep(2 * time.Second) // a backlog builds up in the source
	if env.u.Connected() {
		t.Error("Connected() true while the broker is down")
	}
	if since, msg := env.u.Outage(); since.IsZero() || msg == "" {
		t.Errorf("Outage() = %v, %q during the outage", since, msg)
	}
	pending, _ := src.state()

	c2 := newCluster(t, kfake.Ports(port), kfake.DataDir(dir))
	waitFor(t, 10*time.Second, "Connected() true", env.u.Connected)
	if since, msg := env.u.Outage(); !since.IsZero() || msg != "" {
		t.Errorf("Outage() = %v, %q after reconnecting", since, msg)
	}
	close(stopFeed)
	last := <-fed
	env.waitDrained(t, 20*time.Second, last)
	t.Logf("backlog %d records, %d sent in all, %v errors", pending, last, testutil.ToFloat64(env.m.UplinkErrors))

	got := consume(t, c2.ListenAddrs(), allTopics, int(last), seqOf(t))
	dups := checkOrder(t, got, last)
	t.Logf("%d records consumed, %d duplicates", len(got), dups)
	if testutil.ToFloat64(env.m.UplinkErrors) == 0 {
		t.Error("no produce errors counted during the outage")
	}
}

// TestRunStopsWhileDown checks that Run returns promptly when cancelled
// during an outage, with the batch kept in the source.
func TestRunStopsWhileDown(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	c.Close()
	src := newMemSource()
	last := src.Append(mixedRecords(10, 3, 0)...)
	env := startUplink(t, addrs, src, nil)
	waitFor(t, 10*time.Second, "a failed attempt", func() bool { return testutil.ToFloat64(env.m.UplinkErrors) > 0 })
	start := time.Now()
	env.stop(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %s to return", d)
	}
	if pending, acked := src.state(); pending != int(last) || acked != 0 || env.u.Sent() != 0 {
		t.Errorf("after stop: %d pending, acked %d, sent %d", pending, acked, env.u.Sent())
	}
}
