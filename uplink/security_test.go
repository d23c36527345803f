package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	kplain "github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/edgegw/edgegw/uplink/testpki"
)

// selfSigned returns a server config for 127.0.0.1 and a client config
// that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	ca := testpki.NewCA(t, "kfake-ca")
	return &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}}, &tls.Config{RootCAs: ca.Pool()}
}

// TestTLSAndSASL produces over TLS with SASL PLAIN, as a plant's Kafka
// would ask for, and checks that a wrong password counts as an outage.
func TestTLSAndSASL(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
	c := newCluster(t, kfake.TLS(srvTLS), kfake.EnableSASL(), kfake.Superuser("PLAIN", "gw-test-01", "s3cret"))

	bad := startUplink(t, c.ListenAddrs(), newMemSource(), func(o *Options) {
		o.TLS, o.SASL = cliTLS, plain.Mechanism{Username: "gw-test-01", Password: "wrong"}
	})
	bad.src.Append(mixedRecords(5, 2, 0)...)
	waitFor(t, 10*time.Second, "a rejected attempt", func() bool { return testutil.ToFloat64(bad.m.UplinkErrors) > 0 })
	if bad.u.Connected() || bad.u.Sent() != 0 {
		t.Errorf("wrong password: connected %v, sent %d", bad.u.Connected(), bad.u.Sent())
	}
	bad.stop(t)

	src := newMemSource()
	last := src.Append(mixedRecords(300, 5, 0)...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
		o.TLS, o.SASL = cliTLS, plain.Mechanism{Username: "gw-test-01", Password: "s3cret"}
	})
	env.waitDrained(t, 10*time.Second, last)

	got := consume(t, c.ListenAddrs(), allTopics, int(last), seqOf(t), kgo.DialTLSConfig(cliTLS),
		kgo.SASL(kplain.Auth{User: "gw-test-01", Pass: "s3cret"}.AsMechanism()))
	if dups := checkOrder(t, got, last); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
}

// TestSecurityErrorsExplained runs the uplink against a broker that wants
// TLS with a client certificate and SASL SCRAM-SHA-512, misconfigured one
// way at a time: each failure is an AuthError naming the broker and the
// setting to check (not kafka-go's bare "unexpected EOF"), is counted, and
// nothing is acknowledged; then the right settings drain everything.
func TestSecurityErrorsExplained(t *testing.T) {
	ca, rogue := testpki.NewCA(t, "plant CA"), testpki.NewCA(t, "rogue CA")
	srv, cli := ca.Server(t), ca.Client(t, "gw-test-01")
	strange := rogue.Client(t, "gw-test-01")
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "gw", "s3cret"))
	addr := c.ListenAddrs()[0]
	scramFor := func(pw string) sasl.Mechanism {
		m, err := scram.Mechanism(scram.SHA512, "gw", pw)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cli.TLS}}
	hints := Hints{CA: "check ca.pem", ClientCert: "check client.crt", SASLUser: "gw", SASLPassword: "check gw.pass"}

	for _, tc := range []struct {
		name string
		tls  *tls.Config
		sasl sasl.Mechanism
		want string
	}{
		{"wrong password", good, scramFor("wrong"),
			"kafka " + addr + ": SASL SCRAM-SHA-512 authentication failed for user gw (check gw.pass)"},
		{"untrusted CA", &tls.Config{RootCAs: rogue.Pool(), Certificates: []tls.Certificate{cli.TLS}}, scramFor("s3cret"),
			"kafka " + addr + ": TLS: certificate signed by unknown authority (check ca.pem)"},
		{"no client certificate", &tls.Config{RootCAs: ca.Pool()}, scramFor("s3cret"),
			"kafka " + addr + ": TLS: the broker requires a client certificate, and none is configured (check client.crt)"},
		{"client certificate of another CA", &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{strange.TLS}}, scramFor("s3cret"),
			"kafka " + addr + ": TLS: the broker requires a client certificate signed by a CA it trusts, and the configured one is not (check client.crt)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newMemSource()
			src.Append(mixedRecords(20, 3, 0)...)
			env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
				o.TLS, o.SASL, o.Hints = tc.tls, tc.sasl, hints
			})
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				_, msg := env.u.Outage()
				if msg == tc.want && testutil.ToFloat64(env.m.UplinkErrors) >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("outage message %q after %v errors, want %q", msg, testutil.ToFloat64(env.m.UplinkErrors), tc.want)
				}
			}
			if n, acked := src.state(); n != 20 || acked != 0 || env.u.Sent() != 0 {
				t.Errorf("pending %d, acked %d, sent %d: want all 20 kept", n, acked, env.u.Sent())
			}
			env.stop(t)

			// Fixed: the same source drains.
			fixed := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
				o.TLS, o.SASL, o.Hints = good, scramFor("s3cret"), hints
			})
			fixed.waitDrained(t, 10*time.Second, 20)
			if since, msg := fixed.u.Outage(); !since.IsZero() || msg != "" {
				t.Errorf("after the fix: outage since %v: %q", since, msg)
			}
		})
	}
}

