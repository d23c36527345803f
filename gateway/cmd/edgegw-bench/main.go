// Command edgegw-bench measures the built gateway end to end: MQTT → rules
// → spool → Kafka, with the gateway in its own process (so that its CPU time
// and resident memory are its own), an MQTT broker (mochi-mqtt in this
// process, or Debian's mosquitto with its stock limits) and Kafka (franz-go's
// kfake in this process) on loopback.
//
// It measures the broker's own ceiling (the same paho publisher at the same
// rising rates to one paho subscriber that only counts) and publishes to
// the gateway at those rates until a step does not keep up, the two runs'
// steps alternating so that both meet the host in the same state. Both
// give a step that did not keep up -again more tries (default one) before
// they stop: on a shared host one slow moment would otherwise end either
// run early. For each step it reports the readings/s that
// reached Kafka, what was lost or duplicated, p50/p99/max from the
// publisher's call to the record's arrival in Kafka, p50/p99 from
// publishing a value that crosses a rule's threshold to the alert's
// arrival on MQTT, the CPU seconds per million readings of the gateway,
// of this process and of mosquitto, and the gateway's peak resident memory.
//
// With -broker-cpu N, mosquitto has CPU N to itself and everything else
// shares the others, in both runs: on a 2-core host the broker's single
// thread then no longer competes with the clients for a core, as on a
// 4-core board where it has one to spare.
//
//	go build -o bin/edgegw ./gateway/cmd/edgegw
//	go run ./gateway/cmd/edgegw-bench -broker mosquitto -qos 1 -rates 5000,10000,20000,40000
//
// The exit status is 1 when -require-rate is set and a step at or below it
// lost readings or did not keep up: `-rates 10000 -require-rate 10000` is
// the check that a steady 10,000 readings/s at QoS 1 loses nothing.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kfake"
)

type options struct {
	gateway     string
	broker      string
	qos         int
	rates       []int
	step        time.Duration
	sensors     int
	rules       int
	ceiling     bool
	ceilingOnly bool
	requireRate int
	again       int
	keep        bool
	profile     string
	gwEnv       []string
	pinBroker   bool // -broker-cpu was given: brokerCPU is the broker's
	brokerCPU   int
}

func main() {
	var o options
	var rates, env string
	flag.StringVar(&o.gateway, "gateway", "bin/edgegw", "the gateway binary")
	flag.StringVar(&o.broker, "broker", "mochi", "mochi (embedded) or mosquitto (Debian's, stock limits)")
	flag.IntVar(&o.qos, "qos", 1, "MQTT QoS of the readings and of the gateway's subscription")
	flag.StringVar(&rates, "rates", "5000,10000,12000,14000,16000,18000,20000,23000,26000,30000,34000,38000,43000,48000,54000,60000,67000,75000,84000,94000", "steady rates to try, readings/s, rising")
	flag.DurationVar(&o.step, "step", 10*time.Second, "how long each rate is held")
	flag.IntVar(&o.sensors, "sensors", 1000, "MQTT sensors, one topic each")
	flag.IntVar(&o.rules, "rules", 200, "rules over those sensors (one of them the alert probe)")
	flag.BoolVar(&o.ceiling, "ceiling", true, "measure the broker's own ceiling first, at the same rates")
	flag.BoolVar(&o.ceilingOnly, "ceiling-only", false, "measure the broker's ceiling and stop")
	flag.IntVar(&o.again, "again", 1, "run a step that did not keep up this many more times before the run stops, in the ceiling and end to end alike (a noisy host)")
	flag.IntVar(&o.requireRate, "require-rate", 0, "exit 1 if a step at or below this rate loses readings or does not keep up")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, gateway log)")
	flag.StringVar(&o.profile, "profile", "", "turn http.pprof on and write the gateway's CPU profile (the middle half of each step), allocation and mutex profiles to this directory")
	flag.IntVar(&o.brokerCPU, "broker-cpu", -1, "mosquitto only: give the broker this CPU to itself, and the harness and the gateway the others, in the ceiling's steps and the gateway's alike (-1: let the kernel schedule all of them)")
	flag.StringVar(&env, "gateway-env", "", "extra environment for the gateway, comma separated (GOGC=200,...)")
	flag.Parse()
	for _, f := range strings.Split(rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r <= 0 {
			fatalf("-rates: %q is not a rate", f)
		}
		o.rates = append(o.rates, r)
	}
	if env != "" {
		o.gwEnv = strings.Split(env, ",")
	}
	o.pinBroker = o.brokerCPU >= 0
	if o.qos != 0 && o.qos != 1 {
		fatalf("-qos: 0 or 1")
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			fatalf("-profile: %v", err)
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "edgegw-bench:", err)
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "edgegw-bench: "+format+"\n", args...)
	os.Exit(2)
}

