// Package alertmqtt publishes alert transitions to the plant-floor MQTT
// broker: each transition's alert JSON (as on Kafka), retained, QoS 1, to
// `<alerts.mqtt_topic>/<rule>`, so a screen or PLC that subscribes at any
// time sees the current state of every rule.
//
// Publish never blocks its caller, the pipeline: it queues the transition
// and wakes Run, which publishes. While the broker is reachable every
// transition is published, in order. Because the topics are retained only
// the last state of a rule matters, so while the broker is away a newer
// transition of a rule replaces the older ones instead of queueing behind
// them, and once it is back every rule's latest state is published. An
// outage is logged once, not per attempt.
package alertmqtt

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	mqttdrv "github.com/edgegw/edgegw/drivers/mqtt"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
)

// metricName is the driver label of this package's errors in
// edgegw_driver_errors_total (kinds "disconnect" and "publish").
const metricName = "alertmqtt"

// timing holds the durations of the publisher; tests shorten them.
type timing struct {
	retryMin, retryMax time.Duration // reconnect backoff, doubling
	publishTimeout     time.Duration // wait for a PUBACK before trying again
	flushTimeout       time.Duration // how long a stop tries to publish what is pending
}

var defaultTiming = timing{
	retryMin:       500 * time.Millisecond,
	retryMax:       10 * time.Second,
	publishTimeout: 10 * time.Second,
	flushTimeout:   2 * time.Second,
}

// Publisher is the MQTT alert sink. Create it with New, start Run once,
// call Publish from any goroutine.
type Publisher struct {
	gateway, prefix, url string
	cfg                  config.MQTT // for explaining a refused connection
	log                  *slog.Logger
	timing               timing
	client               paho.Client
	errDisconnect        prometheus.Counter
	errPublish           prometheus.Counter

	queue queue
	wake  chan struct{} // a Publish happened
	lost  chan struct{} // the connection dropped
}

// New creates the publisher for the broker in cfg, with client id
// `<client_id>-alerts` (the sensors' client keeps its own session). prefix is
// alerts.mqtt_topic; gatewayID goes into every alert JSON. It does not
// connect: Run does.
func New(cfg config.MQTT, gatewayID, prefix string, logger *slog.Logger, m *metrics.Set) (*Publisher, error) {
	return newPublisher(cfg, gatewayID, prefix, logger, m, defaultTiming)
}

func newPublisher(cfg config.MQTT, gatewayID, prefix string, logger *slog.Logger, m *metrics.Set, t timing) (*Publisher, error) {
	if prefix == "" || strings.ContainsAny(prefix, "+#") {
		return nil, fmt.Errorf("alerts.mqtt_topic %q: want a topic without wildcards", prefix)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.New()
	}
	p := &Publisher{
		gateway:       gatewayID,
		prefix:        strings.TrimSuffix(prefix, "/"),
		url:           cfg.URL,
		timing:        t,
		errDisconnect: m.DriverErrors.WithLabelValues(metricName, "disconnect"),
		errPublish:    m.DriverErrors.WithLabelValues(metricName, "publish"),
		wake:          make(chan struct{}, 1),
		lost:          make(chan struct{}, 1),
	}
	if p.url == "" {
		p.url = config.DefaultMQTTURL
	}
	p.log = logger.With("part", "alerts", "broker", p.url)
	id := cfg.ClientID
	if id == "" {
		id = gatewayID
	}
	keepAlive := cfg.KeepAlive.D()
	if keepAlive == 0 {
		keepAlive = config.DefaultKeepAlive.D()
	}
	o := paho.NewClientOptions().
		AddBroker(p.url).
		SetClientID(id + "-alerts").
		// Run reconnects itself, with a clean session: paho's own
		// reconnect would resend a stored, possibly stale, state of a rule
		// racing the newer one Run publishes.
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(keepAlive).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { notify(p.lost) })
	// The same login and TLS as the sensors' client.
	if err := mqttdrv.Secure(o, cfg); err != nil {
		return nil, err
	}
	p.cfg = cfg
	p.client = paho.NewClient(o)
	return p, nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Topic is where the alerts of rule are published.
func (p *Publisher) Topic(rule string) string { return p.prefix + "/" + rule }

