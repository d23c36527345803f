package buffer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/edgegw/edgegw/uplink"
)

// wearEnv, set to a duration (e.g. 60s), runs TestWear: the bytes the spool
// makes the process write at 1,000 readings/s, per scenario, measured over
// that long and extrapolated to an hour. make bench runs it.
const wearEnv = "EDGEGW_WEAR"

// TestWear measures SD card wear. Each scenario runs a spool and an uplink
// to an in-memory kfake cluster (no disk of its own) in this process, feeds
// 1,000 readings/s (10 every 10 ms over 20 sensors) for a warm-up of 5 s,
// then reads /proc/self/io before and after the measured period:
// write_bytes is what reached the block layer on the spool's behalf (page
// granular, the journal of the filesystem not included), wchar what was
// passed to write(2) and pwrite(2). Sources are GPIO-like (no done
// callback) or MQTT QoS 1-like (every reading waits for its done
// callback). The spool's file is in $TMPDIR, which must be on a block
// device (not a tmpfs) for write_bytes to mean anything.
//
// In outage mode with Kafka up it also measures the loss window: from a
// reading's Append to Kafka's acknowledgement (AckThrough), which is what
// a power cut can take from a source that cannot resend.
func TestWear(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv(wearEnv))
	if err != nil || d <= 0 {
		t.Skipf("set %s to a duration (e.g. 60s) to measure the bytes written per hour", wearEnv)
	}
	scenarios := []wearScenario{
		{name: "durable, GPIO-like, Kafka up", mode: Durable, kafka: true},
		{name: "durable, MQTT QoS 1-like, Kafka up", mode: Durable, kafka: true, qos1: true},
		{name: "durable, GPIO-like, Kafka down", mode: Durable},
		{name: "outage, GPIO-like, Kafka up", mode: Outage, kafka: true},
		{name: "outage, MQTT QoS 1-like, Kafka up", mode: Outage, kafka: true, qos1: true},
		{name: "outage, GPIO-like, Kafka down", mode: Outage},
	}
	if only := os.Getenv(wearEnv + "_ONLY"); only != "" {
		scenarios = slices.DeleteFunc(scenarios, func(s wearScenario) bool { return !strings.Contains(s.name, only) })
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%d readings/s for %s each (after 5 s of warm-up), per hour:\n", wearRate, d)
	fmt.Fprintf(&out, "| %-36s | %13s | %13s | %9s | %10s | %9s | %s |\n", "scenario", "write_bytes", "wchar",
		"bbolt txs", "fsyncs est", "file", "Append → Kafka ack (p50 / p99 / max)")
	for _, sc := range scenarios {
		r := sc.run(t, d)
		h := float64(time.Hour) / float64(d)
		window := "—"
		if len(r.windows) > 0 {
			window = fmt.Sprintf("%s / %s / %s", pct(r.windows, 50), pct(r.windows, 99), pct(r.windows, 100))
		}
		fmt.Fprintf(&out, "| %-36s | %8.1f MB/h | %8.1f MB/h | %9.0f | %10.0f | %6.1f MB | %s |\n", sc.name,
			float64(r.writeBytes)*h/1e6, float64(r.wchar)*h/1e6, float64(r.txs)*h, float64(r.fsyncs)*h,
			float64(r.fileSize)/1e6, window)
	}
	t.Log(out.String())
}

const wearRate = 1000 // readings/s

type wearScenario struct {
	name  string
	mode  Mode
	kafka bool // a cluster answers; else the uplink's brokers refuse connections
	qos1  bool // every reading has a done callback
}

type wearResult struct {
	writeBytes, wchar int64
	txs, fsyncs       uint64
	fileSize          int64
	windows           []time.Duration
}

