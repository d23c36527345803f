// Package gateway wires edgegw together and owns its lifecycle: drivers feed
// readings into the pipeline goroutine, which shows them to the rules and
// appends them (and the alert transitions they cause) to the spool; the
// uplink drains the spool to Kafka; the HTTP server shows the state.
//
// Shutdown is one cancelled context, carried out in the order that loses
// nothing: drivers stop taking input, the pipeline drains into the spool,
// the spool commits (which acknowledges MQTT messages), the uplink gets a
// bounded time to flush, then the HTTP server stops.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/buffer"
	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/gpio"
	"github.com/edgegw/edgegw/gateway/alertmqtt"
	"github.com/edgegw/edgegw/gateway/annunciator"
	"github.com/edgegw/edgegw/gateway/clocksync"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/edgegw/edgegw/rules"
	"github.com/edgegw/edgegw/uplink"
)

// Options are the gateway's settings that do not come from the config file.
type Options struct {
	Clock        clockwork.Clock // default: the real clock
	Logger       *slog.Logger    // default: slog.Default()
	Version      string
	FlushTimeout time.Duration // how long the uplink may flush on stop; default 5s
	TickInterval time.Duration // rules evaluated with no new readings; default 1s
	// InputQueue is how many readings may wait for the pipeline goroutine
	// before drivers block; default 4096.
	InputQueue int
	// ClockSync tells whether the system clock is synchronised; default
	// clocksync.Check (the kernel's NTP state).
	ClockSync func() clocksync.State
	// ConfigPath, if set, is watched: a change of the file reloads the
	// sensors, rules and machines, as SIGHUP does (see Reload).
	ConfigPath string
}

// Gateway is one running edgegw.
type Gateway struct {
	cfg     *config.Config
	opts    Options
	log     *slog.Logger
	clock   clockwork.Clock
	metrics *metrics.Set

	spool  *buffer.Spool
	uplink *uplink.Uplink
	alerts *alertmqtt.Publisher // nil without alerts.mqtt_topic
	http   *httpapi.Server

	ackToken string                   // alerts.ack_token_file's token; "" disables acknowledging
	ann      *annunciator.Annunciator // nil without alerts.annunciator
	light    *gpio.Output             // the annunciator's output

	// The parts a reload replaces. The pipeline goroutine and the HTTP
	// handlers read them through the atomic pointers; a reload swaps them
	// (see reload.go).
	engine   atomic.Pointer[rules.Engine]
	sensors  atomic.Pointer[sensorTable]
	drivers  []namedDriver  // built for the first generation; Run starts them
	live     *config.Config // the config the running drivers and rules came from; under reloadMu
	started  time.Time      // when the gateway started: age() of a sensor never seen counts from it
	swap     chan swapRequest
	gen      *generation // the running drivers; under reloadMu
	reloadMu sync.Mutex
	stopping bool // under reloadMu: no reload once the stop began

	own ownAlerts // the gateway's own alerts (own.go)
	// clockUnsynced: readings are marked (clock.go); written on each tick.
	clockUnsynced atomic.Bool
	clockWatch    clockWatch // pipeline goroutine only
	// beat is when the pipeline goroutine last went round its loop on a
	// tick (clock's Unix nanoseconds), read by the watchdog.
	beat         atomic.Int64
	notifyFailed atomic.Bool // an sd_notify failed (logged once)
	in           chan item
	batchFree    chan []reading.Reading // batch buffers not in g.in (sink.EmitBatch)
	ready        atomic.Bool

	fail      func(part string, err error) // set by Run: logs a part that stopped with an error
	statePath string                       // the rules' state, next to the spool
	savedAt   time.Time                    // when it was last written; pipeline goroutine only
}

type namedDriver struct {
	name string
	d    drivers.Driver
}

