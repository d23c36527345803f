package mqtt

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgegw/edgegw/drivers"
	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/gateway/reading"
	"github.com/edgegw/edgegw/uplink/testpki"
)

// secureBroker is an embedded mochi broker with a TLS listener that wants
// a client certificate of ca, and a login ledger of one user.
type secureBroker struct {
	srv      *mochi.Server
	addr     string
	versions *versionHook
}

// versionHook records the protocol version of every CONNECT.
type versionHook struct {
	mochi.HookBase
	mu   sync.Mutex
	seen []byte
}

func (h *versionHook) ID() string           { return "versions" }
func (h *versionHook) Provides(b byte) bool { return b == mochi.OnConnect }
func (h *versionHook) OnConnect(_ *mochi.Client, pk packets.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, pk.ProtocolVersion)
	return nil
}

func (h *versionHook) all() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]byte(nil), h.seen...)
}

func startSecureBroker(t *testing.T, ca *testpki.CA, user, password string) *secureBroker {
	t.Helper()
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	ledger := &auth.Ledger{Users: auth.Users{user: {Username: auth.RString(user), Password: auth.RString(password)}}}
	if err := srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatal(err)
	}
	versions := new(versionHook)
	if err := srv.AddHook(versions, nil); err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	ln := listeners.NewTCP(listeners.Config{ID: "tls", Address: "127.0.0.1:0", TLSConfig: tc})
	if err := srv.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mqtttest.Stop(srv) })
	return &secureBroker{srv: srv, addr: ln.Address(), versions: versions}
}

// pki is what a gateway is given: the plant CA's certificate, its own
// client certificate and key, a password file; plus a CA that signs none
// of it.
type pki struct {
	ca, rogue                  *testpki.CA
	caFile, rogueFile          string
	certFile, keyFile          string
	passFile, wrongFile, empty string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{ca: testpki.NewCA(t, "plant CA"), rogue: testpki.NewCA(t, "rogue CA")}
	p.caFile = p.ca.WriteCA(t, dir, "ca.pem")
	p.rogueFile = p.rogue.WriteCA(t, dir, "rogue.pem")
	p.certFile, p.keyFile = p.ca.Client(t, "gw-test-01").Write(t, dir, "gw")
	p.passFile = testpki.WriteFile(t, dir, "mqtt.pass", []byte("s3cret\n"))
	p.wrongFile = testpki.WriteFile(t, dir, "wrong.pass", []byte("guess\n"))
	p.empty = testpki.WriteFile(t, dir, "empty.pass", []byte("\n"))
	return p
}

// chanSink passes readings to a channel and acknowledges them.
type chanSink chan reading.Reading

func (s chanSink) Emit(ctx context.Context, r reading.Reading, ack func()) error {
	select {
	case s <- r:
		if ack != nil {
			ack()
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type secureRun struct {
	d     *Driver
	m     *metrics.Set
	log   *mqtttest.LogBuffer
	sink  chanSink
	clock clockwork.Clock // nil: the real one
}

// runSecure starts the driver with m against b, with one sensor on
// line/temp.
func runSecure(t *testing.T, m config.MQTT, clock ...clockwork.Clock) *secureRun {
	t.Helper()
	r := &secureRun{m: metrics.New(), log: new(mqtttest.LogBuffer), sink: make(chanSink, 16)}
	if len(clock) > 0 {
		r.clock = clock[0]
	}
	env := secureEnv(m, r)
	tm := defaultTiming
	tm.connectRetry, tm.maxReconnect, tm.ackGrace, tm.connectTimeout = 20*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, time.Second
	d, err := newDriver(env, []config.Sensor{{ID: "temp", Driver: Name, Topic: "line/temp"}}, tm)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx, r.sink); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *secureRun) errors(kind string) float64 {
	return testutil.ToFloat64(r.m.DriverErrors.WithLabelValues(Name, kind))
}

// publishUntilRead publishes on line/temp until the driver emits a reading.
func publishUntilRead(t *testing.T, b *secureBroker, r *secureRun) reading.Reading {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case got := <-r.sink:
			return got
		case <-tick.C:
			if err := b.srv.Publish("line/temp", []byte("21.5"), false, 1); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("no reading over TLS; log:\n%s", r.log)
		}
	}
}

