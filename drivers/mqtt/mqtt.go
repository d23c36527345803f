// Package mqtt reads sensors from the plant-floor MQTT broker (the config's
// `mqtt:` section), registered as driver "mqtt".
//
// All MQTT sensors of a gateway share one connection and one client id, so
// the broker keeps one persistent session for the gateway. A sensor names a
// topic filter (+ and # allowed; several sensors may share a filter) and
// either a JSON path (`value: "$.a.b[0]"`) or nothing, in which case the
// whole payload is the number (true/false and on/off read as 1/0).
//
// Delivery: at QoS 1 a message is acknowledged to the broker only when the
// sink has acknowledged every reading made from it, that is after the spool
// committed them; a message whose readings were not committed is delivered
// again after a reconnect. A malformed payload is counted, logged at most
// once a minute per sensor, and acknowledged, so the broker does not
// redeliver it forever.
//
// Back-pressure: messages are handled one at a time, in order, on paho's
// router goroutine (at QoS 0 on the goroutine reading the connection, see
// conn.go); while the sink blocks, nothing more is read from the socket
// and the broker queues. Cancelling Run's context unblocks it.
package mqtt

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// Name is the `driver:` value of MQTT sensors.
const Name = "mqtt"

func init() {
	drivers.Register(Name, drivers.Factory{Check: Check, New: New})
}

// Check validates an MQTT sensor: a valid topic filter and, if given, a
// valid value path.
func Check(s *config.Sensor, report func(field, format string, args ...any)) {
	if s.Topic == "" {
		report("topic", "required: a topic filter such as line1/press/temp")
	} else if err := ValidFilter(s.Topic); err != nil {
		report("topic", "%q: %v", s.Topic, err)
	}
	if s.Value != "" {
		if _, err := ParsePath(s.Value); err != nil {
			report("value", "%v", err)
		}
	}
}

// timing holds the durations of the driver; tests shorten them.
type timing struct {
	connectRetry time.Duration // between attempts while the broker is down at start
	maxReconnect time.Duration // cap of paho's doubling reconnect backoff
	ackGrace     time.Duration // how long a stop waits for the spool's acks
	logEvery     time.Duration // at most one bad-payload line per sensor this often
	// connectTimeout bounds one connection attempt, CONNACK included: a
	// broker that accepts the TCP connection but never answers (one being
	// shut down, say) holds the reconnect that long.
	connectTimeout time.Duration
}

var defaultTiming = timing{
	connectRetry: 2 * time.Second,
	maxReconnect: 10 * time.Second,
	// Long enough for several group commits (200ms by default), short
	// enough not to hold up a SIGTERM noticeably.
	ackGrace:       5 * time.Second,
	logEvery:       time.Minute,
	connectTimeout: 10 * time.Second,
}

// Driver is the running MQTT source. Create it with New (or through the
// registry) and start it with Run once.
type Driver struct {
	env    drivers.Env
	url    string
	qos    byte
	routes *routes
	timing timing
	client paho.Client
	log    *slog.Logger
	limit  *logLimiter
	acks   counter // messages whose readings await the sink's ack

	malformed, notANumber, unknown                    prometheus.Counter
	dedup, redelivered                                prometheus.Counter
	errMalformed, errNaN, errDisconnect, errSubscribe prometheus.Counter

	// Set by Run before connecting, read by paho's goroutines after.
	ctx   context.Context
	sink  drivers.Sink
	batch drivers.BatchSink // sink, when it takes batches; else nil

	handleMu   sync.Mutex
	scratch    []*sensor         // handle's match buffer, under handleMu
	readings   []reading.Reading // handle's readings buffer
	pending    []reading.Reading // QoS 0 readings held for one EmitBatch (flushPending), under handleMu
	fromConn   atomic.Uint64     // messages the connection handed to handle (QoS 0)
	outage     atomic.Bool       // an unreachable broker was logged
	subscribed atomic.Bool       // the broker confirmed every filter on this connection
	connLog    connectLog        // which failed connection attempts are logged (tls.go)
}

// sensor is one configured MQTT sensor, compiled.
type sensor struct {
	id, unit, topic string
	path            Path
	json            bool // value: given; else the payload is the number
}

// New builds the driver for all MQTT sensors (already checked by Check).
func New(env drivers.Env, sensors []config.Sensor) (drivers.Driver, error) {
	return newDriver(env, sensors, defaultTiming)
}

func newDriver(env drivers.Env, sensors []config.Sensor, t timing) (*Driver, error) {
	m := env.MQTT
	d := &Driver{env: env, url: m.URL, qos: 1, timing: t}
	if d.url == "" {
		d.url = config.DefaultMQTTURL
	}
	if m.QoS != nil {
		d.qos = byte(*m.QoS)
	}
	d.env = d.env.WithDefaults()
	d.log = d.env.Logger // the gateway names the driver in it
	d.limit = newLogLimiter(d.env.Clock, t.logEvery)

	var list []*sensor
	for _, s := range sensors {
		cs := &sensor{id: s.ID, unit: s.Unit, topic: s.Topic, json: s.Value != ""}
		if cs.json {
			p, err := ParsePath(s.Value)
			if err != nil {
				return nil, fmt.Errorf("sensor %s: value: %w", s.ID, err)
			}
			cs.path = p
		}
		if err := ValidFilter(s.Topic); err != nil {
			return nil, fmt.Errorf("sensor %s: topic %q: %w", s.ID, s.Topic, err)
		}
		list = append(list, cs)
	}
	d.routes = newRoutes(list)

	mt := d.env.Metrics
	d.malformed = mt.Dropped.WithLabelValues(metrics.DropMalformed)
	d.notANumber = mt.Dropped.WithLabelValues(metrics.DropNotANumber)
	d.unknown = mt.Dropped.WithLabelValues(metrics.DropUnknownTopic)
	d.dedup = mt.Redeliveries.WithLabelValues("deduplicated")
	d.redelivered = mt.Redeliveries.WithLabelValues("stored")
	d.errMalformed = mt.DriverErrors.WithLabelValues(Name, "malformed")
	d.errNaN = mt.DriverErrors.WithLabelValues(Name, "not_a_number")
	d.errDisconnect = mt.DriverErrors.WithLabelValues(Name, "disconnect")
	d.errSubscribe = mt.DriverErrors.WithLabelValues(Name, "subscribe")

	opts, err := d.clientOptions()
	if err != nil {
		return nil, err
	}
	d.client = paho.NewClient(opts)
	return d, nil
}

