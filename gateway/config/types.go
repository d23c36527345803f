// Package config is edgegw's YAML schema: the types mirror the file one to
// one, Load fills in defaults and reports every problem as
// `FILE:LINE: path.to.field: what is wrong`.
//
// Loading is strict: an unknown key is an error, as is a value of the wrong
// type. Checks that need another package (a rule expression compiling, a
// driver's own fields) are made by the caller, which reports them through
// Config.Problem so they carry the same file and line.
package config

// Config is one gateway's configuration file.
type Config struct {
	Gateway  Gateway   `yaml:"gateway"`
	HTTP     HTTP      `yaml:"http"`
	Buffer   Buffer    `yaml:"buffer"`
	MQTT     MQTT      `yaml:"mqtt"`
	Uplink   Uplink    `yaml:"uplink"`
	Sensors  []Sensor  `yaml:"sensors"`
	Machines []Machine `yaml:"machines"`
	Rules    []Rule    `yaml:"rules"`
	Alerts   Alerts    `yaml:"alerts"`

	// File is the path the config was loaded from.
	File string `yaml:"-"`
	// Includes are the files File includes, directly or through another
	// include, in the order they were read (see include.go).
	Includes []string `yaml:"-"`
	// lines maps a field path ("sensors[2].topic") to where it was
	// written: File or one of the Includes.
	lines map[string]pos
}

// pos is a place in a config file.
type pos struct {
	file string
	line int
}

// Gateway names this gateway. ID is written into every Kafka record.
type Gateway struct {
	ID   string `yaml:"id"`   // required; [a-z0-9][a-z0-9-]*
	Site string `yaml:"site"` // optional, for the dashboard and fleet layout
	Line string `yaml:"line"` // optional, for the dashboard and fleet layout
}

// HTTP is the dashboard, API and metrics server.
type HTTP struct {
	Listen string `yaml:"listen"` // default "127.0.0.1:8080"; "" after defaults never happens
	// Pprof serves Go's profiles under /debug/pprof/ for diagnosis in the
	// field. Off by default; when on, only loopback clients and clients
	// presenting the acknowledgement token get them.
	Pprof bool `yaml:"pprof"`
}

// Buffer is the bbolt store-and-forward spool.
type Buffer struct {
	Path     string `yaml:"path"`      // default /var/lib/edgegw/buffer.db
	MaxBytes Size   `yaml:"max_bytes"` // default 1GiB: bound on the records' encoded bytes
	WhenFull string `yaml:"when_full"` // drop_oldest (default) | reject_new
	// CommitInterval is the longest a reading waits for its group commit,
	// and so the window a power loss can take from sources that cannot
	// resend (GPIO, I2C, serial, MQTT QoS 0). Default 200ms.
	CommitInterval Duration `yaml:"commit_interval"`
	// Mode is durable (default: every record is committed to the file) or
	// outage (records wait in memory while Kafka acknowledges them within
	// OutageAfter, and are written to the file only while it does not:
	// far fewer writes to an SD card, a longer loss window on power loss;
	// see the README).
	Mode string `yaml:"mode"`
	// OutageAfter is, in outage mode, how long a record may wait in memory
	// for Kafka's acknowledgement before the spool writes everything to the
	// file: the worst case of what a power loss can take from sources that
	// cannot resend. Default 1s; at least twice uplink.kafka.linger.
	OutageAfter Duration `yaml:"outage_after"`
}

// MQTT is the plant-floor broker: MQTT sensors read from it and alerts are
// published to it.
type MQTT struct {
	URL      string `yaml:"url"`       // default tcp://127.0.0.1:1883; tcp://, ssl://, ws://
	ClientID string `yaml:"client_id"` // default the gateway id; must be stable for the persistent session
	Username string `yaml:"username"`  // optional
	// PasswordFile holds the password (trailing newline ignored); secrets
	// are never inline.
	PasswordFile string   `yaml:"password_file"`
	QoS          *int     `yaml:"qos"`        // subscription QoS, 0 or 1; default 1
	KeepAlive    Duration `yaml:"keep_alive"` // default 30s
	// TLS verifies the broker against ca_file (default: the system's CAs)
	// and presents cert_file/key_file if given. It needs an ssl://, tls://,
	// mqtts:// or wss:// url; such a url without it verifies the broker
	// against the system's CAs. Optional.
	TLS *TLS `yaml:"tls"`
}

