package config

import (
	"strings"
	"testing"
)

// TestMQTTTLS checks the mqtt.tls block: accepted with a TLS url, in full
// or in part, and every mistake reported at its line.
func TestMQTTTLS(t *testing.T) {
	for _, ok := range []string{
		"mqtt:\n  url: ssl://broker.plant:8883\n  tls: {ca_file: /etc/edgegw/mqtt-ca.pem}\n",
		"mqtt:\n  url: tls://broker.plant:8883\n  tls: {ca_file: /etc/edgegw/mqtt-ca.pem, cert_file: /etc/edgegw/gw.crt, key_file: /etc/edgegw/gw.key}\n",
		"mqtt:\n  url: mqtts://broker.plant:8883\n  tls: {}\n",
		"mqtt:\n  url: wss://broker.plant:443/mqtt\n  tls: {cert_file: gw.crt, key_file: gw.key}\n",
		// A TLS url without the block verifies against the system's CAs.
		"mqtt: {url: \"tls://broker.plant:8883\"}\n",
		"mqtt: {url: \"ssl://broker.plant:8883\", username: gw, password_file: /etc/edgegw/mqtt.pass}\n",
	} {
		c, err := Parse("gw.yaml", []byte(base+ok))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		if strings.Contains(ok, "\n  tls:") != (c.MQTT.TLS != nil) {
			t.Errorf("%s: TLS = %+v", ok, c.MQTT.TLS)
		}
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"plaintext url", "mqtt:\n  url: tcp://broker.plant:1883\n  tls: {ca_file: /etc/edgegw/mqtt-ca.pem}\n",
			"gw.yaml:7: mqtt.tls: needs an ssl://, tls://, mqtts:// or wss:// url, not tcp://"},
		{"plaintext websocket", "mqtt:\n  url: ws://broker.plant:80/mqtt\n  tls: {}\n",
			"gw.yaml:7: mqtt.tls: needs an ssl://, tls://, mqtts:// or wss:// url, not ws://"},
		{"default url is plaintext", "mqtt:\n  tls: {ca_file: ca.pem}\n",
			"gw.yaml:6: mqtt.tls: needs an ssl://, tls://, mqtts:// or wss:// url, not tcp://"},
		{"cert without key", "mqtt:\n  url: ssl://b:8883\n  tls: {cert_file: gw.crt}\n",
			"gw.yaml:7: mqtt.tls: cert_file and key_file go together"},
		{"key without cert", "mqtt:\n  url: ssl://b:8883\n  tls:\n    key_file: gw.key\n",
			"gw.yaml:7: mqtt.tls: cert_file and key_file go together"},
		{"inline PEM", "mqtt:\n  url: ssl://b:8883\n  tls:\n    ca_file: |\n      -----BEGIN CERTIFICATE-----\n      MIIB\n",
			"gw.yaml:8: mqtt.tls.ca_file: must be the path of a PEM file, not the PEM text itself"},
		{"inline key", "mqtt:\n  url: ssl://b:8883\n  tls:\n    cert_file: gw.crt\n    key_file: \"-----BEGIN EC PRIVATE KEY-----\"\n",
			"gw.yaml:9: mqtt.tls.key_file: must be the path of a PEM file, not the PEM text itself"},
		{"no insecure_skip_verify", "mqtt:\n  url: ssl://b:8883\n  tls: {insecure_skip_verify: true}\n",
			`gw.yaml:7: mqtt.tls.insecure_skip_verify: unknown key`},
		{"inline password", "mqtt:\n  url: ssl://b:8883\n  username: gw\n  password: s3cret\n",
			`gw.yaml:8: mqtt.password: unknown key (did you mean "password_file"?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gw.yaml", []byte(base+tc.yaml))
			ps, ok := AsProblems(err)
			if !ok {
				t.Fatalf("err = %v, want Problems", err)
			}
			if got := ps.Error(); !strings.HasPrefix(got, tc.want) || strings.Count(got, "\n") != 0 {
				t.Errorf("got:\n  %s\nwant:\n  %s", got, tc.want)
			}
		})
	}
}