func (d *Driver) clientOptions() (*paho.ClientOptions, error) {
	m := d.env.MQTT
	id := m.ClientID
	if id == "" {
		id = d.env.Gateway.ID
	}
	keepAlive := m.KeepAlive.D()
	if keepAlive == 0 {
		keepAlive = config.DefaultKeepAlive.D()
	}
	o := paho.NewClientOptions().
		AddBroker(d.url).
		SetClientID(id).
		// The session outlives the connection only when there is something
		// to resend: at QoS 0 the broker would keep nothing anyway.
		SetCleanSession(d.qos == 0).
		SetAutoAckDisabled(true).
		SetOrderMatters(true).
		SetDefaultPublishHandler(d.handle).
		SetOnConnectHandler(d.onConnect).
		SetConnectionLostHandler(d.onLost).
		SetConnectionNotificationHandler(d.onNotify).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(d.timing.maxReconnect).
		SetConnectRetry(true).
		SetConnectRetryInterval(d.timing.connectRetry).
		SetKeepAlive(keepAlive).
		SetConnectTimeout(d.timing.connectTimeout).
		SetWriteTimeout(10 * time.Second)
	if err := Secure(o, m); err != nil { // login and TLS (tls.go)
		return nil, err
	}
	if u, err := url.Parse(d.url); err == nil && bufferedSchemes(u) {
		var publish func(paho.Message)
		if d.qos == 0 {
			// Every delivery is at QoS 0: they go from the connection
			// straight to handle (conn.go). At QoS 1, publishers' QoS 0
			// messages stay on paho's path too, in order with the rest.
			publish = func(m paho.Message) {
				d.fromConn.Add(1)
				d.handle(nil, m)
			}
		}
		o.SetCustomOpenConnectionFn(openConn(d.timing.connectTimeout, publish, d.flush)) // conn.go
	}
	return o, nil
}

// Run connects (retrying while the broker is away), feeds sink until ctx is
// done, then waits a short while for the acks of what sink accepted, so a
// clean stop leaves nothing for the broker to redeliver, and disconnects.
func (d *Driver) Run(ctx context.Context, sink drivers.Sink) error {
	d.ctx, d.sink = ctx, sink
	d.batch, _ = sink.(drivers.BatchSink)
	d.log.Info("connecting", "broker", d.url, "filters", len(d.routes.filters), "qos", d.qos)
	d.client.Connect() // completes in the background; onConnect subscribes
	<-ctx.Done()

	grace := d.env.Clock.NewTimer(d.timing.ackGrace)
	select {
	case <-d.acks.idle():
		grace.Stop()
	case <-grace.Chan():
		d.log.Warn("stopping with messages not yet committed; the broker will deliver them again", "messages", d.acks.value())
	}
	d.client.Disconnect(250)
	d.log.Info("disconnected", "broker", d.url)
	return nil
}

// Connected reports whether the connection to the broker is up now (not
// merely being retried), for health reporting.
func (d *Driver) Connected() bool { return d.client.IsConnectionOpen() }

// Subscribed reports whether the broker confirmed every subscription on the
// current connection. Until the first time it is true, a broker without a
// session for this client drops what is published on the sensors' topics:
// a caller that must not miss the first messages (a test, a readiness
// probe) waits for it.
func (d *Driver) Subscribed() bool { return d.subscribed.Load() && d.Connected() }

// onConnect subscribes on every connection: a broker that restarted has
// forgotten the session, and subscribing again to a kept session is harmless.
func (d *Driver) onConnect(c paho.Client) {
	if d.outage.Swap(false) {
		d.log.Info("broker reachable again", "broker", d.url)
	} else {
		d.log.Info("connected", "broker", d.url)
	}
	filters := make(map[string]byte, len(d.routes.filters))
	for _, f := range d.routes.filters {
		filters[f] = d.qos
	}
	tok := c.SubscribeMultiple(filters, nil) // nil: every message goes to handle
	select {
	case <-tok.Done():
	case <-d.ctx.Done():
		return
	}
	if err := tok.Error(); err != nil {
		d.errSubscribe.Inc()
		d.log.Warn("subscribe failed; retried on the next connection", "err", err)
		return
	}
	ok := true
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code > 2 {
			ok = false
			d.errSubscribe.Inc()
			d.log.Error("broker refused the subscription", "topic", f, "code", code)
		}
	}
	d.subscribed.Store(ok)
}

func (d *Driver) onLost(_ paho.Client, err error) {
	d.subscribed.Store(false)
	d.errDisconnect.Inc()
	d.log.Warn("connection lost; reconnecting", "broker", d.url, "err", err)
}

// onNotify counts a failed connection attempt and logs it, explained and
// rate-limited (connectFailed, tls.go), instead of once per retry.
func (d *Driver) onNotify(_ paho.Client, n paho.ConnectionNotification) {
	if f, ok := n.(paho.ConnectionNotificationFailed); ok {
		d.connectFailed(f.Reason)
	}
}
