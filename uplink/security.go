package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Hints name, in error messages, the settings behind TLS and SASL, so that
// a failure says what to fix rather than only what kafka-go saw. Each is a
// phrase put in parentheses after the error, e.g. "check
// uplink.kafka.tls.ca_file /etc/edgegw/kafka-ca.pem". Empty: a generic
// phrase.
type Hints struct {
	// CA: when a broker's certificate is not signed by a trusted CA.
	CA string
	// ClientCert: when a broker rejects the client certificate, or wants
	// one and none is configured.
	ClientCert string
	// SASLUser is the SASL user name, named when authentication fails.
	SASLUser string
	// SASLPassword: when SASL authentication fails.
	SASLPassword string
}

// AuthError is a broker refusing the connection for a reason of trust or
// identity: its TLS certificate not verified, the client certificate
// rejected, SASL authentication failed. Retrying does not help until a
// certificate, key or password changes (on either side), though the uplink
// keeps retrying, so that a fix on the broker's side is picked up.
type AuthError struct {
	Broker string // host:port; "" when not known
	Stage  string // "TLS" or "SASL"
	Msg    string // what went wrong, with the hint: "TLS: ...", "SASL ..."
	Err    error  // what the TLS stack or kafka-go returned
}

func (e *AuthError) Error() string {
	b := "kafka"
	if e.Broker != "" {
		b += " " + e.Broker
	}
	return b + ": " + e.Msg
}

func (e *AuthError) Unwrap() error { return e.Err }

// security does the TLS handshakes itself (instead of leaving them to
// kafka-go) and watches SASL exchanges, so that a failure can name the
// broker and the setting to check.
type security struct {
	tls   *tls.Config
	hints Hints
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)

	mu      sync.Mutex
	pending map[*saslSession]string // SASL exchanges started and not finished, by broker
	// A SASL exchange was cut short by refusedBy and none succeeded since.
	// It stays so: kafka-go keeps a failed metadata refresh's error and
	// returns it for a while without connecting again.
	refused   bool
	refusedBy string
}

func newSecurity(c *tls.Config, h Hints) *security {
	// kafka-go's own default; its transport bounds the whole dial, TLS
	// handshake included, by its dial timeout too.
	d := &net.Dialer{Timeout: 3 * time.Second}
	return &security{tls: c, hints: h, dial: d.DialContext, pending: map[*saslSession]string{}}
}

// Dial is the transport's dialer: TCP, then the TLS handshake when TLS is
// configured, with a handshake failure explained.
func (s *security) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := s.dial(ctx, network, addr)
	if err != nil || s.tls == nil {
		return c, err
	}
	cfg := s.tls
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, s.tlsError(addr, err)
	}
	return &tlsConn{Conn: tc, addr: addr, s: s}, nil
}

// tlsConn explains a TLS alert that arrives after the handshake: with TLS
// 1.3 a broker that rejects the client certificate says so only then.
type tlsConn struct {
	*tls.Conn
	addr string
	s    *security
}

func (c *tlsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && isAlert(err) {
		err = c.s.tlsError(c.addr, err)
	}
	return n, err
}

// isAlert reports whether err is a TLS alert the peer sent.
func isAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// tlsError explains a TLS failure with addr.
func (s *security) tlsError(addr string, err error) error {
	e := &AuthError{Broker: addr, Stage: "TLS", Err: err}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		e.Msg = "certificate signed by unknown authority" + paren(s.hints.CA, "check the CA certificates the uplink trusts")
	case errors.As(err, &host):
		e.Msg = strings.TrimPrefix(host.Error(), "x509: ") + " (the broker's certificate does not name the address the gateway connects to)"
	case errors.As(err, &invalid):
		e.Msg = strings.TrimPrefix(invalid.Error(), "x509: ") + " (check the broker's certificate, and this gateway's clock)"
	case errors.As(err, &header):
		e.Msg = "the broker does not answer in TLS (is this a plaintext listener?)"
	case isAlert(err):
		alert := strings.TrimPrefix(errors.Unwrap(asOpError(err)).Error(), "tls: ")
		haveCert := len(s.tls.Certificates) > 0 || s.tls.GetClientCertificate != nil
		switch {
		case alert == "certificate required" && !haveCert:
			e.Msg = "the broker requires a client certificate, and none is configured" + paren(s.hints.ClientCert, "configure one")
		case alert == "certificate required":
			// A Go client sends only a certificate of a CA the broker
			// named in its request.
			e.Msg = "the broker requires a client certificate signed by a CA it trusts, and the configured one is not" +
				paren(s.hints.ClientCert, "check the client certificate")
		case strings.Contains(alert, "certificate") || alert == "access denied":
			e.Msg = "the broker rejected the client certificate (" + alert + ")" +
				paren(s.hints.ClientCert, "check the client certificate")
		default:
			e.Msg = "the broker refused the TLS handshake (" + alert + ")"
		}
	default:
		e.Msg = strings.TrimPrefix(err.Error(), "tls: ")
	}
	e.Msg = "TLS: " + e.Msg
	return e
}

