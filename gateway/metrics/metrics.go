// Package metrics declares every Prometheus metric edgegw exports, in one
// place, so that each name is registered exactly once and each component
// (drivers, spool, uplink, rules) receives the handles it updates.
//
// A Set is created per gateway with its own registry; tests create one per
// test and read the values back with prometheus/testutil.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Drop reasons, the values of the `reason` label of edgegw_dropped_total.
const (
	DropSpoolFullOldest = "spool_full_oldest" // drop_oldest evicted a committed record
	DropSpoolFullReject = "spool_full_rejected"
	// DropDiskFull: the disk is full (commits fail with ENOSPC, EFBIG or
	// EDQUOT) and the records waiting in memory reached their bound, so
	// buffer.when_full dropped the oldest waiting or refused new ones.
	DropDiskFull = "disk_full"
	// DropSpoolBacklog: the same for commits that fail otherwise (an I/O
	// error, a read-only remount) or cannot keep up with the input.
	DropSpoolBacklog = "spool_backlog"
	DropMalformed    = "malformed"     // a payload that did not parse
	DropUnknownTopic = "unknown_topic" // an MQTT message no sensor claims
	DropNotANumber   = "not_a_number"
)

// Set holds the metric handles. The zero value is not usable; call New.
type Set struct {
	Registry *prometheus.Registry

	ReadingsTotal *prometheus.CounterVec // edgegw_readings_total{driver}
	DriverErrors  *prometheus.CounterVec // edgegw_driver_errors_total{driver,kind}
	Dropped       *prometheus.CounterVec // edgegw_dropped_total{reason}

	BufferRecords   prometheus.Gauge   // edgegw_buffer_records
	BufferBytes     prometheus.Gauge   // edgegw_buffer_bytes
	BufferCommits   prometheus.Counter // edgegw_buffer_commits_total
	BufferCommitDur prometheus.Histogram
	// BufferMemoryMode is 1 while an outage-mode spool keeps records in
	// memory (Kafka acknowledges), 0 while it writes them to the file.
	BufferMemoryMode   prometheus.Gauge       // edgegw_buffer_memory_mode
	BufferModeSwitches *prometheus.CounterVec // edgegw_buffer_mode_switches_total{to}

	UplinkSent      *prometheus.CounterVec // edgegw_uplink_sent_total{topic}
	UplinkErrors    prometheus.Counter     // edgegw_uplink_errors_total
	UplinkBatches   prometheus.Counter     // edgegw_uplink_batches_total
	UplinkConnected prometheus.Gauge       // edgegw_uplink_connected
	UplinkLatency   prometheus.Histogram   // edgegw_uplink_latency_seconds: reading ts → Kafka ack

	RuleEvals    prometheus.Counter // edgegw_rule_evaluations_total
	AlertsFiring prometheus.Gauge   // edgegw_alerts_firing
	Transitions  *prometheus.CounterVec

	HTTPStreams prometheus.Gauge   // edgegw_http_streams: open /events streams
	ClockJumps  prometheus.Counter // edgegw_clock_jumps_total
	// HTTPAuthFailures counts acknowledgements refused for their token.
	HTTPAuthFailures prometheus.Counter // edgegw_http_auth_failures_total

	// Redeliveries counts MQTT messages the broker delivered again (DUP
	// set), by what became of them: "deduplicated" (committed before a
	// crash: acknowledged, not stored again) or "stored" (never committed:
	// stored now).
	Redeliveries *prometheus.CounterVec // edgegw_mqtt_redeliveries_total{result}
}

// Probes are the gauges read from the gateway's state at scrape time
// rather than updated as things happen. Each may be nil.
type Probes struct {
	SpoolOldestAge func() float64 // seconds since the oldest spooled record's time; 0 when empty
	ClockSynced    func() float64 // 1 synchronised, 0 not, -1 unknown
	// Alerts counts the alerts in state (pending or firing), the
	// gateway's own included.
	Alerts func(state string) float64
}