func TestTLSAndLogin(t *testing.T) {
	p := newPKI(t)
	b := startSecureBroker(t, p.ca, "gw", "s3cret")
	good := config.MQTT{URL: "ssl://" + b.addr, ClientID: "gw-test-01", Username: "gw", PasswordFile: p.passFile,
		TLS: &config.TLS{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}

	t.Run("right credentials and certificates", func(t *testing.T) {
		for _, scheme := range []string{"ssl", "tls", "mqtts"} {
			m := good
			m.URL = scheme + "://" + b.addr
			r := runSecure(t, m)
			if got := publishUntilRead(t, b, r); got.Sensor != "temp" || got.Value != 21.5 {
				t.Errorf("%s: reading %+v", scheme, got)
			}
		}
	})

	// Each refusal: a clear error naming what to check, counted per
	// attempt, logged once however often it is retried, and no reading.
	for _, tc := range []struct {
		name, kind, want string
		edit             func(m *config.MQTT)
	}{
		{"wrong password", KindLogin,
			`the broker refused the login: not authorised (check mqtt.username gw and mqtt.password_file ` + p.wrongFile + ")",
			func(m *config.MQTT) { m.PasswordFile = p.wrongFile }},
		{"no login", KindLogin,
			"the broker refused the login: not authorised (it may want a user name and password: set mqtt.username and mqtt.password_file)",
			func(m *config.MQTT) { m.Username, m.PasswordFile = "", "" }},
		{"untrusted CA", KindTLS,
			"TLS: certificate signed by unknown authority (check mqtt.tls.ca_file " + p.rogueFile + ")",
			func(m *config.MQTT) { m.TLS.CAFile = p.rogueFile }},
		{"system CAs", KindTLS,
			"TLS: certificate signed by unknown authority (no mqtt.tls.ca_file is set, and the system's CAs do not trust it)",
			func(m *config.MQTT) { m.TLS = nil }},
		{"no client certificate", KindTLS,
			"TLS: the broker requires a client certificate, and none is configured (set mqtt.tls.cert_file and key_file)",
			func(m *config.MQTT) { m.TLS.CertFile, m.TLS.KeyFile = "", "" }},
		{"host not in the certificate", KindTLS,
			"TLS: certificate is not valid for any names, but wanted to match localhost (the broker's certificate does not name the host of mqtt.url)",
			func(m *config.MQTT) { m.URL = "ssl://localhost" + b.addr[strings.LastIndex(b.addr, ":"):] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good
			tlsCopy := *good.TLS
			m.TLS = &tlsCopy
			tc.edit(&m)
			r := runSecure(t, m)
			mqtttest.Eventually(t, 10*time.Second, "three refused attempts", func() bool { return r.errors(tc.kind) >= 3 })
			if !strings.Contains(r.log.String(), tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, r.log)
			}
			if n := strings.Count(r.log.String(), "broker refused the connection"); n != 1 {
				t.Errorf("%d log lines for %v attempts, want 1:\n%s", n, r.errors(tc.kind), r.log)
			}
			select {
			case got := <-r.sink:
				t.Errorf("a reading without a connection: %+v", got)
			default:
			}
			if r.d.Connected() {
				t.Error("connected")
			}
		})
	}
	// MQTT 3.1.1 only: a refused login is not tried again with MQTT 3.1,
	// whose answer would hide the first one.
	for _, v := range b.versions.all() {
		if v != 4 {
			t.Fatalf("CONNECT with protocol version %d; versions seen: %v", v, b.versions.all())
		}
	}
}

// TestRefusedLoginLogRateLimited: a login refused on every retry is logged
// at once, then once a minute with the number of attempts not logged; a
// different refusal is logged at once.
func TestRefusedLoginLogRateLimited(t *testing.T) {
	p := newPKI(t)
	b := startSecureBroker(t, p.ca, "gw", "s3cret")
	clock := clockwork.NewFakeClock()
	r := runSecure(t, config.MQTT{URL: "ssl://" + b.addr, ClientID: "gw-test-01", Username: "gw", PasswordFile: p.wrongFile,
		TLS: &config.TLS{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}, clock)
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(r.log.String(), "\n") {
			if strings.Contains(l, "broker refused the connection") {
				out = append(out, l)
			}
		}
		return out
	}
	mqtttest.Eventually(t, 10*time.Second, "five refused attempts", func() bool { return r.errors(KindLogin) >= 5 })
	if n := len(lines()); n != 1 {
		t.Fatalf("%d lines after %v attempts, want 1", n, r.errors(KindLogin))
	}
	clock.Advance(time.Minute)
	mqtttest.Eventually(t, 10*time.Second, "a reminder", func() bool { return len(lines()) == 2 })
	if l := lines()[1]; strings.Contains(l, "failed_attempts_not_logged=0") || !strings.Contains(l, "not authorised") {
		t.Errorf("reminder: %s", l)
	}
}