// A plaintext uplink's errors stay as kafka-go gives them: an EOF is not
// taken for an authentication failure when no SASL is configured.
func TestPlainErrorsNotExplainedAsAuth(t *testing.T) {
	srvTLS, _ := selfSigned(t)
	c := newCluster(t, kfake.TLS(srvTLS))
	src := newMemSource()
	src.Append(mixedRecords(3, 1, 0)...)
	env := startUplink(t, c.ListenAddrs(), src, nil)
	waitFor(t, 10*time.Second, "a failure", func() bool { return testutil.ToFloat64(env.m.UplinkErrors) > 0 })
	if _, msg := env.u.Outage(); strings.Contains(msg, "SASL") || strings.Contains(msg, "TLS") || msg == "" {
		t.Errorf("outage message %q", msg)
	}
}

// switchSASL is a mechanism whose password can be fixed while it runs.
type switchSASL struct {
	cur atomic.Pointer[sasl.Mechanism]
}

func (s *switchSASL) set(m sasl.Mechanism) { s.cur.Store(&m) }
func (s *switchSASL) Name() string         { return (*s.cur.Load()).Name() }
func (s *switchSASL) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	return (*s.cur.Load()).Start(ctx)
}

// TestSASLRefusalForgottenAfterSuccess: once an exchange succeeds, a
// connection the broker drops later is no longer taken for a refused login.
func TestSASLRefusalForgottenAfterSuccess(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "gw", "s3cret"))
	var dropping atomic.Bool
	dropping.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if dropping.Load() {
			return nil, errors.New("injected: drop the connection"), true
		}
		return nil, nil, false
	})
	mech := new(switchSASL)
	mech.set(plain.Mechanism{Username: "gw", Password: "wrong"})
	src := newMemSource()
	last := src.Append(mixedRecords(10, 2, 0)...)
	env := startUplink(t, c.ListenAddrs(), src, func(o *Options) {
		o.SASL, o.Hints = mech, Hints{SASLUser: "gw"}
	})
	refused := "kafka " + c.ListenAddrs()[0] + ": SASL PLAIN authentication failed for user gw (check the user name and password)"
	waitFor(t, 10*time.Second, "the refused login", func() bool { _, msg := env.u.Outage(); return msg == refused })

	mech.set(plain.Mechanism{Username: "gw", Password: "s3cret"})
	var msg string
	waitFor(t, 10*time.Second, "the dropped produce explained as such", func() bool {
		_, msg = env.u.Outage()
		return msg != refused && msg != ""
	})
	if strings.Contains(msg, "SASL") {
		t.Errorf("a dropped produce after a good login reads %q", msg)
	}
	dropping.Store(false)
	env.waitDrained(t, 10*time.Second, last)
}