// item is one reading on its way from a driver to the pipeline goroutine,
// or a batch of them (sink.EmitBatch).
type item struct {
	r     reading.Reading
	ack   func()
	mark  *buffer.Mark      // the redelivery mark its commit records (drivers.Marker)
	batch []reading.Reading // if not nil, the readings, r unused; from g.batchFree
}

// Batches (sink.EmitBatch) go through g.in like single readings, in
// buffers from g.batchFree: at most batchBuffers of them are taken at a
// time, so that memory stays bounded as with InputQueue single readings.
const (
	batchBuffers = 16
	batchMax     = 256 // readings a buffer holds; a longer batch takes several
)

// New builds a gateway from a checked config: it opens the spool and binds
// the HTTP port, so that a file it cannot write or a port already taken
// fails here, before anything runs.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Clock == nil {
		opts.Clock = clockwork.NewRealClock()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 5 * time.Second
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = time.Second
	}
	if opts.InputQueue <= 0 {
		opts.InputQueue = 4096
	}
	if opts.ClockSync == nil {
		opts.ClockSync = clocksync.Check
	}
	g := &Gateway{cfg: cfg, opts: opts, log: opts.Logger, clock: opts.Clock, metrics: metrics.New()}
	g.in = make(chan item, opts.InputQueue)
	g.batchFree = make(chan []reading.Reading, batchBuffers)
	for range batchBuffers {
		g.batchFree <- make([]reading.Reading, 0, batchMax)
	}
	g.swap = make(chan swapRequest)
	g.started = g.clock.Now()
	g.clockUnsynced.Store(opts.ClockSync() == clocksync.Unsynced)
	g.beat.Store(g.started.UnixNano())

	ok := false
	defer func() {
		if !ok {
			g.closeAll()
		}
	}()
	if err := g.openSpool(); err != nil {
		return nil, err
	}
	eng, err := rules.New(cfg, g.metrics, g.started)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	g.engine.Store(eng)
	g.sensors.Store(newSensorTable(cfg.Sensors, eng.SensorMachines(), g.metrics))
	g.statePath = filepath.Join(filepath.Dir(cfg.Buffer.Path), "rules-state.json")
	g.savedAt = g.clock.Now()
	if b, err := os.ReadFile(g.statePath); err == nil {
		if err := eng.Restore(b, g.clock.Now()); err != nil {
			g.log.Warn("rules state not restored; alerts and machines start afresh", "path", g.statePath, "err", err)
		}
	}
	if g.uplink, err = newUplink(cfg, g.spool, g.clock, g.log, g.metrics); err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	g.live = cfg
	if g.drivers, err = g.buildDrivers(cfg); err != nil {
		return nil, err
	}
	if cfg.Alerts.MQTTTopic != "" {
		g.alerts, err = alertmqtt.New(cfg.MQTT, cfg.Gateway.ID, cfg.Alerts.MQTTTopic, g.log, g.metrics)
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
	}
	if err := g.openAlertSinks(); err != nil {
		return nil, err
	}
	g.metrics.Register(g.probes())
	if g.http, err = httpapi.Listen(g.httpOptions()); err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", cfg.HTTP.Listen, err)
	}
	if cfg.HTTP.Pprof {
		// Sample one contended lock in ten for /debug/pprof/mutex: cheap,
		// and what shows contention between ingest and drain.
		runtime.SetMutexProfileFraction(10)
		g.log.Warn("http.pprof is on: Go profiles are served at /debug/pprof/ to loopback clients and to the acknowledgement token", "listen", g.http.Addr())
	}
	ok = true
	g.ready.Store(true)
	return g, nil
}