// Uplink is where records go.
type Uplink struct {
	Kafka Kafka `yaml:"kafka"`
}

// Kafka is the producer configuration.
type Kafka struct {
	Brokers     []string `yaml:"brokers"`      // required, host:port
	Topic       string   `yaml:"topic"`        // readings; default plant.readings
	AlertsTopic string   `yaml:"alerts_topic"` // default plant.alerts
	EventsTopic string   `yaml:"events_topic"` // default plant.events
	BatchSize   int      `yaml:"batch_size"`   // records per produce request; default 1000
	Linger      Duration `yaml:"linger"`       // how long a batch waits to fill; default 200ms
	Compression string   `yaml:"compression"`  // none|gzip|snappy|lz4|zstd; default zstd
	TLS         *TLS     `yaml:"tls"`          // optional
	SASL        *SASL    `yaml:"sasl"`         // optional
}

// TLS is a client TLS setup. With none of the files set, the system roots
// verify the server.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// SASL is Kafka authentication.
type SASL struct {
	Mechanism    string `yaml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Sensor is one measured value. Which of the fields apply depends on
// Driver; each driver validates its own.
type Sensor struct {
	ID       string   `yaml:"id"`       // required; [a-z][a-z0-9_]*, so rules can name it
	Driver   string   `yaml:"driver"`   // required; a registered driver
	Unit     string   `yaml:"unit"`     // optional, carried with every reading
	Interval Duration `yaml:"interval"` // polling or heartbeat period, for drivers that poll
	// Machine, if set, names the machine this sensor belongs to, for the
	// dashboard's per-machine view. Without it, a sensor that one
	// machine's running or reason names belongs to that machine.
	Machine string `yaml:"machine"`

	// mqtt
	Topic string `yaml:"topic"` // topic filter; + and # wildcards allowed
	Value string `yaml:"value"` // JSON path such as $.a.b; empty: the payload is the number

	// sim
	Signal  string   `yaml:"signal"`   // running | parts | temperature | pressure
	Seed    int64    `yaml:"seed"`     // random seed; the same seed gives the same line
	RunFor  Duration `yaml:"run_for"`  // mean running period of the simulated machine
	StopFor Duration `yaml:"stop_for"` // mean stop of the simulated machine

	// gpio
	Pin      string   `yaml:"pin"`      // board name (GPIO17) or number (17)
	Pull     string   `yaml:"pull"`     // up | down | none (default none)
	Invert   bool     `yaml:"invert"`   // active low: a low level reads as 1
	Debounce Duration `yaml:"debounce"` // a level must hold this long to count
	Mode     string   `yaml:"mode"`     // state (default) | counter | rate (of the counter on the same pin)
	Edge     string   `yaml:"edge"`     // counter edges: rising (default) | falling | both

	// i2c
	Bus       string  `yaml:"bus"`        // I2C bus name or number, e.g. "1" for /dev/i2c-1
	Device    string  `yaml:"device"`     // chip: bme280, bmp280, sht3x, sht4x, ads1115, ina219, register
	Address   int     `yaml:"address"`    // 7-bit address, e.g. 0x76
	Channel   string  `yaml:"channel"`    // which value of a multi-value chip (temperature, humidity, a0, current, ...)
	Gain      float64 `yaml:"gain"`       // ads1115 full-scale range in volts (6.144, 4.096, 2.048, ...)
	ShuntOhms float64 `yaml:"shunt_ohms"` // ina219 shunt resistor
	Length    int     `yaml:"length"`     // generic register read: bytes to read
	ByteOrder string  `yaml:"byte_order"` // generic register read: big (default) | little

	// serial and modbus
	Port     string   `yaml:"port"`      // device path, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...
	Baud     int      `yaml:"baud"`      // default 9600
	DataBits int      `yaml:"data_bits"` // default 8
	Parity   string   `yaml:"parity"`    // none (default) | even | odd
	StopBits int      `yaml:"stop_bits"` // 1 (default) | 2
	Timeout  Duration `yaml:"timeout"`   // a request's answer or a read's wait

	// serial line protocols
	Pattern   string `yaml:"pattern"`   // regular expression with a named group
	Group     string `yaml:"group"`     // the pattern's group carrying this sensor's value; default value
	Delimiter string `yaml:"delimiter"` // line end; default "\n" (\r is trimmed)
	Request   string `yaml:"request"`   // sent every interval to devices that answer a poll
	MaxLine   int    `yaml:"max_line"`  // longer lines are counted and skipped; default 256

	// modbus (and scale/offset for i2c analog inputs)
	Slave     int     `yaml:"slave"`      // 1..247
	Register  int     `yaml:"register"`   // 0-based register or coil address
	Kind      string  `yaml:"kind"`       // holding (default) | input | coil | discrete
	Type      string  `yaml:"type"`       // int16 | uint16 (default) | int32 | uint32 | float32
	Scale     float64 `yaml:"scale"`      // value = raw * scale + offset; default scale 1
	Offset    float64 `yaml:"offset"`     //
	WordOrder string  `yaml:"word_order"` // 32-bit types: high_first (default) | low_first
}

// Machine is a machine whose downtime is tracked.
type Machine struct {
	Name        string   `yaml:"name"`         // required
	Running     string   `yaml:"running"`      // required expression, true while running
	MinDowntime Duration `yaml:"min_downtime"` // a shorter stop is no event; default 30s
	// Reason, if set, is the id of a sensor carrying the stop's reason
	// code; its last value seen during a stop is shown with the machine.
	Reason string `yaml:"reason"`
	// Line is the production line the machine stands on, for the
	// dashboard's per-line view; default gateway.line.
	Line string `yaml:"line"`
}

// Rule is an alert rule.
type Rule struct {
	Name string   `yaml:"name"` // required; unique; [a-z][a-z0-9_]*
	Expr string   `yaml:"expr"` // required boolean expression over sensor ids
	For  Duration `yaml:"for"`  // how long expr must hold before firing; default 0
	// Clear, if set, is the expression that resolves a firing alert (for
	// hysteresis: fire at temp > 80, clear at temp < 75); without it the
	// alert resolves when expr turns false.
	Clear string `yaml:"clear"`
	// KeepFiringFor keeps an alert firing this long after its condition
	// cleared, so a flapping signal does not flap the alert. Default 0.
	KeepFiringFor Duration          `yaml:"keep_firing_for"`
	Severity      string            `yaml:"severity"` // info | warning | critical; default warning
	Message       string            `yaml:"message"`  // text/template; {{ .Value }} {{ .Rule }} {{ .Since }}
	Labels        map[string]string `yaml:"labels"`   // optional, carried to the dashboard
	// Machine, if set, names the machine the alert is about, for the
	// dashboard's per-machine view. Without it, a rule whose sensors all
	// belong to one machine belongs to that machine.
	Machine string `yaml:"machine"`
}

// Alerts says where alert transitions go besides Kafka.
type Alerts struct {
	// MQTTTopic is the prefix alerts are published under, retained, QoS 1,
	// as <mqtt_topic>/<rule>. Empty: no MQTT alerts.
	MQTTTopic string `yaml:"mqtt_topic"`
	// AckTokenFile holds the bearer token an operator presents to
	// acknowledge an alert (POST /api/alerts/<rule>/ack); trailing newline
	// ignored, secrets are never inline. Empty: acknowledging is disabled
	// and the route answers 403.
	AckTokenFile string `yaml:"ack_token_file"`
	// Annunciator is an optional GPIO output (stack light, siren): off
	// while nothing fires, on while something fires, blinking while a
	// critical alert fires unacknowledged. Nil: none.
	Annunciator *Annunciator `yaml:"annunciator"`
}

// Annunciator is the output driven by the alert states.
type Annunciator struct {
	Pin       string   `yaml:"pin"`        // required; board name (GPIO22) or number (22)
	ActiveLow bool     `yaml:"active_low"` // for relay boards that switch on a low level; default false
	Blink     Duration `yaml:"blink"`      // blink period while a critical alert is unacknowledged; default 500ms
}
