package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/gateway/metrics"
)

// TestOutageModeWithKafka runs a real spool in outage mode under a real
// uplink against kfake, with records arriving at about 2,000/s, every tenth
// with a done callback (an MQTT QoS 1 message): while Kafka answers,
// records flow from memory and nothing is written to the spool file; with
// Kafka stopped they go to the file; with Kafka back the file drains and
// the spool returns to memory. Every seq arrives, the first arrivals in
// order per key, and every callback runs once, only after its record was
// committed or acknowledged by Kafka.
func TestOutageModeWithKafka(t *testing.T) {
	dir := t.TempDir()
	c1 := newCluster(t, kfake.DataDir(dir))
	addrs := c1.ListenAddrs()
	var port int
	if _, err := fmt.Sscanf(addrs[0], "127.0.0.1:%d", &port); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	path := filepath.Join(t.TempDir(), "buffer.db")
	sp, err := buffer.Open(buffer.Options{Path: path, Mode: buffer.Outage, OutageAfter: 500 * time.Millisecond,
		CommitInterval: 50 * time.Millisecond, Metrics: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	spCtx, stopSpool := context.WithCancel(context.Background())
	spDone := make(chan error, 1)
	go func() { spDone <- sp.Run(spCtx) }()
	t.Cleanup(func() {
		stopSpool()
		<-spDone
		sp.Close()
	})
	env := startUplinkOn(t, addrs, sp, m, func(o *Options) { o.Linger = 20 * time.Millisecond })

	var (
		mu       sync.Mutex
		called   = map[uint64]int{}
		early    []uint64
		fedLast  uint64
		feedStop = make(chan struct{})
		fed      = make(chan struct{})
	)
	go func() { // about 2,000 records/s over 20 keys
		defer close(fed)
		for i := 0; ; i += 20 {
			select {
			case <-feedStop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			for j, r := range mixedRecords(20, 20, i) {
				var done func()
				var seq uint64
				if (i+j)%10 == 0 {
					done = func() {
						mu.Lock()
						defer mu.Unlock()
						called[seq]++
						if st := sp.Stats(); env.u.Sent() < seq && st.LastSeq < seq {
							early = append(early, seq)
						}
					}
				}
				mu.Lock()
				s, err := sp.Append(r, done)
				seq = s
				if err == nil {
					fedLast = s
				}
				mu.Unlock()
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		}
	}()

	// The switch to memory leaves the records appended since the last
	// commit to go through the file: a commit and an acknowledgement.
	waitFor(t, 10*time.Second, "memory state, the file empty", func() bool {
		st := sp.Stats()
		return st.Memory && st.Records == st.InMemory && st.Pending == 0
	})
	time.Sleep(200 * time.Millisecond)
	writes, commits := sp.DiskWrites(), testutil.ToFloat64(m.BufferCommits)
	info0, _ := os.Stat(path)
	sent0 := env.u.Sent()
	// Records flow (however fast this machine is today) with nothing
	// written to the file meanwhile.
	waitFor(t, 30*time.Second, "2,000 more records sent from memory", func() bool { return env.u.Sent() >= sent0+2000 })
	info1, _ := os.Stat(path)
	if got := sp.DiskWrites(); got != writes || testutil.ToFloat64(m.BufferCommits) != commits || info1.Size() != info0.Size() {
		t.Errorf("healthy: %d disk writes (were %d), %v commits (were %v), file %d bytes (was %d)",
			got, writes, testutil.ToFloat64(m.BufferCommits), commits, info1.Size(), info0.Size())
	}
	if !sp.Stats().Memory {
		t.Fatalf("healthy: Stats %+v, sent %d then %d", sp.Stats(), sent0, env.u.Sent())
	}
	t.Logf("healthy: %d records sent, %d disk writes", env.u.Sent()-sent0, sp.DiskWrites()-writes)

	c1.Close()
	waitFor(t, 10*time.Second, "the switch to the file", func() bool { return !sp.Stats().Memory })
	w0, l0 := sp.DiskWrites(), sp.Stats().LastSeq
	time.Sleep(time.Second)
	st := sp.Stats()
	if sp.DiskWrites() <= w0 || st.LastSeq <= l0 || st.Memory || st.Records < 1000 {
		t.Errorf("Kafka down: %d disk writes (were %d), Stats %+v", sp.DiskWrites(), w0, st)
	}
	t.Logf("Kafka down for 1 s: %d records in the file, %d disk writes", st.Records, sp.DiskWrites()-w0)

	c2 := newCluster(t, kfake.Ports(port), kfake.DataDir(dir))
	waitFor(t, 20*time.Second, "the file drained and memory state again", func() bool {
		st := sp.Stats()
		return st.Memory && st.Records-st.InMemory == 0
	})
	time.Sleep(500 * time.Millisecond)
	close(feedStop)
	<-fed
	mu.Lock()
	last := fedLast
	mu.Unlock()
	waitFor(t, 20*time.Second, "everything sent", func() bool { return env.u.Sent() == last && sp.Stats().Records == 0 })
	if got := testutil.ToFloat64(m.BufferModeSwitches.WithLabelValues("disk")); got < 1 {
		t.Errorf("switches to disk: %v", got)
	}

	got := consume(t, c2.ListenAddrs(), allTopics, int(last), seqOf(t))
	dups := checkOrder(t, got, last)
	mu.Lock()
	defer mu.Unlock()
	for seq, n := range called {
		if n != 1 {
			t.Errorf("done for seq %d called %d times", seq, n)
		}
	}
	if len(early) > 0 {
		t.Errorf("%d done callbacks ran before their record was committed or acknowledged by Kafka (first seq %d)", len(early), early[0])
	}
	t.Logf("%d records, %d duplicates (same seq), %d callbacks, %v switches to memory, %v to disk",
		last, dups, len(called), testutil.ToFloat64(m.BufferModeSwitches.WithLabelValues("memory")),
		testutil.ToFloat64(m.BufferModeSwitches.WithLabelValues("disk")))
}
