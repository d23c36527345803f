package gateway_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway"
	"github.com/edgegw/edgegw/gateway/httpapi"
	"github.com/edgegw/edgegw/gateway/internal/peers"
	"github.com/edgegw/edgegw/uplink/testpki"
)

// securePKI is what an operator hands a gateway: the plant CA's
// certificate, the gateway's client certificate and key, password files;
// and a CA that signs none of it.
type securePKI struct {
	ca, rogue           *testpki.CA
	server              testpki.Pair // the brokers' certificate, for 127.0.0.1
	caFile, rogueFile   string
	certFile, keyFile   string
	passFile, wrongFile string
	clientTLS           *tls.Config // for the test's own Kafka consumer
	serverTLSConfig     *tls.Config // the brokers'
}

const securePassword = "s3cret"

func newSecurePKI(t *testing.T) *securePKI {
	t.Helper()
	dir := t.TempDir()
	p := &securePKI{ca: testpki.NewCA(t, "plant CA"), rogue: testpki.NewCA(t, "rogue CA")}
	p.server = p.ca.Server(t, "127.0.0.1")
	client := p.ca.Client(t, "gw-test-01")
	p.caFile = p.ca.WriteCA(t, dir, "plant-ca.pem")
	p.rogueFile = p.rogue.WriteCA(t, dir, "rogue-ca.pem")
	p.certFile, p.keyFile = client.Write(t, dir, "gw-test-01")
	p.passFile = testpki.WriteFile(t, dir, "gw.pass", []byte(securePassword+"\n"))
	p.wrongFile = testpki.WriteFile(t, dir, "wrong.pass", []byte("guess\n"))
	p.clientTLS = &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{client.TLS}}
	// Both brokers require and verify a client certificate of the plant CA.
	p.serverTLSConfig = &tls.Config{Certificates: []tls.Certificate{p.server.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.ca.Pool()}
	return p
}

// startSecureKafka starts a one-broker kfake cluster on TLS with client
// certificates required, and SASL with user gw for each mechanism.
func startSecureKafka(t *testing.T, p *securePKI, mechanisms ...string) string {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(3, peers.Topics...),
		kfake.TLS(p.serverTLSConfig), kfake.EnableSASL()}
	for _, m := range mechanisms {
		opts = append(opts, kfake.Superuser(m, "gw", securePassword))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func saslOf(mechanism string) sasl.Mechanism {
	switch mechanism {
	case "PLAIN":
		return plain.Auth{User: "gw", Pass: securePassword}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: "gw", Pass: securePassword}.AsSha256Mechanism()
	}
	return scram.Auth{User: "gw", Pass: securePassword}.AsSha512Mechanism()
}

// collectSecure is collect over TLS and SASL: it reads the readings topic
// until every value in [0, n) of the four stream sensors was seen, and
// checks that each value came with the sensor it was published for.
func collectSecure(t *testing.T, addr string, p *securePKI, mechanism string, n int) map[string][]rec {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("plant.readings"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.DialTLSConfig(p.clientTLS), kgo.SASL(saslOf(mechanism)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	byKey := map[string][]rec{}
	seen := map[int]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d values reached Kafka", len(seen), n)
		}
		fs.EachError(func(topic string, part int32, err error) { t.Logf("fetch %s/%d: %v", topic, part, err) })
		fs.EachRecord(func(r *kgo.Record) {
			x := decode(t, r)
			if !strings.HasPrefix(x.Key, "s") {
				return
			}
			v := int(x.Value)
			if want := fmt.Sprintf("s%d", v%4); x.Key != want || x.Sensor != want || x.Gateway != "gw-test-01" {
				t.Errorf("value %d came as key %s sensor %s gateway %s, want sensor %s", v, x.Key, x.Sensor, x.Gateway, want)
			}
			byKey[x.Key] = append(byKey[x.Key], x)
			seen[v] = true
		})
	}
	return byKey
}

