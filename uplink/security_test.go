package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	kplain "github.com/twmb/franz-go/pkg/sasl/plain"
)

// selfSigned returns a server config for 127.0.0.1 and a client config
// that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return server, &tls.Config{RootCAs: pool}
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
