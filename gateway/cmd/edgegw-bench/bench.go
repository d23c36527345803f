package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"
)

// bench publishes numbered readings and watches them arrive in Kafka.
// Reading n goes to sensor n mod sensors with the value n, so each record
// in Kafka names the reading it carries; pubAt[n] and arrAt[n] are the
// publisher's call and the record's arrival, in nanoseconds since base.
type bench struct {
	o         options
	gw        *gatewayProc
	brokerPID int // mosquitto's; 0 when the broker is mochi, in this process
	base      time.Time

	pub    paho.Client
	topics []string
	next   int64 // the next reading number (publisher goroutine only)

	pubAt []atomic.Int64
	arrAt []atomic.Int64
	dups  atomic.Int64
	late  atomic.Int64 // records whose number was never published (should stay 0)

	consumer *kgo.Client
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	alertSub paho.Client
	amu      sync.Mutex
	probeAt  map[int64]time.Time // probe value → when it was published
	probeK   int64               // the probe goroutine's count
	alerts   []alertSample
}

type alertSample struct {
	published time.Time
	latency   time.Duration
}

func newBench(o options, brokerURL string, brokerPID int, kafkaAddr string, gw *gatewayProc) (*bench, error) {
	total := int64(o.sensors) + 1000
	for _, r := range o.rates {
		total += int64(float64(r)*o.step.Seconds()*1.02) + 1000
	}
	b := &bench{o: o, gw: gw, brokerPID: brokerPID, base: time.Now(), pubAt: make([]atomic.Int64, total), arrAt: make([]atomic.Int64, total),
		probeAt: map[int64]time.Time{}}
	for i := range o.sensors {
		b.topics = append(b.topics, "bench/"+sensorID(i))
	}
	var err error
	if b.pub, err = connect(brokerURL, "bench-pub", true); err != nil {
		return nil, err
	}
	if b.alertSub, err = connect(brokerURL, "bench-alerts", true); err != nil {
		return nil, err
	}
	if tok := b.alertSub.Subscribe("bench-alerts/#", 1, b.onAlert); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribe to the alerts: %v", tok.Error())
	}
	b.consumer, err = kgo.NewClient(kgo.SeedBrokers(kafkaAddr), kgo.ConsumeTopics("plant.readings"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Add(1)
	go b.consume(ctx)
	return b, nil
}

func (b *bench) close() {
	b.cancel()
	b.wg.Wait()
	b.consumer.Close()
	b.pub.Disconnect(100)
	b.alertSub.Disconnect(100)
}

// consume records each reading's arrival in Kafka.
func (b *bench) consume(ctx context.Context) {
	defer b.wg.Done()
	for ctx.Err() == nil {
		fs := b.consumer.PollFetches(ctx)
		now := int64(time.Since(b.base))
		fs.EachRecord(func(r *kgo.Record) {
			n, ok := readingNumber(r.Value)
			if !ok {
				return
			}
			if n < 0 || n >= int64(len(b.arrAt)) || b.pubAt[n].Load() == 0 {
				b.late.Add(1)
				return
			}
			if !b.arrAt[n].CompareAndSwap(0, now) {
				b.dups.Add(1)
			}
		})
	}
}

// readingNumber is a reading record's value, unless it is the probe's.
func readingNumber(v []byte) (int64, bool) {
	if bytes.Contains(v, []byte(`"sensor":"probe"`)) {
		return 0, false
	}
	i := bytes.Index(v, []byte(`"value":`))
	if i < 0 {
		return 0, false
	}
	rest := v[i+len(`"value":`):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil {
		return 0, false
	}
	return int64(f), true
}

// onAlert takes the probe alert's transitions: firing carries the probe's
// positive value that raised it, resolved the negative one that cleared it.
func (b *bench) onAlert(_ paho.Client, m paho.Message) {
	now := time.Now()
	p := m.Payload()
	i := bytes.Index(p, []byte(`"value":`))
	if i < 0 {
		return
	}
	rest := p[i+len(`"value":`):]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return
	}
	v, err := strconv.ParseFloat(string(rest[:j]), 64)
	if err != nil {
		return
	}
	b.amu.Lock()
	defer b.amu.Unlock()
	if at, ok := b.probeAt[int64(v)]; ok {
		delete(b.probeAt, int64(v))
		b.alerts = append(b.alerts, alertSample{published: at, latency: now.Sub(at)})
	}
}

// publish sends reading n.
func (b *bench) publish(n int64) {
	var buf [20]byte
	b.pubAt[n].Store(max(1, int64(time.Since(b.base))))
	b.pub.Publish(b.topics[n%int64(len(b.topics))], byte(b.o.qos), false, strconv.AppendInt(buf[:0], n, 10))
}

// paced publishes at rate readings/s for d, from the publisher's clock.
func (b *bench) paced(rate int, d time.Duration) {
	limit := int64(len(b.pubAt))
	pace(rate, d, func(due int64) {
		for ; b.next < due && b.next < limit; b.next++ {
			b.publish(b.next)
		}
	}, b.next)
}

// pace calls publish(due) every millisecond for d, due being how many
// messages (counting from first) should have gone by then at rate/s.
func pace(rate int, d time.Duration, publish func(due int64), first int64) {
	start := time.Now()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		el := time.Since(start)
		if el >= d {
			return
		}
		publish(first + int64(el.Seconds()*float64(rate)) + 1)
		<-t.C
	}
}