// secureConfig writes a gateway config with the stream sensors on the
// (plaintext) MQTT broker mqttURL and the given uplink.kafka tls and sasl
// blocks (YAML flow mappings; "" for none).
func secureConfig(t *testing.T, dir, mqttURL, kafkaAddr, tlsBlock, saslBlock string) string {
	t.Helper()
	y := fmt.Sprintf(`gateway: {id: gw-test-01}
http: {listen: "127.0.0.1:0"}
buffer: {path: %s/buffer.db}
mqtt: {url: %q, client_id: gw-test-01}
uplink:
  kafka:
    brokers: [%q]
    linger: 20ms
`, dir, mqttURL, kafkaAddr)
	if tlsBlock != "" {
		y += "    tls: " + tlsBlock + "\n"
	}
	if saslBlock != "" {
		y += "    sasl: " + saslBlock + "\n"
	}
	y += fourSensors
	path := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startLogged is startWith keeping the log (also on stderr with -v).
func startLogged(t *testing.T, path string, opts gateway.Options) (*running, *mqtttest.LogBuffer) {
	t.Helper()
	lb := new(mqtttest.LogBuffer)
	var w io.Writer = lb
	if testing.Verbose() {
		w = io.MultiWriter(lb, os.Stderr)
	}
	return startLogTo(t, path, opts, w), lb
}

func streamReadings(st httpapi.State) (n uint64) {
	for _, s := range st.Sensors {
		if s.ID != "temp" {
			n += s.Readings
		}
	}
	return n
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestKafkaTLSAndSASL runs the gateway against a Kafka that wants TLS, a
// client certificate and SASL, with each mechanism: every reading arrives,
// with its sensor, in order.
func TestKafkaTLSAndSASL(t *testing.T) {
	p := newSecurePKI(t)
	tlsBlock := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", p.caFile, p.certFile, p.keyFile)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			addr := startSecureKafka(t, p, mech)
			broker := peers.StartBroker(t)
			path := secureConfig(t, t.TempDir(), broker.URL(), addr, tlsBlock,
				fmt.Sprintf("{mechanism: %s, username: gw, password_file: %s}", mech, p.passFile))
			gw := start(t, path)
			pub := peers.Client(t, broker.URL(), "plc")
			peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
			const n = 400
			publishStream(t, pub, 0, n)
			if dups := checkOrder(t, collectSecure(t, addr, p, mech, n)); dups != 0 {
				t.Errorf("%d duplicates without any failure", dups)
			}
			var h httpapi.Health
			getJSON(t, "http://"+gw.g.Addr()+"/api/health", &h)
			if !h.UplinkConnected || h.UplinkError != "" {
				t.Errorf("health: %+v", h)
			}
			if err := gw.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKafkaSecurityMisconfigured: a wrong password, a CA that does not sign
// the broker, no client certificate where the broker requires one. Each
// time the gateway keeps running and serving, keeps every reading in the
// spool, and says what is wrong (health, edgegw_uplink_down, the log,
// edgegw_uplink_errors_total); once the config is fixed and the gateway
// started again on the same spool, every reading reaches Kafka in order.
func TestKafkaSecurityMisconfigured(t *testing.T) {
	p := newSecurePKI(t)
	good := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", p.caFile, p.certFile, p.keyFile)
	saslWith := func(file string) string {
		return "{mechanism: SCRAM-SHA-512, username: gw, password_file: " + file + "}"
	}
	for _, tc := range []struct {
		name                  string
		badTLS, badSASL, want string // want: the error, %s the broker
	}{
		{"wrong password", good, saslWith(p.wrongFile),
			"kafka %s: SASL SCRAM-SHA-512 authentication failed for user gw (check uplink.kafka.sasl.password_file " + p.wrongFile + ")"},
		{"untrusted CA", fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", p.rogueFile, p.certFile, p.keyFile), saslWith(p.passFile),
			"kafka %s: TLS: certificate signed by unknown authority (check uplink.kafka.tls.ca_file " + p.rogueFile + ")"},
		{"no client certificate", "{ca_file: " + p.caFile + "}", saslWith(p.passFile),
			"kafka %s: TLS: the broker requires a client certificate, and none is configured (set uplink.kafka.tls.cert_file and key_file)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startSecureKafka(t, p, "SCRAM-SHA-512")
			want := fmt.Sprintf(tc.want, addr)
			broker := peers.StartBroker(t)
			dir := t.TempDir()
			path := secureConfig(t, dir, broker.URL(), addr, tc.badTLS, tc.badSASL)

			// Misconfigured, on a fake clock run fast so that the uplink
			// has been down over a minute and edgegw_uplink_down fires.
			clock := clockwork.NewFakeClockAt(time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC))
			gw, log := startLogged(t, path, gateway.Options{Clock: clock, FlushTimeout: 100 * time.Millisecond})
			runFast(t, clock)
			base := "http://" + gw.g.Addr()
			pub := peers.Client(t, broker.URL(), "plc")
			peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
			const n1, n2 = 300, 200
			publishStream(t, pub, 0, n1)
			var st httpapi.State
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				getJSON(t, base+"/api/state", &st)
				if streamReadings(st) == n1 && st.Health.SpoolRecords >= n1 && st.Health.UplinkError == want &&
					alertState(st.Alerts, "edgegw_uplink_down") == "firing" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 30s: %d readings, health %+v, alerts %+v; want the error %q", streamReadings(st), st.Health, st.Alerts, want)
				}
			}
			if st.Health.UplinkConnected {
				t.Error("health says the uplink is connected")
			}
			for _, a := range st.Alerts {
				if a.Rule == "edgegw_uplink_down" && !strings.Contains(a.Message, want) {
					t.Errorf("edgegw_uplink_down says %q, want it to name %q", a.Message, want)
				}
			}
			if code := httpStatus(t, base+"/healthz"); code != 200 {
				t.Errorf("/healthz: %d", code)
			}
			if code := httpStatus(t, base+"/readyz"); code != 200 {
				t.Errorf("/readyz: %d", code)
			}
			if n := testutil.ToFloat64(gw.g.Metrics().UplinkErrors); n < 2 {
				t.Errorf("edgegw_uplink_errors_total = %v", n)
			}
			if !strings.Contains(getText(t, base+"/metrics"), "edgegw_uplink_connected 0") {
				t.Error("/metrics lacks edgegw_uplink_connected 0")
			}
			logged := log.String()
			if !strings.Contains(logged, "level=ERROR msg=\"kafka refused the connection") || !strings.Contains(logged, want) {
				t.Errorf("log lacks an error line with %q:\n%s", want, logged)
			}
			if strings.Count(logged, "kafka refused the connection") != 1 {
				t.Errorf("the refusal was logged more than once:\n%s", logged)
			}
			if err := gw.stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}

			// Fixed, started again on the same spool, on the real clock.
			secureConfig(t, dir, broker.URL(), addr, good, saslWith(p.passFile))
			gw = start(t, path)
			peers.WaitReading(t, pub, gw.g.Addr(), "line/temp", "20", "temp")
			publishStream(t, pub, n1, n1+n2)
			if dups := checkOrder(t, collectSecure(t, addr, p, "SCRAM-SHA-512", n1+n2)); dups != 0 {
				t.Errorf("%d duplicates", dups)
			}
			var h httpapi.Health
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				getJSON(t, "http://"+gw.g.Addr()+"/api/health", &h)
				if h.SpoolRecords == 0 && h.UplinkConnected && h.UplinkError == "" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after the fix: health %+v", h)
				}
			}
			if err := gw.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSecretFilesCheckedAtStart: a certificate, key, CA or password file