func (g *Gateway) openSpool() error {
	b := g.cfg.Buffer
	if err := os.MkdirAll(filepath.Dir(b.Path), 0o750); err != nil {
		return fmt.Errorf("buffer.path: %w", err)
	}
	when := buffer.DropOldest
	if b.WhenFull == config.RejectNew {
		when = buffer.RejectNew
	}
	mode := buffer.Durable
	if b.Mode == config.ModeOutage {
		mode = buffer.Outage
	}
	s, err := buffer.Open(buffer.Options{
		Path: b.Path, MaxBytes: int64(b.MaxBytes), WhenFull: when,
		CommitInterval: b.CommitInterval.D(), Clock: g.clock, Logger: g.log, Metrics: g.metrics,
		Mode: mode, OutageAfter: b.OutageAfter.D(),
	})
	if err != nil {
		return fmt.Errorf("buffer %s: %w", b.Path, err)
	}
	g.spool = s
	return nil
}

// buildDrivers makes one driver per driver kind the config names, in the
// order the kinds first appear.
func (g *Gateway) buildDrivers(cfg *config.Config) ([]namedDriver, error) {
	byDriver := map[string][]config.Sensor{}
	var kinds []string
	for _, s := range cfg.Sensors {
		if _, seen := byDriver[s.Driver]; !seen {
			kinds = append(kinds, s.Driver)
		}
		byDriver[s.Driver] = append(byDriver[s.Driver], s)
	}
	var out []namedDriver
	for _, kind := range kinds {
		f, ok := drivers.Lookup(kind)
		if !ok {
			return nil, fmt.Errorf("driver %q is not built into this binary", kind)
		}
		env := drivers.Env{Gateway: cfg.Gateway, MQTT: cfg.MQTT, StateDir: filepath.Dir(cfg.Buffer.Path), Clock: g.clock,
			Logger: g.log.With("driver", kind), Metrics: g.metrics}
		d, err := f.New(env, byDriver[kind])
		if err != nil {
			return nil, fmt.Errorf("driver %s: %w", kind, err)
		}
		out = append(out, namedDriver{kind, d})
	}
	return out, nil
}

// Addr is the HTTP server's bound address.
func (g *Gateway) Addr() string { return g.http.Addr() }

// Metrics gives tests and the CLI the gateway's metric handles.
func (g *Gateway) Metrics() *metrics.Set { return g.metrics }

// Run runs the gateway until ctx is done, then stops it in order (see the
// package comment) and returns nil after a clean stop.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.closeAll()
	bg := context.Background()
	httpCtx, stopHTTP := context.WithCancel(bg)
	upCtx, stopUplink := context.WithCancel(bg)
	spoolCtx, stopSpool := context.WithCancel(bg)
	defer stopHTTP()
	defer stopUplink()
	defer stopSpool()

	var errMu sync.Mutex
	var firstErr error
	fail := func(part string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		g.log.Error("stopped with an error", "part", part, "err", err)
		errMu.Lock()
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", part, err)
		}
		errMu.Unlock()
	}
	var httpWG, upWG, spoolWG, pipeWG, watchWG sync.WaitGroup
	g.fail = fail
	httpWG.Go(func() { fail("http", g.http.Run(httpCtx)) })
	spoolWG.Go(func() { fail("spool", g.spool.Run(spoolCtx)) })
	upWG.Go(func() { fail("uplink", g.uplink.Run(upCtx)) })
	if g.alerts != nil {
		upWG.Go(func() { fail("alerts", g.alerts.Run(upCtx)) })
	}
	if moved := g.spool.Recovered(); moved != "" {
		g.raise(alertSpoolCorrupt, "critical", "The buffer file was corrupt and was moved aside to "+moved+"; a fresh one was started")
	}
	g.updateAnnunciator() // restored firing alerts light it at once
	pipeWG.Go(g.pipeline)
	g.reloadMu.Lock()
	g.gen = g.startDrivers(g.drivers)
	g.reloadMu.Unlock()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if g.opts.ConfigPath != "" {
		watchWG.Go(func() { g.watchConfig(watchCtx) })
	}
	g.log.Info("gateway running", "gateway", g.cfg.Gateway.ID, "http", g.http.Addr(),
		"sensors", len(g.cfg.Sensors), "rules", len(g.cfg.Rules), "spool", g.cfg.Buffer.Path)
	if wd, err := daemon.SdWatchdogEnabled(false); err != nil {
		g.log.Warn("systemd watchdog settings not understood; not pinging", "err", err)
	} else if wd > 0 {
		tick := g.clock.NewTicker(wd / 2)
		watchWG.Go(func() { g.watchdog(watchCtx, wd, tick) })
	}
	g.notify(daemon.SdNotifyReady + "\nSTATUS=" + g.statusLine())

	// A driver that stops on its own (an error retrying cannot fix) does
	// not stop the gateway: the others go on, and the error is logged.
	<-ctx.Done()
	g.log.Info("stopping")
	g.notify(daemon.SdNotifyStopping)
	g.ready.Store(false)
	stopWatch()
	watchWG.Wait()
	g.reloadMu.Lock()
	g.stopping = true
	g.gen.stop()
	g.reloadMu.Unlock()
	close(g.in) // no driver sends any more
	pipeWG.Wait()
	g.saveState(g.clock.Now())
	stopSpool() // the spool commits what the pipeline appended, then returns
	spoolWG.Wait()
	g.flushUplink()
	stopUplink()
	upWG.Wait()
	stopHTTP()
	httpWG.Wait()
	st := g.spool.Stats()
	g.log.Info("stopped", "spool_records", st.Records, "next_seq", st.NextSeq)
	return firstErr
}

