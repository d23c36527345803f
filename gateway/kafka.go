package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/edgegw/edgegw/gateway/config"
	"github.com/edgegw/edgegw/gateway/metrics"
	"github.com/edgegw/edgegw/uplink"
)

func newUplink(cfg *config.Config, src uplink.Source, clock clockwork.Clock, log *slog.Logger, m *metrics.Set) (*uplink.Uplink, error) {
	k := cfg.Uplink.Kafka
	opts := uplink.Options{
		Brokers:       k.Brokers,
		ReadingsTopic: k.Topic,
		AlertsTopic:   k.AlertsTopic,
		EventsTopic:   k.EventsTopic,
		Gateway:       cfg.Gateway.ID,
		BatchSize:     k.BatchSize,
		Linger:        k.Linger.D(),
		Compression:   k.Compression,
		Clock:         clock,
		Logger:        log.With("part", "uplink"),
		Metrics:       m,
	}
	var err error
	if k.TLS != nil {
		if opts.TLS, err = tlsConfig(k.TLS); err != nil {
			return nil, fmt.Errorf("uplink.kafka.tls: %w", err)
		}
	}
	if k.SASL != nil {
		if opts.SASL, err = saslMechanism(k.SASL); err != nil {
			return nil, fmt.Errorf("uplink.kafka.sasl: %w", err)
		}
	}
	return uplink.New(opts, src)
}

// tlsConfig builds a client TLS config that verifies the server against
// ca_file (or the system roots) and presents cert_file/key_file if given.
func tlsConfig(t *config.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func saslMechanism(s *config.SASL) (sasl.Mechanism, error) {
	pw, err := ReadSecret(s.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("password_file: %w", err)
	}
	switch s.Mechanism {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, pw)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, pw)
	}
	return nil, fmt.Errorf("mechanism %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
}

// ReadSecret reads a password file; one trailing newline is not part of the
// secret (editors add it).
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