// the config names but that cannot be used stops the gateway at start,
// naming the config file, line and key. edgegw check does not read them:
// a config is checked on a PC that does not hold the gateway's secrets.
func TestSecretFilesCheckedAtStart(t *testing.T) {
	p := newSecurePKI(t)
	dir := t.TempDir()
	emptyFile := testpki.WriteFile(t, dir, "empty.pass", []byte("\n"))
	good := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", p.caFile, p.certFile, p.keyFile)
	saslWith := func(file string) string {
		return "{mechanism: SCRAM-SHA-512, username: gw, password_file: " + file + "}"
	}
	for _, tc := range []struct {
		name, tls, sasl, mqtt, want string
	}{
		{"missing CA file", "{ca_file: /nonexistent/ca.pem}", "", "",
			"gw.yaml:9: uplink.kafka.tls.ca_file: open /nonexistent/ca.pem: no such file or directory"},
		{"CA file without a certificate", "{ca_file: " + p.passFile + "}", "", "",
			"gw.yaml:9: uplink.kafka.tls.ca_file: " + p.passFile + " holds no PEM certificate"},
		{"missing certificate", fmt.Sprintf("{cert_file: /nonexistent/gw.crt, key_file: %s}", p.keyFile), "", "",
			"gw.yaml:9: uplink.kafka.tls.cert_file: /nonexistent/gw.crt with key_file " + p.keyFile + ": open /nonexistent/gw.crt: no such file or directory"},
		{"unreadable key", fmt.Sprintf("{cert_file: %s, key_file: %s}", p.certFile, dir), "", "",
			"gw.yaml:9: uplink.kafka.tls.cert_file: " + p.certFile + " with key_file " + dir + ": read " + dir + ": is a directory"},
		{"missing password file", good, saslWith("/nonexistent/gw.pass"), "",
			"gw.yaml:10: uplink.kafka.sasl.password_file: open /nonexistent/gw.pass: no such file or directory"},
		{"empty password file", good, saslWith(emptyFile), "",
			"gw.yaml:10: uplink.kafka.sasl.password_file: " + emptyFile + " is empty"},
		{"missing MQTT CA file", "", "", "{url: \"ssl://127.0.0.1:8883\", tls: {ca_file: /nonexistent/mqtt-ca.pem}}",
			"driver mqtt: mqtt.tls.ca_file: open /nonexistent/mqtt-ca.pem: no such file or directory"},
		{"missing MQTT password file", "", "", "{url: \"ssl://127.0.0.1:8883\", username: gw, password_file: /nonexistent/mqtt.pass}",
			"driver mqtt: mqtt.password_file: open /nonexistent/mqtt.pass: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			path := secureConfig(t, d, "tcp://127.0.0.1:1883", "127.0.0.1:9092", tc.tls, tc.sasl)
			if tc.mqtt != "" {
				b, _ := os.ReadFile(path)
				y := strings.Replace(string(b), `mqtt: {url: "tcp://127.0.0.1:1883", client_id: gw-test-01}`, "mqtt: "+tc.mqtt, 1)
				if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := gateway.Load(path)
			if err != nil {
				t.Fatalf("check: %v (it does not read the files)", err)
			}
			_, err = gateway.New(c, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v\nwant it to say: %s", err, tc.want)
			}
			if tc.mqtt == "" && !strings.Contains(err.Error(), path+":") {
				t.Errorf("New: %v: does not name %s", err, path)
			}
		})
	}
}

