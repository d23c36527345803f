package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/rules"
)

// generation is one set of running drivers. A reload stops the old
// generation and starts a new one; the spool, the uplink, the HTTP server
// and the MQTT alert publisher run on across reloads.
type generation struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startDrivers runs ds until the generation is stopped. g.reloadMu is held.
func (g *Gateway) startDrivers(ds []namedDriver) *generation {
	ctx, cancel := context.WithCancel(context.Background())
	gen := &generation{cancel: cancel}
	for _, nd := range ds {
		gen.wg.Go(func() { g.fail("driver "+nd.name, nd.d.Run(ctx, sink{g})) })
	}
	return gen
}

// stop stops the generation's drivers and waits for them. Readings they
// handed over are in g.in, which the pipeline keeps draining meanwhile (an
// MQTT driver waits for the acknowledgements of what it handed over).
func (gen *generation) stop() {
	gen.cancel()
	gen.wg.Wait()
}

// swapRequest hands the pipeline goroutine, which owns the rules engine, a
// new engine and sensor table.
type swapRequest struct {
	engine  *rules.Engine
	sensors *sensorTable
	done    chan error
}

// applySwap moves the alert and machine state of the running engine into the
// new one (an unchanged rule keeps its state; see rules.Restore) and makes
// the new one current. It runs on the pipeline goroutine.
func (g *Gateway) applySwap(req swapRequest) {
	now := g.clock.Now()
	old := g.engine.Load()
	for _, e := range old.TakeEvents() { // nothing produced may be left behind
		g.routeEventValue(e)
	}
	snap, err := old.Snapshot()
	if err == nil {
		// The firing gauge is rebuilt by Restore from what is still firing.
		g.metrics.AlertsFiring.Set(0)
		err = req.engine.Restore(snap, now)
	}
	g.engine.Store(req.engine)
	g.sensors.Store(req.sensors)
	req.done <- err
}

// Reload reads the config file again and, if it is valid, replaces the
// sensors, rules and machines without stopping the process: new drivers are
// built first (a port or pin that cannot be opened rejects the reload), the
// old drivers stop, the rules engine is swapped keeping the state of every
// unchanged rule and machine, and the new drivers start. An invalid file is
// rejected with its problems logged, and the running config stays. Changes
// to gateway, http, buffer, uplink and alerts take effect only at the next
// start, and are logged as such.
func (g *Gateway) Reload(path string) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	if g.stopping || g.gen == nil {
		return fmt.Errorf("reload: the gateway is not running")
	}
	cfg, err := Load(path)
	if err != nil {
		g.log.Error("config reload rejected; the running config stays", "config", path, "err", err)
		return err
	}
	for _, part := range restartOnly(g.cfg, cfg) {
		g.log.Warn("config change takes effect at the next start", "config", path, "section", part)
	}
	eng, err := rules.New(cfg, g.metrics, g.started)
	if err != nil {
		g.log.Error("config reload rejected; the running config stays", "config", path, "err", err)
		return err
	}
	// The old drivers stop before the new ones are built: the new ones
	// open the same ports, pins and MQTT client id.
	g.gen.stop()
	ds, err := g.buildDrivers(cfg)
	if err != nil {
		g.log.Error("config reload rejected: its drivers cannot start; the old ones start again", "config", path, "err", err)
		// A driver runs once: the old ones are built anew from their config.
		old, oerr := g.buildDrivers(g.live)
		if oerr != nil {
			g.log.Error("the old drivers cannot start again either; no sensor is read until a reload succeeds", "err", oerr)
		}
		g.gen = g.startDrivers(old)
		return err
	}
	done := make(chan error, 1)
	g.swap <- swapRequest{engine: eng, sensors: newSensorTable(cfg.Sensors, eng.SensorMachines(), g.metrics), done: done}
	if err := <-done; err != nil {
		g.log.Warn("alert and machine state not carried over the reload", "err", err)
	}
	g.live = cfg
	g.gen = g.startDrivers(ds)
	g.log.Info("config reloaded", "config", path, "sensors", len(cfg.Sensors), "rules", len(cfg.Rules), "machines", len(cfg.Machines))
	return nil
}

// restartOnly names the sections that differ from the config the gateway
// started with but are not reloaded.
func restartOnly(old, cur *config.Config) []string {
	var parts []string
	for _, c := range []struct {
		name     string
		old, cur any
	}{
		{"gateway", old.Gateway, cur.Gateway},
		{"http", old.HTTP, cur.HTTP},
		{"buffer", old.Buffer, cur.Buffer},
		{"uplink", old.Uplink, cur.Uplink},
		{"alerts", old.Alerts, cur.Alerts},
	} {
		if !reflect.DeepEqual(c.old, c.cur) {
			parts = append(parts, c.name)
		}
	}
	return parts
}

// watchConfig reloads when the config file's contents change, looking every
// two seconds (no inotify: the file is often replaced by a rename, or lives
// on a filesystem without it).
func (g *Gateway) watchConfig(ctx context.Context) {
	path := g.opts.ConfigPath
	last := g.configHash(path)
	t := g.clock.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
		h := g.configHash(path)
		if h == nil || bytes.Equal(h, last) {
			continue
		}
		g.log.Info("config file changed; reloading", "config", path)
		_ = g.Reload(path)
		// A reload may change what is included: hash that set from now on.
		last = g.configHash(path)
	}
}

// configHash hashes the config file and the files it includes (as of the
// config running now), so that editing shared defaults reloads too. Nil
// while the file cannot be read (being replaced, say).
func (g *Gateway) configHash(path string) []byte {
	g.reloadMu.Lock()
	files := append([]string{path}, g.live.Includes...)
	g.reloadMu.Unlock()
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && f == path {
			return nil
		}
		h.Write([]byte(f))
		h.Write(b)
	}
	return h.Sum(nil)
}