func run(o options) (err error) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	dir, err := os.MkdirTemp("", "edgegw-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "work directory:", dir)
	}
	defer func() {
		// A failed run keeps its directory: the error names the gateway's
		// log in it.
		if !o.keep && err == nil {
			os.RemoveAll(dir)
		}
	}()
	var harnessCPUs []int
	if o.pinBroker {
		if o.broker != "mosquitto" {
			return fmt.Errorf("-broker-cpu: only with -broker mosquitto (mochi runs in this process)")
		}
		if harnessCPUs, err = pinHarness(o.brokerCPU); err != nil {
			return err
		}
	}
	brokerURL, brokerPID, stopBroker, err := startBroker(o.broker, dir)
	if err != nil {
		return err
	}
	defer stopBroker()
	if o.pinBroker {
		if err := pinBrokerPID(brokerPID, o.brokerCPU); err != nil {
			return err
		}
	}

	fmt.Printf("edgegw-bench: broker %s, QoS %d, %d sensors, %d rules, steps of %v; %s\n",
		o.broker, o.qos, o.sensors, o.rules, o.step, time.Now().UTC().Format(time.RFC3339))
	if o.pinBroker {
		fmt.Printf("mosquitto on CPU %d alone; this harness and the gateway on CPUs %v\n", o.brokerCPU, harnessCPUs)
	}
	fmt.Println()
	// The ceiling's steps and the gateway's alternate, at the same rates,
	// so that both meet the host in the same state: these machines are
	// shared, and their speed drifts over minutes.
	var (
		ceil          *ceilingRun
		cr, er        rising
		gw            *gatewayProc
		b             *bench
		failed        bool
		best, ceiling float64
	)
	if o.ceiling || o.ceilingOnly {
		if ceil, err = newCeiling(o, brokerURL, brokerPID); err != nil {
			return err
		}
		defer ceil.close()
	} else {
		cr.done = true
	}
	if o.ceilingOnly {
		er.done = true
	} else {
		kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "plant.readings", "plant.alerts", "plant.events"))
		if err != nil {
			return err
		}
		defer kafka.Close()
		if gw, err = startGateway(o, dir, brokerURL, kafka.ListenAddrs()[0]); err != nil {
			return err
		}
		defer gw.stop()
		if b, err = newBench(o, brokerURL, brokerPID, kafka.ListenAddrs()[0], gw); err != nil {
			return err
		}
		defer b.close()
		if err := b.warmUp(); err != nil {
			return fmt.Errorf("warm-up: %w (gateway log: %s)", err, gw.logPath)
		}
	}
	if ceil != nil {
		fmt.Println("broker ceiling (the same publisher, paced, to a subscriber that only counts), its steps between the gateway's:")
	}
	type row struct {
		rate int
		s    stepResult
	}
	var results []row
	for !cr.done || !er.done {
		if rate, ok := cr.next(o); ok {
			cr.result(o, ceil.step(rate))
		}
		if rate, ok := er.next(o); ok {
			s := b.step(rate)
			results = append(results, row{rate, s})
			fmt.Printf("  gateway %d→%.0f, kept up: %s\n", rate, s.throughput, yes(s.keptUp))
			if s.keptUp && s.throughput > best {
				best = s.throughput
			}
			if o.requireRate > 0 && rate <= o.requireRate && (!s.keptUp || s.lost > 0) {
				failed = true
			}
			er.result(o, s.keptUp)
		}
	}
	if ceil != nil {
		ceiling = ceil.best
		fmt.Printf("broker ceiling: %.0f msgs/s\n\n", ceiling)
	}
	if o.ceilingOnly {
		return nil
	}
	fmt.Println("| offered/s | reached Kafka/s | vs ceiling | lost | dup | reading→Kafka p50 / p99 / max | reading→alert p50 / p99 (n) | gateway CPU s per 1M | bench CPU s per 1M | mosquitto CPU s per 1M | peak RSS | spool commits (mean) | kept up |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		s := r.s
		vs := "—"
		if ceiling > 0 {
			vs = fmt.Sprintf("%.0f %%", 100*s.throughput/ceiling)
		}
		fmt.Printf("| %d | %.0f | %s | %d | %d | %s / %s / %s | %s / %s (%d) | %.1f | %.1f | %s | %.1f MB | %.0f (%s) | %s |\n",
			r.rate, s.throughput, vs, s.lost, s.dups,
			ms(s.lat.q(0.5)), ms(s.lat.q(0.99)), ms(s.lat.q(1)),
			ms(s.alertLat.q(0.5)), ms(s.alertLat.q(0.99)), len(s.alertLat),
			s.cpuPerMillion, s.benchCPUPerMillion, perMillion(s.brokerCPUPerMillion), float64(s.peakRSS)/(1<<20), s.commits, ms(s.commitMean), yes(s.keptUp))
	}
	if gw.exited() {
		return fmt.Errorf("the gateway exited during the run (log: %s)", gw.logPath)
	}
	hwm, _ := procStatus(gw.cmd.Process.Pid, "VmHWM:")
	anon, _ := procStatus(gw.cmd.Process.Pid, "RssAnon:")
	file, _ := procStatus(gw.cmd.Process.Pid, "RssFile:")
	fmt.Printf("\nsustained: %.0f readings/s", best)
	if ceiling > 0 {
		fmt.Printf(" = %.0f %% of the broker's ceiling", 100*best/ceiling)
	}
	fmt.Printf("; gateway peak RSS over the run (VmHWM) %.1f MB, at the end %.1f MB anonymous + %.1f MB files (the spool's map, the binary)",
		float64(hwm)/(1<<20), float64(anon)/(1<<20), float64(file)/(1<<20))
	if brokerPID > 0 {
		fmt.Printf("; mosquitto pid %d", brokerPID)
	}
	fmt.Println()
	if failed {
		return fmt.Errorf("a step at or below %d readings/s lost readings or did not keep up", o.requireRate)
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func ms(d time.Duration) string {
	if d < 0 {
		return "—"
	}
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// durations are latency samples.
type durations []time.Duration

// q is the q-quantile (nearest rank), -1 without samples.
func (d durations) q(q float64) time.Duration {
	if len(d) == 0 {
		return -1
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// startBroker starts the MQTT broker and returns its URL and, for
// mosquitto, its pid.
func startBroker(kind, dir string) (url string, pid int, stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return "", 0, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	switch kind {
	case "mochi":
		srv := mqtt.New(&mqtt.Options{InlineClient: false, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
			return "", 0, nil, err
		}
		if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "bench", Address: addr})); err != nil {
			return "", 0, nil, err
		}
		if err := srv.Serve(); err != nil {
			return "", 0, nil, err
		}
		// mochi's Close can deadlock (its nested read lock); the process
		// ends right after, so it is not called.
		return "tcp://" + addr, 0, func() {}, nil
	case "mosquitto":
		conf := filepath.Join(dir, "mosquitto.conf")
		// Stock limits: max_inflight_messages 20, max_queued_messages 1000.
		body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file %s\n", port, filepath.Join(dir, "mosquitto.log"))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return "", 0, nil, err
		}
		bin, err := exec.LookPath("mosquitto")
		if err != nil {
			for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
				if _, serr := os.Stat(p); serr == nil {
					bin, err = p, nil
				}
			}
			if err != nil {
				return "", 0, nil, fmt.Errorf("mosquitto not found (Debian package mosquitto)")
			}
		}
		cmd := exec.Command(bin, "-c", conf)
		if err := cmd.Start(); err != nil {
			return "", 0, nil, err
		}
		if err := waitPort(addr, 5*time.Second); err != nil {
			_ = cmd.Process.Kill()
			return "", 0, nil, fmt.Errorf("mosquitto: %w", err)
		}
		return "tcp://" + addr, cmd.Process.Pid, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
	}
	return "", 0, nil, fmt.Errorf("-broker: mochi or mosquitto, not %q", kind)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitPort(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v", addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connect is a paho client. Its message handlers run one after the other
// on paho's router goroutine (OrderMatters), as the gateway's do: with
// OrderMatters off paho starts a goroutine per message, which made the
// reference subscriber slower than the gateway.
func connect(url, id string, clean bool) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).
		SetCleanSession(clean).SetOrderMatters(true).SetAutoReconnect(false))
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt %s as %s: %v", url, id, tok.Error())
	}
	return c, nil
}