// probe publishes the alert probe's values 20 times a second until stop is
// closed: +k raises the alert, -k clears it, k counting up over the run.
func (b *bench) probe(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	high := false
	for {
		select {
		case <-stop:
			if high { // leave it cleared
				b.publishProbe(-b.probeK)
			}
			return
		case <-t.C:
		}
		if high {
			b.publishProbe(-b.probeK)
		} else {
			b.probeK++
			b.publishProbe(b.probeK)
		}
		high = !high
	}
}

func (b *bench) publishProbe(v int64) {
	b.amu.Lock()
	b.probeAt[v] = time.Now()
	b.amu.Unlock()
	b.pub.Publish("bench/probe", byte(b.o.qos), false, strconv.FormatInt(v, 10))
}

// warmUp gives every sensor a reading and waits for them in Kafka.
func (b *bench) warmUp() error {
	first := b.next
	b.paced(5000, time.Duration(float64(b.o.sensors)/5000*float64(time.Second))+100*time.Millisecond)
	st := b.settle(first, b.next, 30*time.Second)
	if st.lost > 0 {
		return fmt.Errorf("%d of %d warm-up readings did not reach Kafka", st.lost, b.next-first)
	}
	return nil
}

type stepResult struct {
	throughput    float64 // readings/s arriving in Kafka
	lost, dups    int64
	lat, alertLat durations
	cpuPerMillion float64
	// benchCPUPerMillion is this process's: the publisher, the alert
	// subscriber, kfake and the Kafka consumer (and mochi, when it is the
	// broker).
	benchCPUPerMillion float64
	// brokerCPUPerMillion is mosquitto's; 0 for mochi (in this process).
	brokerCPUPerMillion float64
	peakRSS             int64
	keptUp              bool
	lastAfterPub        time.Duration
	commits             float64       // spool commits in the step
	commitMean          time.Duration // their mean duration
}