// Publish queues an alert transition for publishing. seq is the spool's
// sequence number of the transition (0 if it was not spooled). It never
// blocks.
func (p *Publisher) Publish(a reading.Alert, seq uint64) {
	rec := reading.FromAlert(a)
	rec.Seq = seq
	p.queue.push(a.Rule, rec.AppendJSON(nil, p.gateway))
	notify(p.wake)
}

// Connected reports whether the connection to the broker is up.
func (p *Publisher) Connected() bool { return p.client.IsConnectionOpen() }

// Run connects, publishes until ctx is done, then tries for a short while
// to publish what is still pending and disconnects.
func (p *Publisher) Run(ctx context.Context) error {
	backoff := p.timing.retryMin
	down := false // this outage was logged
	for ctx.Err() == nil {
		if !p.client.IsConnectionOpen() {
			p.queue.setUp(false)
			if err := p.connect(ctx); err != nil {
				if ctx.Err() != nil {
					break
				}
				if !down {
					down = true
					p.errDisconnect.Inc()
					msg, kind := mqttdrv.ExplainConnectError(err, p.cfg)
					if kind == mqttdrv.KindConnect {
						p.log.Warn("alert broker unreachable; keeping the latest state of each rule until it is back", "err", msg)
					} else {
						p.log.Error("alert broker refused the connection; keeping the latest state of each rule, but the configuration must change", "err", msg)
					}
				}
				sleep(ctx, backoff)
				backoff = min(2*backoff, p.timing.retryMax)
				continue
			}
			if down {
				p.log.Info("alert broker reachable again; publishing the latest states", "transitions", p.queue.len())
			}
			down, backoff = false, p.timing.retryMin
			p.queue.setUp(true)
		}
		if p.queue.len() == 0 {
			select {
			case <-ctx.Done():
			case <-p.wake:
			case <-p.lost:
				p.queue.setUp(false)
			}
			continue
		}
		if err := p.publishQueued(ctx); err != nil && ctx.Err() == nil {
			p.queue.setUp(false)
			if !down {
				down = true
				p.errPublish.Inc()
				p.log.Warn("publishing alerts failed; retrying with the latest state of each rule", "err", err)
			}
			// A publish that timed out on an open connection means the
			// connection is not working; start over with a new one.
			p.client.Disconnect(0)
			sleep(ctx, backoff)
			backoff = min(2*backoff, p.timing.retryMax)
		}
	}

	// The pipeline routes its last transitions before this ctx ends.
	if p.client.IsConnectionOpen() && p.queue.len() > 0 {
		flush, cancel := context.WithTimeout(context.Background(), p.timing.flushTimeout)
		if err := p.publishQueued(flush); err != nil {
			p.log.Warn("alerts not published before stopping", "transitions", p.queue.len(), "err", err)
		}
		cancel()
	}
	// Also when not connected: it ends a connection attempt in progress.
	p.client.Disconnect(250)
	return nil
}

func (p *Publisher) connect(ctx context.Context) error {
	drain(p.lost) // a loss reported for the previous connection
	tok := p.client.Connect()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publishQueued publishes the queued transitions in order and settles the
// ones the broker acknowledged.
func (p *Publisher) publishQueued(ctx context.Context) error {
	batch := p.queue.snapshot()
	tokens := make([]paho.Token, len(batch))
	for i, q := range batch {
		tokens[i] = p.client.Publish(p.Topic(q.rule), 1, true, q.payload)
	}
	wait, cancel := context.WithTimeout(ctx, p.timing.publishTimeout)
	defer cancel()
	var acked []queued
	var firstErr error
	for i, tok := range tokens {
		var err error
		select {
		case <-tok.Done():
			err = tok.Error()
		case <-wait.Done():
			err = fmt.Errorf("no PUBACK within %v: %w", p.timing.publishTimeout, wait.Err())
		}
		if err == nil {
			acked = append(acked, batch[i])
		} else if firstErr == nil {
			firstErr = fmt.Errorf("rule %s: %w", batch[i].rule, err)
		}
	}
	p.queue.settle(acked)
	return firstErr
}

func drain(c chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// sleep waits d or until ctx is done. Reconnect backoff is wall time: it
// paces a network peer, not a duration of the plant's.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
