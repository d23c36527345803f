package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const base = `gateway: {id: gw-line1-01}
uplink:
  kafka:
    brokers: ["127.0.0.1:9092"]
`

func TestValidFileGetsDefaults(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(base+`sensors:
  - {id: press_temp, driver: mqtt, topic: line1/press/temp, value: "$.value", unit: C}
  - id: press_running
    driver: gpio
    pin: GPIO17
    debounce: 20ms
    address: 0x76
rules:
  - {name: press_overtemp, expr: "press_temp > 80", for: 10s}
machines:
  - {name: press, running: "press_running == 1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"http.listen", c.HTTP.Listen, DefaultListen},
		{"buffer.path", c.Buffer.Path, DefaultBufferPath},
		{"buffer.max_bytes", c.Buffer.MaxBytes, Size(1 << 30)},
		{"buffer.when_full", c.Buffer.WhenFull, DropOldest},
		{"buffer.commit_interval", c.Buffer.CommitInterval.D(), 200 * time.Millisecond},
		{"buffer.mode", c.Buffer.Mode, ModeDurable},
		{"buffer.outage_after", c.Buffer.OutageAfter.D(), time.Second},
		{"mqtt.url", c.MQTT.URL, DefaultMQTTURL},
		{"mqtt.client_id", c.MQTT.ClientID, "gw-line1-01"},
		{"mqtt.qos", *c.MQTT.QoS, 1},
		{"kafka.topic", c.Uplink.Kafka.Topic, "plant.readings"},
		{"kafka.alerts_topic", c.Uplink.Kafka.AlertsTopic, "plant.alerts"},
		{"kafka.events_topic", c.Uplink.Kafka.EventsTopic, "plant.events"},
		{"kafka.batch_size", c.Uplink.Kafka.BatchSize, 1000},
		{"kafka.linger", c.Uplink.Kafka.Linger.D(), 200 * time.Millisecond},
		{"kafka.compression", c.Uplink.Kafka.Compression, "zstd"},
		{"sensor debounce", c.Sensors[1].Debounce.D(), 20 * time.Millisecond},
		{"sensor address hex", c.Sensors[1].Address, 0x76},
		{"rule for", c.Rules[0].For.D(), 10 * time.Second},
		{"rule severity", c.Rules[0].Severity, "warning"},
		{"machine min_downtime", c.Machines[0].MinDowntime.D(), 30 * time.Second},
		{"line of sensors[1].pin", c.Line("sensors[1].pin"), 9},
		{"line of an unset field falls back to its parent", c.Line("sensors[1].topic"), 7},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestAlertsAnnunciator(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(base+"alerts: {ack_token_file: /etc/edgegw/ack_token, annunciator: {pin: GPIO22}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Alerts.Annunciator
	if c.Alerts.AckTokenFile != "/etc/edgegw/ack_token" || a == nil || a.Pin != "GPIO22" || a.ActiveLow || a.Blink != DefaultBlink {
		t.Fatalf("alerts = %+v, annunciator %+v", c.Alerts, a)
	}
	c, err = Parse("gw.yaml", []byte(base))
	if err != nil || c.Alerts.Annunciator != nil || c.Alerts.AckTokenFile != "" {
		t.Fatalf("without alerts: %v, %+v", err, c.Alerts)
	}
}

// Each class of error, with the exact message a plant engineer sees.
func TestProblems(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"unknown top-level key", base + "sensorz: []\n",
			[]string{`gw.yaml:5: sensorz: unknown key (did you mean "sensors"?)`}},
		{"unknown sensor key", base + "sensors:\n  - {id: a, driver: mqtt, topc: x}\n",
			[]string{`gw.yaml:6: sensors[0].topc: unknown key (did you mean "topic"?)`}},
		{"unknown key far from any", base + "http: {listen: \"127.0.0.1:1\", colour: red}\n",
			[]string{`gw.yaml:5: http.colour: unknown key (known: listen, pprof)`}},
		{"bad sensor id", base + "sensors:\n  - {id: Press-Temp, driver: mqtt}\n",
			[]string{`gw.yaml:6: sensors[0].id: "Press-Temp" must match [a-z][a-z0-9_]* so that rules can name it`}},
		{"duplicate sensor id", base + "sensors:\n  - {id: a, driver: mqtt}\n  - {id: a, driver: mqtt}\n",
			[]string{`gw.yaml:7: sensors[1].id: duplicate sensor id "a" (first at line 6)`}},
		{"missing sensor id and driver", base + "sensors:\n  - {unit: C}\n",
			[]string{`gw.yaml:6: sensors[0].driver: required`, `gw.yaml:6: sensors[0].id: required`}},
		{"bad duration", base + "sensors:\n  - {id: a, driver: mqtt, interval: 5 seconds}\n",
			[]string{`gw.yaml:6: sensors[0].interval: bad duration "5 seconds" (use Go durations such as 500ms, 10s, 2m)`}},
		{"duration without unit", base + "rules:\n  - {name: r, expr: \"true\", for: 10}\n",
			[]string{`gw.yaml:6: rules[0].for: duration "10" has no unit (write e.g. 10s or 10ms)`}},
		{"negative duration", base + "buffer: {commit_interval: -1s}\n",
			[]string{`gw.yaml:5: buffer.commit_interval: duration "-1s" is negative`}},
		{"bad size", base + "buffer: {max_bytes: 1GB}\n",
			[]string{`gw.yaml:5: buffer.max_bytes: bad size "1GB" (use bytes or KiB, MiB, GiB, e.g. 512MiB)`}},
		{"too small size", base + "buffer: {max_bytes: 1KiB}\n",
			[]string{`gw.yaml:5: buffer.max_bytes: 1KiB is too small (at least 64KiB)`}},
		{"bad when_full", base + "buffer: {when_full: drop_newest}\n",
			[]string{`gw.yaml:5: buffer.when_full: "drop_newest" is not drop_oldest or reject_new`}},
		{"bad mode", base + "buffer: {mode: memory}\n",
			[]string{`gw.yaml:5: buffer.mode: "memory" is not durable or outage`}},
		{"outage_after under twice the linger", base + "    linger: 300ms\nbuffer: {mode: outage, outage_after: 500ms}\n",
			[]string{`gw.yaml:6: buffer.outage_after: 500ms is too short: at least 600ms (100ms, and twice uplink.kafka.linger)`}},
		{"missing gateway id", "gateway: {site: ulm}\nuplink: {kafka: {brokers: [\"k:9092\"]}}\n",
			[]string{`gw.yaml:1: gateway.id: required (e.g. gw-line1-01)`}},
		{"missing brokers", "gateway: {id: gw}\n",
			[]string{`gw.yaml:1: uplink.kafka.brokers: required: at least one host:port`}},
		{"broker without port", "gateway: {id: gw}\nuplink: {kafka: {brokers: [kafka1]}}\n",
			[]string{`gw.yaml:2: uplink.kafka.brokers[0]: "kafka1" is not host:port`}},
		{"bad compression", base + "    compression: brotli\n",
			[]string{`gw.yaml:5: uplink.kafka.compression: "brotli" is not none, gzip, snappy, lz4 or zstd`}},
		{"inline password is no key", base + "    sasl: {mechanism: PLAIN, username: u, password: p}\n",
			[]string{
				`gw.yaml:5: uplink.kafka.sasl.password: unknown key (did you mean "password_file"?)`,
				`gw.yaml:5: uplink.kafka.sasl.password_file: required (secrets are read from files, never inline)`,
			}},
		{"wrong type", base + "sensors:\n  - {id: a, driver: modbus, slave: three}\n",
			[]string{`gw.yaml:6: sensors[0].slave: expected a whole number, got "three"`}},
		{"list where a mapping belongs", base + "http: [a]\n",
			[]string{`gw.yaml:5: http: expected a mapping of keys, got a list`}},
		{"bad severity", base + "rules:\n  - {name: r, expr: \"true\", severity: crit}\n",
			[]string{`gw.yaml:6: rules[0].severity: "crit" is not info, warning or critical`}},
		{"rule without expr", base + "rules:\n  - {name: r}\n",
			[]string{`gw.yaml:6: rules[0].expr: required: a condition over sensor ids, e.g. press_temp > 80`}},
		{"duplicate rule", base + "rules:\n  - {name: r, expr: \"true\"}\n  - {name: r, expr: \"true\"}\n",
			[]string{`gw.yaml:7: rules[1].name: duplicate rule name "r" (first at line 6)`}},
		{"duplicate key", base + "http: {listen: \"a:1\", listen: \"b:2\"}\n",
			[]string{`gw.yaml:5: http.listen: duplicate key (first at line 5)`}},
		{"wildcard alert topic", base + "alerts: {mqtt_topic: plant/+/alerts}\n",
			[]string{`gw.yaml:5: alerts.mqtt_topic: "plant/+/alerts": a topic to publish to cannot hold the wildcards + or #`}},
		{"annunciator without pin", base + "alerts: {annunciator: {active_low: true}}\n",
			[]string{`gw.yaml:5: alerts.annunciator.pin: required: the output's board name (GPIO22) or number`}},
		{"annunciator blink too short", base + "alerts: {annunciator: {pin: GPIO22, blink: 10ms}}\n",
			[]string{`gw.yaml:5: alerts.annunciator.blink: 10ms is too short (at least 100ms)`}},
		{"inline ack token is no key", base + "alerts: {ack_token: s3cret}\n",
			[]string{`gw.yaml:5: alerts.ack_token: unknown key (did you mean "ack_token_file"?)`}},
		{"sensor of an unknown machine", base + "machines:\n  - {name: press, running: \"true\"}\nsensors:\n  - {id: a, driver: mqtt, machine: oven}\n",
			[]string{`gw.yaml:8: sensors[0].machine: no machine is named "oven" (machines: press)`}},
		{"rule of an unknown machine", base + "rules:\n  - {name: r, expr: \"true\", machine: press}\n",
			[]string{`gw.yaml:6: rules[0].machine: no machine is named "press" (machines: none)`}},
		{"syntax error", base + "sensors: [\n",
			[]string{`gw.yaml:5: YAML syntax: did not find expected node content`}},
		{"empty file", "\n", []string{`gw.yaml:1: the file is empty`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte(tc.yaml))
			ps, ok := AsProblems(err)
			if !ok {
				t.Fatalf("err = %v, want Problems", err)
			}
			got := strings.Split(ps.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestMergeKeys(t *testing.T) {
	c, err := Parse("gw.yaml", []byte(base+`sensors:
  - &temp {id: t1, driver: mqtt, unit: C, topic: a}
  - {<<: *temp, id: t2, topic: b}
`))
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sensors[1]; s.ID != "t2" || s.Unit != "C" || s.Topic != "b" {
		t.Fatalf("merged sensor = %+v", s)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(p, []byte("gateway: {id: X}\nuplink: {kafka: {brokers: [\"k:1\"]}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if want := p + `:1: gateway.id: "X" must match [a-z0-9][a-z0-9-]*`; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if _, err := Load(p + ".missing"); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]Size{"4096": 4096, "64KiB": 64 << 10, "1.5MiB": 3 << 19, "1GiB": 1 << 30, "2 GiB": 2 << 30, "10B": 10} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1KiB", "1GB", "one"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q): no error", bad)
		}
	}
	if s := Size(3 << 19).String(); s != "1536KiB" {
		t.Errorf("String = %s", s)
	}
}