// step holds rate for the step's duration, then waits for its readings.
func (b *bench) step(rate int) stepResult {
	pid := b.gw.cmd.Process.Pid
	cpu0, _ := cpuSeconds(pid)
	self0, _ := cpuSeconds(os.Getpid())
	broker0 := brokerCPU(b.brokerPID)
	commits0, commitSecs0 := b.gw.metric("edgegw_buffer_commit_seconds_count"), b.gw.metric("edgegw_buffer_commit_seconds_sum")
	dups0 := b.dups.Load()

	rssStop, rssDone := make(chan struct{}), make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := procStatus(pid, "VmRSS:"); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-rssStop:
				rssDone <- peak
				return
			case <-t.C:
			}
		}
	}()
	probeStop, probeDone := make(chan struct{}), make(chan struct{})
	go b.probe(probeStop, probeDone)

	profDone := make(chan struct{})
	go func() {
		defer close(profDone)
		if b.o.profile == "" {
			return
		}
		time.Sleep(b.o.step / 4)
		secs := max(1, int(b.o.step.Seconds()/2))
		base := filepath.Join(b.o.profile, fmt.Sprintf("%s-qos%d-%d", b.o.broker, b.o.qos, rate))
		// This process's own profile over the same window: what the
		// harness costs is what the broker and the gateway do not get.
		if f, err := os.Create(base + ".bench.cpu.pprof"); err != nil {
			fmt.Fprintln(os.Stderr, "edgegw-bench:", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "edgegw-bench: bench cpu profile:", err)
			f.Close()
		} else {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
		if err := b.gw.profile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), base+".cpu.pprof"); err != nil {
			fmt.Fprintln(os.Stderr, "edgegw-bench: cpu profile:", err)
		}
		for _, p := range []string{"allocs", "mutex"} {
			if err := b.gw.profile("/debug/pprof/"+p, base+"."+p+".pprof"); err != nil {
				fmt.Fprintln(os.Stderr, "edgegw-bench:", p, "profile:", err)
			}
		}
	}()
	first := b.next
	start := time.Now()
	b.paced(rate, b.o.step)
	<-profDone
	pubEnd := time.Now()
	close(probeStop)
	<-probeDone

	st := b.settle(first, b.next, 30*time.Second)
	close(rssStop)
	st.peakRSS = <-rssDone
	cpu1, _ := cpuSeconds(pid)
	self1, _ := cpuSeconds(os.Getpid())
	broker1 := brokerCPU(b.brokerPID)
	n := b.next - first
	got := n - st.lost
	st.dups = b.dups.Load() - dups0
	if got > 0 {
		st.cpuPerMillion = (cpu1 - cpu0) / float64(got) * 1e6
		st.benchCPUPerMillion = (self1 - self0) / float64(got) * 1e6
		st.brokerCPUPerMillion = (broker1 - broker0) / float64(got) * 1e6
		// The rate at which they arrived: both ends of the window are
		// shifted by the latency.
		if w := st.lastArrival.Sub(st.firstArrival); w > 0 {
			st.throughput = float64(got-1) / w.Seconds()
		}
	}
	st.lastAfterPub = st.lastArrival.Sub(pubEnd)
	if c := b.gw.metric("edgegw_buffer_commit_seconds_count") - commits0; c > 0 {
		st.commits = c
		st.commitMean = time.Duration((b.gw.metric("edgegw_buffer_commit_seconds_sum") - commitSecs0) / c * float64(time.Second))
	}
	// A second for the last alert to come in.
	time.Sleep(time.Second)
	b.amu.Lock()
	for _, a := range b.alerts {
		if !a.published.Before(start) && a.published.Before(pubEnd) {
			st.alertLat = append(st.alertLat, a.latency)
		}
	}
	b.alerts = b.alerts[:0]
	b.amu.Unlock()
	st.keptUp = st.lost == 0 && st.lastAfterPub < time.Second && st.throughput >= 0.95*float64(rate)
	return st.stepResult
}

type settled struct {
	stepResult
	firstArrival, lastArrival time.Time
}

// settle waits until readings [first, end) have all arrived, or none has
// arrived for three seconds, or timeout; it returns what was lost and the
// step's reading→Kafka latencies.
func (b *bench) settle(first, end int64, timeout time.Duration) settled {
	deadline := time.Now().Add(timeout)
	missing := func() int64 {
		var m int64
		for n := first; n < end; n++ {
			if b.arrAt[n].Load() == 0 {
				m++
			}
		}
		return m
	}
	last, lastChange := missing(), time.Now()
	for last > 0 && time.Since(lastChange) < 3*time.Second && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if m := missing(); m != last {
			last, lastChange = m, time.Now()
		}
	}
	var s settled
	s.lost = last
	var firstArr, lastArr int64 = 1 << 62, 0
	s.lat = make(durations, 0, end-first)
	for n := first; n < end; n++ {
		a := b.arrAt[n].Load()
		if a == 0 {
			continue
		}
		lastArr, firstArr = max(lastArr, a), min(firstArr, a)
		s.lat = append(s.lat, time.Duration(a-b.pubAt[n].Load()))
	}
	s.firstArrival, s.lastArrival = b.base.Add(time.Duration(firstArr)), b.base.Add(time.Duration(lastArr))
	return s
}
