package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/edgegw/edgegw/gateway/config"
)

// Secure sets the login (mqtt.username, mqtt.password_file) and TLS
// (mqtt.tls, or the url's scheme) of the mqtt section on o. Both MQTT
// clients of the gateway use it: this driver and the alert publisher. A
// file that cannot be read or used is an error naming its key.
func Secure(o *paho.ClientOptions, m config.MQTT) error {
	// MQTT 3.1.1, no fallback: paho would retry a refused login with MQTT
	// 3.1 and report that attempt's answer instead of the first one.
	o.SetProtocolVersion(4)
	if m.Username != "" {
		o.SetUsername(m.Username)
	}
	if m.PasswordFile != "" {
		pw, err := ReadPassword(m.PasswordFile)
		if err != nil {
			return err
		}
		o.SetPassword(pw)
	}
	tc, err := TLSConfig(m)
	if err != nil {
		return err
	}
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	return nil
}

// ReadPassword reads mqtt.password_file: the secret without its trailing
// line end. An empty file is an error (one left to be filled in).
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("mqtt.password_file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("mqtt.password_file: %s is empty", path)
	}
	return pw, nil
}

// TLSConfig is the client TLS config for m: nil for a plaintext url
// (tcp://, mqtt://, ws://). A TLS url (ssl://, tls://, mqtts://, wss://)
// verifies the broker's certificate for the url's host against
// mqtt.tls.ca_file, or the system's CAs when there is none, and presents
// mqtt.tls.cert_file and key_file when given. There is no way to skip the
// verification.
func TLSConfig(m config.MQTT) (*tls.Config, error) {
	raw := m.URL
	if raw == "" {
		raw = config.DefaultMQTTURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mqtt.url: %w", err)
	}
	if !config.MQTTURLIsTLS(u.Scheme) {
		if m.TLS != nil {
			return nil, fmt.Errorf("mqtt.tls: needs an ssl://, tls://, mqtts:// or wss:// url, not %s://", u.Scheme)
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname()}
	t := m.TLS
	if t == nil {
		return c, nil
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file %s with key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Refusal kinds, the kind label of edgegw_driver_errors_total for a failed
// connection attempt.
const (
	KindLogin   = "login"   // the broker refused the user name and password (or the client)
	KindTLS     = "tls"     // the TLS handshake failed either way
	KindConnect = "connect" // anything else: the broker unreachable, a timeout
)

// ExplainConnectError says why a connection attempt to the broker of m
// failed, naming the setting to check, and sorts it into a kind (KindLogin,
// KindTLS or KindConnect). Retrying cannot fix a login or TLS refusal until a
// password, certificate or key changes.
func ExplainConnectError(err error, m config.MQTT) (msg, kind string) {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	var op *net.OpError
	t := m.TLS
	if t == nil {
		t = &config.TLS{}
	}
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		// Brokers answer a wrong password either way: mosquitto and
		// mochi-mqtt say "not authorised" to MQTT 3.1.1 clients.
		answer := "bad user name or password"
		if errors.Is(err, packets.ErrorRefusedNotAuthorised) {
			answer = "not authorised"
		}
		if m.Username == "" {
			return "the broker refused the login: " + answer + " (it may want a user name and password: set mqtt.username and mqtt.password_file)", KindLogin
		}
		return fmt.Sprintf("the broker refused the login: %s (check mqtt.username %s and mqtt.password_file %s)",
			answer, m.Username, m.PasswordFile), KindLogin
	case errors.Is(err, packets.ErrorRefusedIDRejected):
		return fmt.Sprintf("the broker refused the client id %q (check mqtt.client_id)", m.ClientID), KindLogin
	case errors.As(err, &unknown):
		if t.CAFile == "" {
			return "TLS: certificate signed by unknown authority (no mqtt.tls.ca_file is set, and the system's CAs do not trust it)", KindTLS
		}
		return "TLS: certificate signed by unknown authority (check mqtt.tls.ca_file " + t.CAFile + ")", KindTLS
	case errors.As(err, &host):
		return "TLS: " + strings.TrimPrefix(host.Error(), "x509: ") + " (the broker's certificate does not name the host of mqtt.url)", KindTLS
	case errors.As(err, &invalid):
		return "TLS: " + strings.TrimPrefix(invalid.Error(), "x509: ") + " (check the broker's certificate, and this gateway's clock)", KindTLS
	case errors.As(err, &header):
		return "TLS: the broker does not answer in TLS (check the scheme and port of mqtt.url)", KindTLS
	case errors.As(err, &op) && op.Op == "remote error":
		alert := strings.TrimPrefix(errors.Unwrap(op).Error(), "tls: ")
		switch {
		case alert == "certificate required" && t.CertFile == "":
			return "TLS: the broker requires a client certificate, and none is configured (set mqtt.tls.cert_file and key_file)", KindTLS
		case alert == "certificate required":
			return "TLS: the broker requires a client certificate signed by a CA it trusts, and the configured one is not (check mqtt.tls.cert_file " +
				t.CertFile + ")", KindTLS
		case strings.Contains(alert, "certificate") || alert == "access denied":
			return "TLS: the broker rejected the client certificate (" + alert + ") (check mqtt.tls.cert_file " + t.CertFile + ")", KindTLS
		}
		return "TLS: the broker refused the handshake (" + alert + ")", KindTLS
	}
	return strings.TrimPrefix(err.Error(), "network Error : "), KindConnect
}

// connectLog decides which failed connection attempts of an outage are
// logged: the first, one whose explanation differs from the last one
// logged, and otherwise one per period, saying how many were not.
type connectLog struct {
	mu   sync.Mutex
	last string
	at   time.Time
	held int
}

func (l *connectLog) allow(now time.Time, every time.Duration, msg string) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if msg == l.last && now.Sub(l.at) < every {
		l.held++
		return false, 0
	}
	held = l.held
	l.last, l.at, l.held = msg, now, 0
	return true, held
}

// reset starts a new outage.
func (l *connectLog) reset() {
	l.mu.Lock()
	l.last, l.held = "", 0
	l.mu.Unlock()
}

// connectFailed counts a failed connection attempt by kind and logs it,
// rate-limited (see connectLog).
func (d *Driver) connectFailed(err error) {
	if !d.outage.Swap(true) {
		d.connLog.reset()
	}
	msg, kind := ExplainConnectError(err, d.env.MQTT)
	d.env.Metrics.DriverErrors.WithLabelValues(Name, kind).Inc()
	ok, held := d.connLog.allow(d.env.Clock.Now(), d.timing.logEvery, msg)
	if !ok {
		return
	}
	if kind == KindConnect {
		d.log.Warn("broker unreachable; retrying", "broker", d.url, "err", msg, "failed_attempts_not_logged", held)
		return
	}
	d.log.Error("broker refused the connection; retrying, but the configuration must change",
		"broker", d.url, "err", msg, "failed_attempts_not_logged", held)
}
