package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// writeTree writes files (path relative to a temp dir -> content) and
// returns the dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var fleet = map[string]string{
	"plant.defaults.yaml": `# the plant's Kafka and spool settings
uplink:
  kafka:
    brokers: ["kafka1.plant:9093", "kafka2.plant:9093"]
    linger: 500ms
    tls: {ca_file: /etc/edgegw/plant-ca.pem}
buffer: {max_bytes: 2GiB, when_full: drop_oldest}
http: {listen: "0.0.0.0:8080"}
`,
	"ulm/line1/line.defaults.yaml": `include: ../../plant.defaults.yaml
gateway: {site: ulm, line: line1}
mqtt: {url: "tcp://broker.line1:1883"}
sensors:
  - {id: hall_temp, driver: mqtt, topic: ulm/line1/hall/temp, unit: C}
rules:
  - {name: hall_hot, expr: "hall_temp > 30", for: 1m, severity: info}
`,
	"ulm/line1/gw-press.yaml": `include: [line.defaults.yaml]
gateway: {id: gw-line1-press}
uplink: {kafka: {linger: 100ms}}
sensors:
  - {id: press_temp, driver: mqtt, topic: ulm/line1/press/temp, unit: C}
rules:
  - {name: press_hot, expr: "press_temp > 80"}
`,
}

func TestIncludeFleet(t *testing.T) {
	dir := writeTree(t, fleet)
	gw := filepath.Join(dir, "ulm/line1/gw-press.yaml")
	c, err := Load(gw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.ID != "gw-line1-press" || c.Gateway.Site != "ulm" || c.Gateway.Line != "line1" {
		t.Errorf("gateway %+v", c.Gateway)
	}
	k := c.Uplink.Kafka
	if !reflect.DeepEqual(k.Brokers, []string{"kafka1.plant:9093", "kafka2.plant:9093"}) || k.Linger.D() != 100*time.Millisecond ||
		k.TLS == nil || k.TLS.CAFile != "/etc/edgegw/plant-ca.pem" {
		t.Errorf("kafka %+v (tls %+v): the plant's brokers and TLS with the gateway's linger expected", k, k.TLS)
	}
	if c.Buffer.MaxBytes != 2<<30 || c.HTTP.Listen != "0.0.0.0:8080" || c.MQTT.URL != "tcp://broker.line1:1883" {
		t.Errorf("buffer %+v http %+v mqtt %s", c.Buffer, c.HTTP, c.MQTT.URL)
	}
	var ids, rules []string
	for _, s := range c.Sensors {
		ids = append(ids, s.ID)
	}
	for _, r := range c.Rules {
		rules = append(rules, r.Name)
	}
	if strings.Join(ids, ",") != "hall_temp,press_temp" || strings.Join(rules, ",") != "hall_hot,press_hot" {
		t.Errorf("sensors %v rules %v: the line's first, then the gateway's", ids, rules)
	}
	wantInc := []string{filepath.Join(dir, "ulm/line1/line.defaults.yaml"), filepath.Join(dir, "plant.defaults.yaml")}
	if !reflect.DeepEqual(c.Includes, wantInc) {
		t.Errorf("Includes %v, want %v", c.Includes, wantInc)
	}

	// Flattened, the file needs none of the others and means the same.
	flat, err := Flatten(gw)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(flat), "include") {
		t.Errorf("flattened file still includes:\n%s", flat)
	}
	f, err := Parse("flat.yaml", flat)
	if err != nil {
		t.Fatalf("flattened file: %v\n%s", err, flat)
	}
	f.File, f.lines, f.Includes = c.File, c.lines, c.Includes
	if !reflect.DeepEqual(f, c) {
		t.Errorf("flattened config differs:\n%+v\n%+v\n%s", f, c, flat)
	}
}

// A problem in an included file names that file and line; a missing or
// circular include names the include.
func TestIncludeProblems(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"plant.yaml": "uplink:\n  kafka:\n    brokers: [\"k:9092\"]\n    compression: brotli\n",
		"line.yaml":  "include: plant.yaml\nsensors:\n  - {id: hall_temp, driver: mqtt, topc: x}\n",
		"gw.yaml":    "include: [line.yaml, nowhere.yaml]\ngateway: {id: gw-1}\nrules:\n  - {name: r, expr: \"true\", machine: press}\n",
		"a.yaml":     "include: b.yaml\ngateway: {id: gw-a}\n",
		"b.yaml":     "include: a.yaml\n",
		"list.yaml":  "include: {file: x}\ngateway: {id: gw-l}\n",
	})
	p := func(name string) string { return filepath.Join(dir, name) }
	cases := map[string][]string{
		"gw.yaml": {
			p("gw.yaml") + `:1: include[1]: open ` + p("nowhere.yaml") + `: no such file or directory`,
			p("gw.yaml") + `:4: rules[0].machine: no machine is named "press" (machines: none)`,
			p("line.yaml") + `:3: sensors[0].topc: unknown key (did you mean "topic"?)`,
			p("plant.yaml") + `:4: uplink.kafka.compression: "brotli" is not none, gzip, snappy, lz4 or zstd`,
		},
		"a.yaml": {
			p("a.yaml") + `:1: uplink.kafka.brokers: required: at least one host:port`,
			p("b.yaml") + `:1: include[0]: a.yaml includes itself (through [` + p("a.yaml") + ` ` + p("b.yaml") + `])`,
		},
		"list.yaml": {
			p("list.yaml") + `:1: include: expected a file name or a list of them`,
			p("list.yaml") + `:1: uplink.kafka.brokers: required: at least one host:port`,
		},
	}
	for file, want := range cases {
		_, err := Load(p(file))
		ps, ok := AsProblems(err)
		if !ok {
			t.Fatalf("%s: %v", file, err)
		}
		got := strings.Split(ps.Error(), "\n")
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", file, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
	}
}

// A device named where a file belongs (a typo, or /dev/zero) is refused at
// once rather than read for ever.
func TestIncludeRefusesDevices(t *testing.T) {
	dir := writeTree(t, map[string]string{"gw.yaml": "include: /dev/zero\ngateway: {id: gw-1}\nuplink: {kafka: {brokers: [\"k:9092\"]}}\n"})
	_, err := Load(filepath.Join(dir, "gw.yaml"))
	if err == nil || !strings.Contains(err.Error(), "include[0]: /dev/zero is not a regular file") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Load(/dev/zero): %v", err)
	}
}