func (sc wearScenario) run(t *testing.T, d time.Duration) wearResult {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, uplink.DefaultReadingsTopic,
		uplink.DefaultAlertsTopic, uplink.DefaultEventsTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	if !sc.kafka {
		c.Close()
	}
	dir, err := os.MkdirTemp("", "edgegw-wear-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "buffer.db")
	m := metrics.New()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(Options{Path: path, Mode: sc.mode, Metrics: m, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	// (timedSource has the spool's Waiting: with MQTT QoS 1-like readings
	// in memory the uplink does not linger.)
	src := &timedSource{Spool: s, appended: map[uint64]time.Time{}}
	u, err := uplink.New(uplink.Options{Brokers: brokers, Gateway: "gw-wear-01", Compression: "zstd",
		Metrics: m, Logger: log}, src) // linger 200ms, batches of 1000: the defaults
	if err != nil {
		t.Fatal(err)
	}
	upCtx, stopUp := context.WithCancel(context.Background())
	wg.Go(func() { _ = u.Run(upCtx) })

	var measuring, fed sync.WaitGroup
	stop := make(chan struct{})
	measuring.Add(1)
	fed.Add(1)
	var io0, io1 procIO
	var tx0, tx1, rs0, rs1 uint64
	go func() { // the feeder: 10 readings every 10 ms
		defer fed.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		cb := func() {}
		start := time.Now()
		measureAt, endAt := start.Add(5*time.Second), start.Add(5*time.Second+d)
		measured := false
		for i := 0; ; {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				if !measured && now.After(measureAt) {
					io0, tx0, rs0 = readProcIO(t), s.DiskWrites(), s.reservations()
					src.measureFrom(s.Stats().NextSeq)
					measured = true
				}
				if now.After(endAt) {
					io1, tx1, rs1 = readProcIO(t), s.DiskWrites(), s.reservations()
					src.measureFrom(0)
					measuring.Done()
					<-stop
					return
				}
				for range wearRate / 100 {
					var done func()
					if sc.qos1 {
						done = cb
					}
					seq, err := s.Append(wearReading(i), done)
					if err != nil {
						t.Error(err)
					}
					src.noteAppend(seq, now)
					i++
				}
			}
		}
	}()
	measuring.Wait()
	close(stop)
	fed.Wait()
	info, _ := os.Stat(path)
	stopUp()
	cancel()
	wg.Wait()
	s.Close()
	txs := tx1 - tx0
	rs := rs1 - rs0
	return wearResult{
		writeBytes: io1.writeBytes - io0.writeBytes, wchar: io1.wchar - io0.wchar,
		txs: txs - rs, fsyncs: 2 * txs, fileSize: info.Size(), windows: src.windows(),
	}
}

// reservations counts the seq reservation writes among DiskWrites.
func (s *Spool) reservations() uint64 { return s.resvWrites.Load() }

func wearReading(i int) reading.Record {
	return reading.FromReading(reading.Reading{
		Sensor: "line1_sensor_" + strconv.Itoa(i%20), TS: time.Now(),
		Value: float64(i%1000) * 0.37, Unit: "C", Quality: reading.Good,
	})
}

// timedSource is the spool as the uplink's Source, noting when each record
// was appended and when Kafka acknowledged it.
type timedSource struct {
	*Spool
	mu       sync.Mutex
	from     uint64 // seqs from here on are timed; 0: none
	appended map[uint64]time.Time
	acked    []time.Duration
}

func (ts *timedSource) measureFrom(seq uint64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.from = seq
}

func (ts *timedSource) noteAppend(seq uint64, at time.Time) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.from != 0 && seq >= ts.from {
		ts.appended[seq] = at
	}
}

func (ts *timedSource) AckThrough(seq uint64) error {
	now := time.Now()
	ts.mu.Lock()
	for s, at := range ts.appended {
		if s <= seq {
			ts.acked = append(ts.acked, now.Sub(at))
			delete(ts.appended, s)
		}
	}
	ts.mu.Unlock()
	return ts.Spool.AckThrough(seq)
}

// windows returns the Append → acknowledgement times, sorted; none in
// durable mode, where the commit is the durability point.
func (ts *timedSource) windows() []time.Duration {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.Spool.opts.Mode != Outage {
		return nil
	}
	slices.Sort(ts.acked)
	return ts.acked
}

func pct(sorted []time.Duration, p int) string {
	i := min(len(sorted)*p/100, len(sorted)-1)
	return sorted[i].Round(time.Millisecond).String()
}

type procIO struct{ writeBytes, wchar int64 }

func readProcIO(t *testing.T) procIO {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	var p procIO
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "write_bytes":
			p.writeBytes = n
		case "wchar":
			p.wchar = n
		}
	}
	return p
}
