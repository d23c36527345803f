// Package drivers is the registry of sensor sources. Each bus has its own
// package under drivers/ that registers itself by the name sensors use in
// the config's `driver:` field; the pipeline starts whatever the config
// names and never imports a driver itself. drivers/all imports them all.
//
// A driver only produces readings: it knows nothing of rules, the spool or
// Kafka.
package drivers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/jonboulle/clockwork"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// Sink is where a driver hands its readings.
type Sink interface {
	// Emit passes one reading to the pipeline. It blocks while the pipeline
	// is full (back-pressure reaches the source instead of growing memory)
	// and returns ctx.Err() once ctx is done; a reading for which Emit
	// returned an error was not accepted.
	//
	// ack, if not nil, is called exactly once after the reading was
	// accepted and is safe: committed to the spool, or refused by the
	// spool's reject_new policy (which counts it). A source that can resend
	// (MQTT QoS 1) acknowledges to its peer only then. It is never called
	// for a reading the spool could not store because its disk does not
	// take records (full, failing) for long: the source must send it again.
	Emit(ctx context.Context, r reading.Reading, ack func()) error
}

// BatchSink is what a Sink may also offer a source that reads many
// readings at once and needs no acknowledgement for them (MQTT QoS 0, a
// socket buffer at a time): EmitBatch hands them to the pipeline together,
// one goroutine wake-up for the lot instead of one per reading. It blocks
// and fails as Emit does; rs is not kept after it returns. The gateway's
// sink implements it; a driver checks with a type assertion.
type BatchSink interface {
	EmitBatch(ctx context.Context, rs []reading.Reading) error
}

// Mark identifies a message that a source delivers again until it is
// acknowledged (an MQTT QoS 1 packet id, and a hash of topic and payload).
type Mark struct {
	ID   uint16
	Hash uint64
}

// Marker is what a Sink offers a source that redelivers, so that a
// redelivery of a message the spool already committed (the gateway crashed
// before acknowledging it) is acknowledged without being stored twice. The
// gateway's sink implements it; a driver checks with a type assertion.
type Marker interface {
	// Redelivered reports whether the message m was committed and its
	// mark not forgotten since: acknowledge it, store nothing.
	Redelivered(m Mark) bool
	// EmitMarked is Emit for the last reading made from a message: the
	// commit that holds the reading also records m.
	EmitMarked(ctx context.Context, r reading.Reading, ack func(), m Mark) error
	// Forget drops the mark with packet id id soon: the message was
	// acknowledged (the acknowledgement may still be on its way).
	Forget(id uint16)
	// Reused drops the mark with packet id id at once: the broker gave
	// the id to a new message.
	Reused(id uint16)
}

// Env is what the gateway gives every driver.
type Env struct {
	Gateway config.Gateway
	MQTT    config.MQTT // the plant-floor broker, for drivers that use it
	// StateDir is where a driver may keep small state files that must
	// survive a restart (a part counter's total): the spool's directory.
	StateDir string
	Clock    clockwork.Clock
	Logger   *slog.Logger
	Metrics  *metrics.Set
}

// WithDefaults fills what a test or a tool may leave out: the real clock,
// the default logger, a private metrics set.
func (e Env) WithDefaults() Env {
	if e.Clock == nil {
		e.Clock = clockwork.NewRealClock()
	}
	if e.Logger == nil {
		e.Logger = slog.Default()
	}
	if e.Metrics == nil {
		e.Metrics = metrics.New()
	}
	return e
}

// Driver is a running source for all the sensors of one driver kind.
type Driver interface {
	// Run reads until ctx is done and returns once every goroutine it
	// started has stopped. Errors of the bus (a broker away, a port
	// unplugged) are retried inside Run, logged and counted; Run returns an
	// error only for what retrying cannot fix.
	Run(ctx context.Context, sink Sink) error
}

// Factory makes a driver kind.
type Factory struct {
	// Check validates one sensor's driver-specific fields and fills in
	// their defaults. It reports each problem with the field's key (such
	// as "topic") relative to the sensor.
	Check func(s *config.Sensor, report func(field, format string, args ...any))
	// CheckAll, if set, validates what only the sensors of this driver
	// together can show (two sensors on one pin, different line settings
	// on one port); it reports by index into sensors. It runs after Check.
	CheckAll func(sensors []*config.Sensor, report func(i int, field, format string, args ...any))
	// New builds the driver for all sensors that name it, in config order.
	New func(env Env, sensors []config.Sensor) (Driver, error)
}

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a driver available under name. It is called from the
// driver package's init and panics on a duplicate name, a programming
// error caught by any test.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("drivers: %q registered twice", name))
	}
	if f.New == nil {
		panic(fmt.Sprintf("drivers: %q has no New", name))
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered drivers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check validates every sensor's driver: that it is registered, and its own
// fields. Problems carry the config's file and line.
func Check(c *config.Config) config.Problems {
	var ps config.Problems
	for i := range c.Sensors {
		s := &c.Sensors[i]
		path := fmt.Sprintf("sensors[%d]", i)
		if s.Driver == "" {
			continue // reported by config itself
		}
		f, ok := Lookup(s.Driver)
		if !ok {
			ps = append(ps, c.Problem(path+".driver", "unknown driver %q (known: %v)", s.Driver, Names()))
			continue
		}
		if f.Check != nil {
			f.Check(s, func(field, format string, args ...any) {
				ps = append(ps, c.Problem(path+"."+field, format, args...))
			})
		}
	}
	// Then each driver's sensors together, in the order the drivers first
	// appear.
	var kinds []string
	groups := map[string][]int{}
	for i, s := range c.Sensors {
		if _, ok := Lookup(s.Driver); !ok {
			continue
		}
		if _, seen := groups[s.Driver]; !seen {
			kinds = append(kinds, s.Driver)
		}
		groups[s.Driver] = append(groups[s.Driver], i)
	}
	for _, kind := range kinds {
		f, _ := Lookup(kind)
		if f.CheckAll == nil {
			continue
		}
		idx := groups[kind]
		sensors := make([]*config.Sensor, len(idx))
		for j, i := range idx {
			sensors[j] = &c.Sensors[i]
		}
		f.CheckAll(sensors, func(j int, field, format string, args ...any) {
			ps = append(ps, c.Problem(fmt.Sprintf("sensors[%d].%s", idx[j], field), format, args...))
		})
	}
	return ps
}