// ceilingRun is the broker's own ceiling, the reference the gateway's
// figures are compared with: the same paho publisher, paced at the same
// rising rates for the same time, to one paho subscriber that only counts,
// with the same test of keeping up; the highest rate it kept up with.
//
// Each step also shows the CPU seconds per million messages of this
// process (publisher and subscriber) and of mosquitto, the two cores'
// budget the gateway's run shares with Kafka and the gateway.
type ceilingRun struct {
	o         options
	brokerPID int
	base      time.Time
	sub, pub  paho.Client
	topics    []string
	sent      int64
	best      float64
	// arrivals of the step's messages: count, first and last (ns since base)
	got, first, last atomic.Int64
}

func newCeiling(o options, url string, brokerPID int) (*ceilingRun, error) {
	c := &ceilingRun{o: o, brokerPID: brokerPID, base: time.Now(), topics: make([]string, o.sensors)}
	var err error
	if c.sub, err = connect(url, "bench-ceiling-sub", true); err != nil {
		return nil, err
	}
	if tok := c.sub.Subscribe("ceiling/#", byte(o.qos), func(paho.Client, paho.Message) {
		now := int64(time.Since(c.base))
		c.first.CompareAndSwap(0, now)
		c.last.Store(now)
		c.got.Add(1)
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		c.sub.Disconnect(100)
		return nil, fmt.Errorf("subscribe: %v", tok.Error())
	}
	if c.pub, err = connect(url, "bench-ceiling-pub", true); err != nil {
		c.sub.Disconnect(100)
		return nil, err
	}
	for i := range c.topics {
		c.topics[i] = "ceiling/" + sensorID(i)
	}
	return c, nil
}

func (c *ceilingRun) close() {
	c.pub.Disconnect(100)
	c.sub.Disconnect(100)
}

// step holds rate for a step, prints what arrived and reports whether it
// kept up.
func (c *ceilingRun) step(rate int) bool {
	qos := byte(c.o.qos)
	c.got.Store(0)
	c.first.Store(0)
	c.last.Store(0)
	start := c.sent
	self0, _ := cpuSeconds(os.Getpid())
	broker0 := brokerCPU(c.brokerPID)
	var buf [20]byte
	pace(rate, c.o.step, func(due int64) {
		for ; c.sent < due; c.sent++ {
			c.pub.Publish(c.topics[c.sent%int64(len(c.topics))], qos, false, strconv.AppendInt(buf[:0], c.sent, 10))
		}
	}, c.sent)
	pubEnd := int64(time.Since(c.base))
	n := c.sent - start
	prev, change := c.got.Load(), time.Now()
	for c.got.Load() < n && time.Since(change) < 3*time.Second {
		time.Sleep(20 * time.Millisecond)
		if g := c.got.Load(); g != prev {
			prev, change = g, time.Now()
		}
	}
	g := c.got.Load()
	rateGot := 0.0
	if w := time.Duration(c.last.Load() - c.first.Load()); w > 0 {
		rateGot = float64(g-1) / w.Seconds()
	}
	kept := g >= n && time.Duration(c.last.Load()-pubEnd) < time.Second && rateGot >= 0.95*float64(rate)
	self1, _ := cpuSeconds(os.Getpid())
	fmt.Printf("  ceiling %d→%.0f", rate, rateGot)
	if g > 0 {
		fmt.Printf(" (bench %.1f s", (self1-self0)/float64(g)*1e6)
		if c.brokerPID > 0 {
			fmt.Printf(", mosquitto %.1f s", (brokerCPU(c.brokerPID)-broker0)/float64(g)*1e6)
		}
		fmt.Print(" per 1M)")
	}
	if !kept {
		fmt.Printf(" (lost %d, last %.0f ms after the publisher)", max(0, n-g), float64(c.last.Load()-pubEnd)/1e6)
	} else {
		c.best = max(c.best, rateGot)
	}
	fmt.Println()
	return kept
}

// rising walks o.rates: a step that did not keep up is run again up to
// o.again times, and the walk ends at a rate that failed them all.
type rising struct {
	i, tries int
	done     bool
}

// next is the rate of the next step; false once the walk has ended.
func (r *rising) next(o options) (int, bool) {
	if r.done || r.i >= len(o.rates) {
		r.done = true
		return 0, false
	}
	return o.rates[r.i], true
}

// result records whether the step at next's rate kept up.
func (r *rising) result(o options, kept bool) {
	switch {
	case kept:
		r.i, r.tries = r.i+1, 0
	case r.tries < o.again:
		r.tries++
	default:
		r.done = true
	}
}

// brokerCPU is mosquitto's CPU seconds so far; 0 when the broker runs in
// this process (pid 0) or cannot be read.
func brokerCPU(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	s, _ := cpuSeconds(pid)
	return s
}

// perMillion formats CPU seconds per million, "—" when not measured.
func perMillion(v float64) string {
	if v <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}
