// Package mqtttest runs a real MQTT broker (mochi-mqtt, embedded) for
// tests: on a random loopback port, restartable on the same port to test
// reconnects, with helpers to publish and to look at a client's session.
package mqtttest

import (
	"log/slog"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Broker is a running embedded broker.
type Broker struct {
	Server *mqtt.Server
	Addr   string // host:port it listens on
	logins *loginHook
}

// Login is the identity a client connected with.
type Login struct{ ClientID, Username, Password string }

// Start starts a broker on a random port; it is closed when the test ends.
func Start(t testing.TB) *Broker { return StartAt(t, "127.0.0.1:0") }

// StartAt starts a broker on addr, retrying briefly while the port is
// still held by a broker just closed.
func StartAt(t testing.TB, addr string) *Broker {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	logins := new(loginHook)
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddHook(logins, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err = srv.AddListener(tcp); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("broker listen %s: %v", addr, err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &Broker{Server: srv, Addr: tcp.Address(), logins: logins}
	t.Cleanup(b.Close)
	return b
}

// URL is the broker's address for paho.
func (b *Broker) URL() string { return "tcp://" + b.Addr }

// Close stops the broker, dropping every connection and session. Closing
// twice is harmless.
func (b *Broker) Close() {
	if b.Server != nil {
		Stop(b.Server)
		b.Server = nil
	}
}

// Restart closes the broker and starts a new, empty one on the same port.
func (b *Broker) Restart(t testing.TB) *Broker {
	t.Helper()
	b.Close()
	return StartAt(t, b.Addr)
}

// Publish publishes through the broker's inline client.
func (b *Broker) Publish(t testing.TB, topic string, payload string, retain bool, qos byte) {
	t.Helper()
	if err := b.Server.Publish(topic, []byte(payload), retain, qos); err != nil {
		t.Fatalf("publish %s: %v", topic, err)
	}
}

// Subscribed reports whether some client holds a subscription matching topic.
func (b *Broker) Subscribed(topic string) bool {
	return len(b.Server.Topics.Subscribers(topic).Subscriptions) > 0
}

// Inflight is the number of QoS 1/2 messages the broker has sent to the
// client and not had acknowledged; -1 if it has no session for the client.
func (b *Broker) Inflight(clientID string) int {
	cl, ok := b.Server.Clients.Get(clientID)
	if !ok {
		return -1
	}
	return cl.State.Inflight.Len()
}

// FreeAddr returns a loopback address on which nothing listens, for a
// broker that is down until the test starts it with StartAt.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Eventually polls cond every 10ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Subscriptions lists the filters the client's session holds, sorted.
func (b *Broker) Subscriptions(clientID string) []string {
	cl, ok := b.Server.Clients.Get(clientID)
	if !ok {
		return nil
	}
	var fs []string
	for f := range cl.State.Subscriptions.GetAll() {
		fs = append(fs, f)
	}
	sort.Strings(fs)
	return fs
}

// Logins lists the identities clients connected with, in order.
func (b *Broker) Logins() []Login {
	b.logins.mu.Lock()
	defer b.logins.mu.Unlock()
	return append([]Login(nil), b.logins.seen...)
}

// loginHook records each CONNECT's identity; AllowHook lets it in.
type loginHook struct {
	mqtt.HookBase
	mu   sync.Mutex
	seen []Login
}

func (h *loginHook) ID() string { return "mqtttest-logins" }

func (h *loginHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *loginHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, Login{cl.ID, string(pk.Connect.Username), string(pk.Connect.Password)})
	return nil
}
