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
		if opts.TLS, err = tlsConfig(cfg, "uplink.kafka.tls", k.TLS); err != nil {
			return nil, err
		}
	}
	if k.SASL != nil {
		if opts.SASL, err = saslMechanism(cfg, k.SASL); err != nil {
			return nil, err
		}
	}
	opts.Hints = kafkaHints(k)
	return uplink.New(opts, src)
}

// kafkaHints names the settings to check in the uplink's errors.
func kafkaHints(k config.Kafka) uplink.Hints {
	var h uplink.Hints
	if t := k.TLS; t != nil {
		if t.CAFile != "" {
			h.CA = "check uplink.kafka.tls.ca_file " + t.CAFile
		} else {
			h.CA = "no uplink.kafka.tls.ca_file is set, and the system's CAs do not trust it"
		}
		if t.CertFile != "" {
			h.ClientCert = "check uplink.kafka.tls.cert_file " + t.CertFile
		} else {
			h.ClientCert = "set uplink.kafka.tls.cert_file and key_file"
		}
	}
	if s := k.SASL; s != nil {
		h.SASLUser = s.Username
		h.SASLPassword = "check uplink.kafka.sasl.password_file " + s.PasswordFile
	}
	return h
}

// tlsConfig builds a client TLS config that verifies the server against
// ca_file (or the system roots) and presents cert_file/key_file if given.
// A file that cannot be read or used is an error naming where the config
// set it (FILE:LINE: path.ca_file: ...); prefix is the TLS block's path.
func tlsConfig(cfg *config.Config, prefix string, t *config.TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, problem(cfg, prefix+".ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, problem(cfg, prefix+".ca_file", "%s holds no PEM certificate", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, problem(cfg, prefix+".cert_file", "%s with key_file %s: %v", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func saslMechanism(cfg *config.Config, s *config.SASL) (sasl.Mechanism, error) {
	pw, err := ReadSecret(s.PasswordFile)
	if err != nil {
		return nil, problem(cfg, "uplink.kafka.sasl.password_file", "%v", err)
	}
	switch s.Mechanism {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: pw}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, pw)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, pw)
	}
	return nil, problem(cfg, "uplink.kafka.sasl.mechanism", "%q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
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

// problem is a config problem at path, as an error: FILE:LINE: path: msg.
func problem(cfg *config.Config, path, format string, args ...any) error {
	return config.Problems{cfg.Problem(path, format, args...)}
}