// secureMQTT is an embedded mochi broker with a TLS listener that wants a
// client certificate of the plant CA, and one user, gw.
type secureMQTT struct {
	srv *mochi.Server
	url string
}

func startSecureMQTT(t *testing.T, p *securePKI) *secureMQTT {
	t.Helper()
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	ledger := &auth.Ledger{Users: auth.Users{"gw": {Username: "gw", Password: securePassword}}}
	if err := srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: p.serverTLSConfig})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mqtttest.Stop(srv) })
	return &secureMQTT{srv: srv, url: "ssl://" + ln.Address()}
}

// mqttConfig writes a gateway config for the secure MQTT broker: an MQTT
// sensor, a simulated one (a sensor not on MQTT), a rule whose alerts go
// to MQTT, and a plaintext Kafka.
func mqttConfig(t *testing.T, dir string, b *secureMQTT, kafkaAddr string, p *securePKI, caFile, passFile string) string {
	t.Helper()
	y := fmt.Sprintf(`gateway: {id: gw-test-01}
http: {listen: "127.0.0.1:0"}
buffer: {path: %s/buffer.db}
mqtt:
  url: %s
  client_id: gw-test-01
  username: gw
  password_file: %s
  tls: {ca_file: %s, cert_file: %s, key_file: %s}
uplink: {kafka: {brokers: [%q], linger: 20ms}}
alerts: {mqtt_topic: plant/test/alerts}
sensors:
  - {id: temp, driver: mqtt, topic: line/temp, unit: C}
  - {id: parts, driver: sim, signal: parts, interval: 50ms}
rules:
  - {name: too_hot, expr: "temp > 80", severity: critical}
`, dir, b.url, passFile, caFile, p.certFile, p.keyFile, kafkaAddr)
	path := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sensorCount(st httpapi.State, id string) uint64 {
	for _, s := range st.Sensors {
		if s.ID == id {
			return s.Readings
		}
	}
	return 0
}

// TestMQTTTLSAndLogin runs both MQTT clients of the gateway (the sensors'
// and the alert publisher) against a broker on TLS that wants a client
// certificate and a user name and password. With the right files a reading
// flows and an alert is published; with a wrong password or an untrusted CA
// the gateway says so clearly, keeps serving and reading its other sensors,
// and reads MQTT again once restarted with the config fixed.
func TestMQTTTLSAndLogin(t *testing.T) {
	p := newSecurePKI(t)
	b := startSecureMQTT(t, p)
	kafka := peers.StartKafka(t)
	dir := t.TempDir()
	alerts := make(chan []byte, 10)
	if err := b.srv.Subscribe("plant/test/alerts/#", 1, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		alerts <- append([]byte(nil), pk.Payload...)
	}); err != nil {
		t.Fatal(err)
	}
	// waitTemp publishes value on line/temp until the gateway shows it.
	waitTemp := func(gw *running, value float64) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if err := b.srv.Publish("line/temp", []byte(fmt.Sprint(value)), false, 1); err != nil {
				t.Fatal(err)
			}
			var st httpapi.State
			getJSON(t, "http://"+gw.g.Addr()+"/api/state", &st)
			for _, s := range st.Sensors {
				if s.ID == "temp" && s.Value != nil && *s.Value == value {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("temp never read %v over TLS", value)
			}
		}
	}

	// Right files: a reading, and an alert published over TLS.
	path := mqttConfig(t, dir, b, kafka.Addr(), p, p.caFile, p.passFile)
	gw := start(t, path)
	waitTemp(gw, 20)
	waitTemp(gw, 92.5)
	select {
	case a := <-alerts:
		if !strings.Contains(string(a), `"rule":"too_hot"`) || !strings.Contains(string(a), `"state":"firing"`) {
			t.Errorf("alert on MQTT: %s", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert published over TLS")
	}
	waitTemp(gw, 20)
	if err := gw.stop(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, caFile, passFile, want, alertsWant string
	}{
		{"wrong password", p.caFile, p.wrongFile,
			"the broker refused the login: not authorised (check mqtt.username gw and mqtt.password_file " + p.wrongFile + ")",
			"alert broker refused the connection"},
		{"untrusted CA", p.rogueFile, p.passFile,
			"TLS: certificate signed by unknown authority (check mqtt.tls.ca_file " + p.rogueFile + ")",
			"alert broker refused the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := mqttConfig(t, dir, b, kafka.Addr(), p, tc.caFile, tc.passFile)
			gw, log := startLogged(t, path, gateway.Options{FlushTimeout: 100 * time.Millisecond})
			base := "http://" + gw.g.Addr()
			m := gw.g.Metrics()
			kind := "login"
			if strings.HasPrefix(tc.want, "TLS") {
				kind = "tls"
			}
			var st httpapi.State
			getJSON(t, base+"/api/state", &st)
			parts0 := sensorCount(st, "parts")
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				_ = b.srv.Publish("line/temp", []byte("30"), false, 1)
				getJSON(t, base+"/api/state", &st)
				if testutil.ToFloat64(m.DriverErrors.WithLabelValues("mqtt", kind)) >= 2 &&
					sensorCount(st, "parts") >= parts0+5 && strings.Contains(log.String(), tc.alertsWant) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 15s: %v refused attempts, parts %d→%d; log:\n%s",
						testutil.ToFloat64(m.DriverErrors.WithLabelValues("mqtt", kind)), parts0, sensorCount(st, "parts"), log)
				}
			}
			for _, s := range st.Sensors {
				if s.ID == "temp" && s.Value != nil && *s.Value == 30 {
					t.Error("temp read although the broker refused the connection")
				}
			}
			if code := httpStatus(t, base+"/healthz"); code != 200 {
				t.Errorf("/healthz: %d", code)
			}
			logged := log.String()
			if !strings.Contains(logged, tc.want) || !strings.Contains(logged, "level=ERROR msg=\"broker refused the connection") {
				t.Errorf("log lacks an error line with %q:\n%s", tc.want, logged)
			}
			if n := strings.Count(logged, "msg=\"broker refused the connection"); n != 1 {
				t.Errorf("%d log lines for the refusal, want 1 (rate-limited)", n)
			}
			if err := gw.stop(); err != nil {
				t.Fatal(err)
			}

			// Fixed and started again: MQTT is read.
			mqttConfig(t, dir, b, kafka.Addr(), p, p.caFile, p.passFile)
			gw = start(t, path)
			waitTemp(gw, 31)
			if err := gw.stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