// Register adds the probes' gauges to the registry. Call it once.
func (s *Set) Register(p Probes) {
	if p.SpoolOldestAge != nil {
		s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgegw_buffer_oldest_age_seconds",
			Help: "Age of the oldest record waiting in the spool (how far behind Kafka is); 0 when empty.",
		}, p.SpoolOldestAge))
	}
	if p.ClockSynced != nil {
		s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "edgegw_clock_synchronized",
			Help: "1 while the kernel says the clock is synchronised (NTP), 0 while not, -1 where it cannot tell.",
		}, p.ClockSynced))
	}
	if p.Alerts != nil {
		for _, state := range []string{"pending", "firing"} {
			s.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "edgegw_alerts",
				Help:        "Alerts by state, the gateway's own included.",
				ConstLabels: prometheus.Labels{"state": state},
			}, func() float64 { return p.Alerts(state) }))
		}
	}
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on a fresh registry.
func New() *Set {
	reg := prometheus.NewRegistry()
	s := &Set{
		Registry: reg,
		ReadingsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_readings_total", Help: "Readings accepted from drivers, by driver.",
		}, []string{"driver"}),
		DriverErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_driver_errors_total", Help: "Driver errors (bad payloads, bus errors, disconnects), by driver and kind.",
		}, []string{"driver", "kind"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_dropped_total", Help: "Readings or records dropped, by reason.",
		}, []string{"reason"}),
		BufferRecords: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_buffer_records", Help: "Records committed to the spool and not yet acknowledged by Kafka.",
		}),
		BufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_buffer_bytes", Help: "Encoded bytes of the records in the spool (what buffer.max_bytes bounds).",
		}),
		BufferCommits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_buffer_commits_total", Help: "Spool group commits (bbolt transactions with fsync).",
		}),
		BufferCommitDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgegw_buffer_commit_seconds", Help: "Duration of a spool group commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		BufferMemoryMode: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_buffer_memory_mode",
			Help: "1 while buffer.mode outage keeps records in memory because Kafka acknowledges them, 0 while records are written to the spool file.",
		}),
		BufferModeSwitches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_buffer_mode_switches_total", Help: "Outage-mode switches, by the state switched to: memory or disk.",
		}, []string{"to"}),
		UplinkSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_uplink_sent_total", Help: "Records acknowledged by Kafka, by topic.",
		}, []string{"topic"}),
		UplinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_uplink_errors_total", Help: "Failed Kafka produce attempts (the batch is kept and retried).",
		}),
		UplinkBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_uplink_batches_total", Help: "Batches acknowledged by Kafka.",
		}),
		UplinkConnected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_uplink_connected", Help: "1 while the last Kafka produce succeeded, 0 after a failure.",
		}),
		UplinkLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgegw_uplink_latency_seconds", Help: "From a reading's timestamp to Kafka's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		RuleEvals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_rule_evaluations_total", Help: "Rule expression evaluations.",
		}),
		AlertsFiring: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_alerts_firing", Help: "Alerts currently firing.",
		}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_alert_transitions_total", Help: "Alert transitions, by new state.",
		}, []string{"state"}),
		HTTPStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgegw_http_streams", Help: "Open /events streams (dashboard screens).",
		}),
		HTTPAuthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_http_auth_failures_total", Help: "Alert acknowledgements refused for a missing or wrong token.",
		}),
		ClockJumps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgegw_clock_jumps_total", Help: "Steps of the system clock (the wall clock moving unlike the monotonic clock by over 2s).",
		}),
		Redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "edgegw_mqtt_redeliveries_total",
			Help: "MQTT QoS 1 messages delivered again by the broker, by result: deduplicated (committed before, not stored again) or stored.",
		}, []string{"result"}),
	}
	reg.MustRegister(
		prometheus.NewGoCollector(),
		prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		s.ReadingsTotal, s.DriverErrors, s.Dropped,
		s.BufferRecords, s.BufferBytes, s.BufferCommits, s.BufferCommitDur, s.BufferMemoryMode, s.BufferModeSwitches,
		s.UplinkSent, s.UplinkErrors, s.UplinkBatches, s.UplinkConnected, s.UplinkLatency,
		s.RuleEvals, s.AlertsFiring, s.Transitions, s.HTTPStreams, s.HTTPAuthFailures, s.ClockJumps, s.Redeliveries,
	)
	s.BufferModeSwitches.WithLabelValues("memory")
	s.BufferModeSwitches.WithLabelValues("disk")
	s.Redeliveries.WithLabelValues("deduplicated")
	s.Redeliveries.WithLabelValues("stored")
	// Pre-create the label values operators alert on, so the series exist
	// (at 0) from the first scrape rather than appearing on the first drop.
	for _, r := range []string{DropSpoolFullOldest, DropSpoolFullReject, DropDiskFull, DropSpoolBacklog, DropMalformed, DropUnknownTopic, DropNotANumber} {
		s.Dropped.WithLabelValues(r)
	}
	return s
}