// flushUplink gives the uplink up to FlushTimeout to empty the spool. It
// waits on real time: the bound is for the operator waiting on systemctl
// stop, not a duration of the plant's.
func (g *Gateway) flushUplink() {
	deadline := time.Now().Add(g.opts.FlushTimeout)
	for g.spool.Stats().Records > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := g.spool.Stats().Records; n > 0 {
		g.log.Warn("uplink did not flush in time; records stay in the spool for the next start",
			"records", n, "timeout", g.opts.FlushTimeout)
	}
}

func (g *Gateway) closeAll() {
	if g.light != nil {
		_ = g.light.Close()
		g.light = nil
	}
	if g.spool != nil {
		if err := g.spool.Close(); err != nil {
			g.log.Error("closing the spool", "err", err)
		}
		g.spool = nil
	}
}

// sink is the drivers' view of the gateway.
type sink struct{ g *Gateway }

func (s sink) Emit(ctx context.Context, r reading.Reading, ack func()) error {
	return s.send(ctx, item{r: r, ack: ack})
}

func (s sink) send(ctx context.Context, it item) error {
	select {
	case s.g.in <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EmitBatch is the sink's drivers.BatchSink: rs go to the pipeline in
// batches of up to batchMax, each one send on g.in.
func (s sink) EmitBatch(ctx context.Context, rs []reading.Reading) error {
	for len(rs) > 0 {
		var buf []reading.Reading
		select {
		case buf = <-s.g.batchFree:
		case <-ctx.Done():
			return ctx.Err()
		}
		n := min(len(rs), batchMax)
		buf = append(buf[:0], rs[:n]...)
		if err := s.send(ctx, item{batch: buf}); err != nil {
			s.g.batchFree <- buf // the one taken: there is room
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// The sink is a drivers.Marker: MQTT redeliveries of messages the spool
// committed before a crash are not stored twice (see buffer/marks.go).

func (s sink) EmitMarked(ctx context.Context, r reading.Reading, ack func(), m drivers.Mark) error {
	return s.send(ctx, item{r: r, ack: ack, mark: &buffer.Mark{ID: m.ID, Hash: m.Hash}})
}

func (s sink) Redelivered(m drivers.Mark) bool {
	return s.g.spool.Redelivered(buffer.Mark{ID: m.ID, Hash: m.Hash})
}

func (s sink) Forget(id uint16) { s.g.spool.Forget(id) }

func (s sink) Reused(id uint16) { s.g.spool.Reused(id) }