func asOpError(err error) *net.OpError {
	var op *net.OpError
	errors.As(err, &op)
	return op
}

func paren(hint, fallback string) string {
	if hint == "" {
		hint = fallback
	}
	return " (" + hint + ")"
}

// watchSASL wraps m so that the uplink can tell an exchange the broker cut
// short: a broker may answer a wrong password by closing the connection,
// which kafka-go reports as a bare "unexpected EOF".
func (s *security) watchSASL(m sasl.Mechanism) sasl.Mechanism {
	if m == nil {
		return nil
	}
	return &saslWatch{Mechanism: m, s: s}
}

type saslWatch struct {
	sasl.Mechanism
	s *security
}

func (w *saslWatch) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	sm, ir, err := w.Mechanism.Start(ctx)
	if err != nil {
		return nil, nil, err
	}
	addr := ""
	if md := sasl.MetadataFromContext(ctx); md != nil {
		addr = net.JoinHostPort(md.Host, strconv.Itoa(md.Port))
	}
	sess := &saslSession{StateMachine: sm, s: w.s}
	w.s.mu.Lock()
	// Bounded: exchanges cut short are taken out when a failure is
	// explained, and all when a produce succeeds; this guards against
	// neither happening.
	if len(w.s.pending) < 64 {
		w.s.pending[sess] = addr
	}
	w.s.mu.Unlock()
	return sess, ir, nil
}

type saslSession struct {
	sasl.StateMachine
	s *security
}

func (x *saslSession) Next(ctx context.Context, challenge []byte) (bool, []byte, error) {
	done, resp, err := x.StateMachine.Next(ctx, challenge)
	if done || err != nil {
		x.s.mu.Lock()
		delete(x.s.pending, x)
		if done && err == nil {
			x.s.refused = false
		}
		x.s.mu.Unlock()
	}
	return done, resp, err
}

// cutShort reports whether a SASL exchange was cut short by the broker
// (started, and neither completed nor failed on the client's side) with
// none succeeding since, and by which broker.
func (s *security) cutShort() (broker string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sess, addr := range s.pending {
		s.refused, s.refusedBy = true, addr
		delete(s.pending, sess)
	}
	return s.refusedBy, s.refused
}

// reset forgets exchanges cut short: a produce succeeded.
func (s *security) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.pending)
	s.refused, s.refusedBy = false, ""
}

// explain turns a failed produce's error into the message an operator
// sees: an *AuthError when it is one of trust or identity, else err.
func (u *Uplink) explain(err error) error {
	first := err // of a kafka.WriteErrors, the first record's
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil {
				first = e
				break
			}
		}
	}
	var ae *AuthError
	if errors.As(first, &ae) {
		return ae
	}
	s := u.sec
	if u.opts.SASL == nil {
		return err
	}
	name := u.opts.SASL.Name()
	failed := func(broker string) error {
		msg := "SASL " + name + " authentication failed"
		if s.hints.SASLUser != "" {
			msg += " for user " + s.hints.SASLUser
		}
		return &AuthError{Broker: broker, Stage: "SASL", Err: first,
			Msg: msg + paren(s.hints.SASLPassword, "check the user name and password")}
	}
	switch broker, cut := s.cutShort(); {
	case errors.Is(first, kafka.SASLAuthenticationFailed):
		return failed(broker)
	case errors.Is(first, kafka.UnsupportedSASLMechanism):
		return &AuthError{Broker: broker, Stage: "SASL", Err: first,
			Msg: "the broker does not offer the mechanism " + name + " (check the SASL mechanism)"}
	case cut && (errors.Is(first, io.ErrUnexpectedEOF) || errors.Is(first, io.EOF) || errors.Is(first, syscall.ECONNRESET)):
		// The broker hung up in the middle of an exchange.
		return failed(broker)
	}
	return err
}

// errClass groups errors for logging: each class is logged once per outage.
func errClass(err error) string {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Stage + " " + ae.Broker
	}
	return "other"
}

// describe is what Outage and the log show for err.
func describe(err error) string {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Error()
	}
	return summarize(err)
}
