package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Defaults, as documented on the fields and in the README.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultBufferPath     = "/var/lib/edgegw/buffer.db"
	DefaultMaxBytes       = Size(1 << 30)
	DefaultCommitInterval = Duration(200 * time.Millisecond)
	DefaultBufferMode     = ModeDurable
	DefaultOutageAfter    = Duration(time.Second)
	DefaultMQTTURL        = "tcp://127.0.0.1:1883"
	DefaultKeepAlive      = Duration(30 * time.Second)
	DefaultReadingsTopic  = "plant.readings"
	DefaultAlertsTopic    = "plant.alerts"
	DefaultEventsTopic    = "plant.events"
	DefaultBatchSize      = 1000
	DefaultLinger         = Duration(200 * time.Millisecond)
	DefaultCompression    = "zstd"
	DefaultMinDowntime    = Duration(30 * time.Second)
	DefaultSeverity       = "warning"
	DefaultBlink          = Duration(500 * time.Millisecond)
)

// When-full policies.
const (
	DropOldest = "drop_oldest"
	RejectNew  = "reject_new"
)

// Buffer modes.
const (
	ModeDurable = "durable"
	ModeOutage  = "outage"
)

var (
	gatewayIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	// SensorIDPattern is what a sensor id (and a rule or machine name) must
	// match, so that rule expressions can name it directly.
	SensorIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

func (c *Config) applyDefaults() {
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	b := &c.Buffer
	if b.Path == "" {
		b.Path = DefaultBufferPath
	}
	if b.MaxBytes == 0 {
		b.MaxBytes = DefaultMaxBytes
	}
	if b.WhenFull == "" {
		b.WhenFull = DropOldest
	}
	if b.CommitInterval == 0 {
		b.CommitInterval = DefaultCommitInterval
	}
	if b.Mode == "" {
		b.Mode = DefaultBufferMode
	}
	if b.OutageAfter == 0 {
		b.OutageAfter = DefaultOutageAfter
	}
	m := &c.MQTT
	if m.URL == "" {
		m.URL = DefaultMQTTURL
	}
	if m.ClientID == "" {
		m.ClientID = c.Gateway.ID
	}
	if m.QoS == nil {
		one := 1
		m.QoS = &one
	}
	if m.KeepAlive == 0 {
		m.KeepAlive = DefaultKeepAlive
	}
	k := &c.Uplink.Kafka
	if k.Topic == "" {
		k.Topic = DefaultReadingsTopic
	}
	if k.AlertsTopic == "" {
		k.AlertsTopic = DefaultAlertsTopic
	}
	if k.EventsTopic == "" {
		k.EventsTopic = DefaultEventsTopic
	}
	if k.BatchSize == 0 {
		k.BatchSize = DefaultBatchSize
	}
	if k.Linger == 0 {
		k.Linger = DefaultLinger
	}
	if k.Compression == "" {
		k.Compression = DefaultCompression
	}
	for i := range c.Machines {
		if c.Machines[i].MinDowntime == 0 {
			c.Machines[i].MinDowntime = DefaultMinDowntime
		}
	}
	if a := c.Alerts.Annunciator; a != nil && a.Blink == 0 {
		a.Blink = DefaultBlink
	}
	for i := range c.Machines {
		if c.Machines[i].Line == "" {
			c.Machines[i].Line = c.Gateway.Line
		}
	}
	for i := range c.Rules {
		if c.Rules[i].Severity == "" {
			c.Rules[i].Severity = DefaultSeverity
		}
	}
}

// validate checks what this package can check alone. The caller adds the
// checks of drivers and rule expressions.
func (c *Config) validate() Problems {
	var ps Problems
	add := func(path, format string, args ...any) { ps = append(ps, c.Problem(path, format, args...)) }

	switch id := c.Gateway.ID; {
	case id == "":
		add("gateway.id", "required (e.g. gw-line1-01)")
	case !gatewayIDPattern.MatchString(id):
		add("gateway.id", "%q must match [a-z0-9][a-z0-9-]*", id)
	}
	if err := checkHostPort(c.HTTP.Listen); err != nil {
		add("http.listen", "%v", err)
	}
	if c.Buffer.WhenFull != DropOldest && c.Buffer.WhenFull != RejectNew {
		add("buffer.when_full", "%q is not drop_oldest or reject_new", c.Buffer.WhenFull)
	}
	if c.Buffer.MaxBytes < 64<<10 {
		add("buffer.max_bytes", "%s is too small (at least 64KiB)", c.Buffer.MaxBytes)
	}
	switch c.Buffer.Mode {
	case ModeDurable:
	case ModeOutage:
		// A record must have time to be lingered over, sent and
		// acknowledged before the spool gives up on Kafka.
		min := max(100*time.Millisecond, 2*c.Uplink.Kafka.Linger.D())
		if d := c.Buffer.OutageAfter.D(); d < min {
			add("buffer.outage_after", "%s is too short: at least %s (100ms, and twice uplink.kafka.linger)", c.Buffer.OutageAfter, Duration(min))
		}
	default:
		add("buffer.mode", "%q is not durable or outage", c.Buffer.Mode)
	}
	ps = append(ps, c.validateMQTT()...)
	ps = append(ps, c.validateKafka()...)

	sensorLine := map[string]int{}
	for i, s := range c.Sensors {
		p := fmt.Sprintf("sensors[%d]", i)
		switch {
		case s.ID == "":
			add(p+".id", "required")
		case !SensorIDPattern.MatchString(s.ID):
			add(p+".id", "%q must match [a-z][a-z0-9_]* so that rules can name it", s.ID)
		default:
			if first, dup := sensorLine[s.ID]; dup {
				add(p+".id", "duplicate sensor id %q (first at line %d)", s.ID, first)
			} else {
				sensorLine[s.ID] = c.Line(p + ".id")
			}
		}
		if s.Driver == "" {
			add(p+".driver", "required")
		}
	}
	names := map[string]int{}
	for i, m := range c.Machines {
		p := fmt.Sprintf("machines[%d]", i)
		ps = append(ps, c.checkName(p+".name", m.Name, "machine", names)...)
		if strings.TrimSpace(m.Running) == "" {
			add(p+".running", "required: an expression that is true while the machine runs")
		}
	}
	machineNamed := func(path, name string) {
		if _, ok := names[name]; name != "" && !ok {
			add(path, "no machine is named %q (machines: %s)", name, c.machineList())
		}
	}
	for i, s := range c.Sensors {
		machineNamed(fmt.Sprintf("sensors[%d].machine", i), s.Machine)
	}
	for i, r := range c.Rules {
		machineNamed(fmt.Sprintf("rules[%d].machine", i), r.Machine)
	}
	names = map[string]int{}
	for i, r := range c.Rules {
		p := fmt.Sprintf("rules[%d]", i)
		ps = append(ps, c.checkName(p+".name", r.Name, "rule", names)...)
		if strings.TrimSpace(r.Expr) == "" {
			add(p+".expr", "required: a condition over sensor ids, e.g. press_temp > 80")
		}
		switch r.Severity {
		case "info", "warning", "critical":
		default:
			add(p+".severity", "%q is not info, warning or critical", r.Severity)
		}
	}
	if t := c.Alerts.MQTTTopic; strings.ContainsAny(t, "+#") {
		add("alerts.mqtt_topic", "%q: a topic to publish to cannot hold the wildcards + or #", t)
	}
	if a := c.Alerts.Annunciator; a != nil {
		if strings.TrimSpace(a.Pin) == "" {
			add("alerts.annunciator.pin", "required: the output's board name (GPIO22) or number")
		}
		// Faster than this a relay chatters and a lamp looks steady.
		if a.Blink < Duration(100*time.Millisecond) {
			add("alerts.annunciator.blink", "%s is too short (at least 100ms)", a.Blink)
		}
	}
	return ps
}

// machineList names the config's machines for an error message.
func (c *Config) machineList() string {
	if len(c.Machines) == 0 {
		return "none"
	}
	ns := make([]string, len(c.Machines))
	for i, m := range c.Machines {
		ns[i] = m.Name
	}
	return strings.Join(ns, ", ")
}

func (c *Config) checkName(path, name, what string, seen map[string]int) Problems {
	switch {
	case name == "":
		return Problems{c.Problem(path, "required")}
	case !SensorIDPattern.MatchString(name):
		return Problems{c.Problem(path, "%q must match [a-z][a-z0-9_]*", name)}
	}
	if first, dup := seen[name]; dup {
		return Problems{c.Problem(path, "duplicate %s name %q (first at line %d)", what, name, first)}
	}
	seen[name] = c.Line(path)
	return nil
}

func (c *Config) validateMQTT() Problems {
	var ps Problems
	m := c.MQTT
	u, err := url.Parse(m.URL)
	switch {
	case err != nil:
		ps = append(ps, c.Problem("mqtt.url", "%v", err))
	case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "mqtt" && u.Scheme != "mqtts":
		ps = append(ps, c.Problem("mqtt.url", "scheme %q is not tcp, ssl, ws or wss", u.Scheme))
	case u.Host == "":
		ps = append(ps, c.Problem("mqtt.url", "%q has no host", m.URL))
	}
	if q := *m.QoS; q != 0 && q != 1 {
		ps = append(ps, c.Problem("mqtt.qos", "%d is not 0 or 1", q))
	}
	if m.PasswordFile != "" && m.Username == "" {
		ps = append(ps, c.Problem("mqtt.username", "required with password_file"))
	}
	if t := m.TLS; t != nil {
		if err == nil && (u.Scheme == "tcp" || u.Scheme == "mqtt" || u.Scheme == "ws") {
			ps = append(ps, c.Problem("mqtt.tls", "needs an ssl://, tls://, mqtts:// or wss:// url, not %s://", u.Scheme))
		}
		for _, f := range []struct{ key, val string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if strings.Contains(f.val, "-----BEGIN") || strings.ContainsAny(f.val, "\n\r") {
				ps = append(ps, c.Problem("mqtt.tls."+f.key, "must be the path of a PEM file, not the PEM text itself"))
			}
		}
		if (t.CertFile == "") != (t.KeyFile == "") {
			ps = append(ps, c.Problem("mqtt.tls", "cert_file and key_file go together"))
		}
	}
	return ps
}

// MQTTURLIsTLS reports whether an mqtt.url scheme connects with TLS.
func MQTTURLIsTLS(scheme string) bool {
	switch scheme {
	case "ssl", "tls", "mqtts", "wss":
		return true
	}
	return false
}

func (c *Config) validateKafka() Problems {
	var ps Problems
	k := c.Uplink.Kafka
	add := func(path, format string, args ...any) { ps = append(ps, c.Problem(path, format, args...)) }
	if len(k.Brokers) == 0 {
		add("uplink.kafka.brokers", "required: at least one host:port")
	}
	for i, b := range k.Brokers {
		if err := checkHostPort(b); err != nil {
			add(fmt.Sprintf("uplink.kafka.brokers[%d]", i), "%v", err)
		}
	}
	if k.BatchSize < 1 || k.BatchSize > 100000 {
		add("uplink.kafka.batch_size", "%d is not between 1 and 100000", k.BatchSize)
	}
	switch k.Compression {
	case "none", "gzip", "snappy", "lz4", "zstd":
	default:
		add("uplink.kafka.compression", "%q is not none, gzip, snappy, lz4 or zstd", k.Compression)
	}
	if t := k.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add("uplink.kafka.tls", "cert_file and key_file go together")
	}
	if s := k.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			add("uplink.kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
		if s.Username == "" {
			add("uplink.kafka.sasl.username", "required")
		}
		if s.PasswordFile == "" {
			add("uplink.kafka.sasl.password_file", "required (secrets are read from files, never inline)")
		}
	}
	return ps
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	_ = host
	if port == "" {
		return fmt.Errorf("%q has no port", s)
	}
	return nil
}
