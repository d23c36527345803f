// Package peers starts the real peers edgegw talks to, in process, for
// tests: a Kafka cluster (franz-go's kfake, the real wire protocol), an MQTT
// broker (mochi-mqtt), a Kafka consumer and an MQTT client. Everything
// listens on random loopback ports and stops when the test ends.
package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
)

// Topics are the three topics of DESIGN.md, seeded in every Kafka.
var Topics = []string{"plant.readings", "plant.alerts", "plant.events"}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Kafka is a kfake cluster that can be stopped and started again on the
// same port with the same data directory, like a broker restart.
type Kafka struct {
	t       testing.TB
	Port    int
	DataDir string
	mu      sync.Mutex
	c       *kfake.Cluster
}

// StartKafka starts a one-broker cluster with the plant topics seeded
// (3 partitions each) and a data directory, on a random port.
func StartKafka(t testing.TB) *Kafka {
	t.Helper()
	k := &Kafka{t: t, DataDir: t.TempDir()}
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Start (re)starts the cluster on k.Port (random the first time).
func (k *Kafka) Start() {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(k.DataDir),
		kfake.SeedTopics(3, Topics...), kfake.AllowAutoTopicCreation()}
	if k.Port != 0 {
		opts = append(opts, kfake.Ports(k.Port))
	}
	var err error
	// The old listener's port can take a moment to be free again.
	for i := 0; i < 50; i++ {
		if k.c, err = kfake.NewCluster(opts...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		k.t.Fatalf("kfake: %v", err)
	}
	if k.Port == 0 {
		fmt.Sscanf(k.c.ListenAddrs()[0], "127.0.0.1:%d", &k.Port)
	}
}

// Stop closes the cluster; acknowledged records stay in DataDir.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// Addr is host:port of the broker.
func (k *Kafka) Addr() string { return fmt.Sprintf("127.0.0.1:%d", k.Port) }

// Consume reads topics from the beginning and calls fn for each record
// until fn returns false or the timeout passes; it reports whether fn
// asked to stop.
func (k *Kafka) Consume(topics []string, timeout time.Duration, fn func(*kgo.Record) bool) bool {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addr()), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		k.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return false
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			if !stop && !fn(r) {
				stop = true
			}
		})
		if stop {
			return true
		}
	}
}

// Broker is an embedded mochi-mqtt broker.
type Broker struct {
	Server *mqtt.Server
	Port   int
}

// StartBroker starts a broker that allows every client, on a random port.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	return StartBrokerOn(t, 0)
}

// StartBrokerOn starts a broker on a given port (0: random).
func StartBrokerOn(t testing.TB, port int) *Broker {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: fmt.Sprintf("127.0.0.1:%d", port)})
	if err := s.AddListener(ln); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &Broker{Server: s}
	fmt.Sscanf(ln.Address(), "127.0.0.1:%d", &b.Port)
	t.Cleanup(func() { mqtttest.Stop(s) })
	return b
}

// URL is the broker's tcp:// URL.
func (b *Broker) URL() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.Port) }

// Client connects a paho client with a clean session.
func Client(t testing.TB, url, id string) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true).
		SetAutoReconnect(true).SetConnectRetry(true)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect %s: %v", url, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// Publish publishes at QoS 1 and waits for the broker's PUBACK.
func Publish(t testing.TB, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// WaitReading publishes payload on topic every 100 ms until the gateway at
// httpAddr shows a reading of sensor: a gateway's subscription is made
// after it starts, and a message published before it exists is not kept
// for it by any broker.
func WaitReading(t testing.TB, c paho.Client, httpAddr, topic, payload, sensor string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		Publish(t, c, topic, payload)
		if sensorReadings(httpAddr, sensor) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway at %s never showed a reading of %s", httpAddr, sensor)
}

func sensorReadings(httpAddr, sensor string) int {
	for _, r := range sensors(httpAddr) {
		if r.ID == sensor {
			return r.Readings
		}
	}
	return 0
}

// SensorRow is a row of the gateway's /api/sensors.
type SensorRow struct {
	ID       string   `json:"id"`
	Value    *float64 `json:"value"`
	Readings int      `json:"readings"`
}

// Sensors reads the gateway's /api/sensors (nil when it does not answer).
func Sensors(t testing.TB, httpAddr string) []SensorRow {
	t.Helper()
	return sensors(httpAddr)
}

func sensors(httpAddr string) []SensorRow {
	resp, err := http.Get("http://" + httpAddr + "/api/sensors")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var rows []SensorRow
	if json.NewDecoder(resp.Body).Decode(&rows) != nil {
		return nil
	}
	return rows
}