// TestSecureFilesAtStart: a file the config names that cannot be used
// stops the driver from being built, with the key in the error.
func TestSecureFilesAtStart(t *testing.T) {
	p := newPKI(t)
	base := config.MQTT{URL: "ssl://127.0.0.1:8883", Username: "gw", PasswordFile: p.passFile,
		TLS: &config.TLS{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}}
	for _, tc := range []struct {
		name, want string
		edit       func(m *config.MQTT)
	}{
		{"missing password file", "mqtt.password_file: open /nonexistent/mqtt.pass: no such file or directory",
			func(m *config.MQTT) { m.PasswordFile = "/nonexistent/mqtt.pass" }},
		{"empty password file", "mqtt.password_file: " + p.empty + " is empty",
			func(m *config.MQTT) { m.PasswordFile = p.empty }},
		{"missing CA file", "mqtt.tls.ca_file: open /nonexistent/ca.pem: no such file or directory",
			func(m *config.MQTT) { m.TLS.CAFile = "/nonexistent/ca.pem" }},
		{"CA file without a certificate", "mqtt.tls.ca_file: " + p.passFile + " holds no PEM certificate",
			func(m *config.MQTT) { m.TLS.CAFile = p.passFile }},
		{"missing key", "mqtt.tls.cert_file " + p.certFile + " with key_file /nonexistent/gw.key: open /nonexistent/gw.key: no such file or directory",
			func(m *config.MQTT) { m.TLS.KeyFile = "/nonexistent/gw.key" }},
		{"key of another certificate", "mqtt.tls.cert_file " + p.certFile + " with key_file " + p.caFile + ": tls:",
			func(m *config.MQTT) { m.TLS.KeyFile = p.caFile }},
		{"tls with a plaintext url", "mqtt.tls: needs an ssl://, tls://, mqtts:// or wss:// url, not tcp://",
			func(m *config.MQTT) { m.URL = "tcp://127.0.0.1:1883" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			tlsCopy := *base.TLS
			m.TLS = &tlsCopy
			tc.edit(&m)
			_, err := newDriver(secureEnv(m, &secureRun{m: metrics.New(), log: new(mqtttest.LogBuffer)}),
				[]config.Sensor{{ID: "temp", Driver: Name, Topic: "line/temp"}}, defaultTiming)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("err = %v, want %s…", err, tc.want)
			}
		})
	}
}

// TestTLSConfig checks what each url and tls block give paho.
func TestTLSConfig(t *testing.T) {
	p := newPKI(t)
	if c, err := TLSConfig(config.MQTT{URL: "tcp://b:1883"}); c != nil || err != nil {
		t.Errorf("tcp: %v, %v", c, err)
	}
	c, err := TLSConfig(config.MQTT{URL: "tls://broker.plant:8883"})
	if err != nil || c == nil || c.RootCAs != nil || c.ServerName != "broker.plant" || c.InsecureSkipVerify {
		t.Errorf("tls:// without a block: %+v, %v (want system roots, server name from the url)", c, err)
	}
	c, err = TLSConfig(config.MQTT{URL: "wss://broker.plant/mqtt", TLS: &config.TLS{CAFile: p.caFile, CertFile: p.certFile, KeyFile: p.keyFile}})
	if err != nil || c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("wss:// with a block: %+v, %v", c, err)
	}
	if !c.RootCAs.Equal(p.ca.Pool()) {
		t.Error("RootCAs are not the CA of ca_file")
	}
}

func secureEnv(m config.MQTT, r *secureRun) drivers.Env {
	return drivers.Env{Gateway: config.Gateway{ID: "gw-test-01"}, MQTT: m, Metrics: r.m, Clock: r.clock,
		Logger: slog.New(slog.NewTextHandler(r.log, nil))}
}
