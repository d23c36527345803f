// Command devstack runs the local dev stack for the demo and for trying a
// gateway by hand: an in-process Kafka (franz-go's kfake, which speaks the
// real wire protocol; its log lives under -data so records survive a
// restart) and an embedded MQTT broker (mochi-mqtt), on loopback.
//
//	go run ./scripts/devstack [-kafka 9092] [-mqtt 1883] [-data .devstack/kafka]
//
// It prints READY once both listen, and stops cleanly on Ctrl-C or SIGTERM.
// It is a development tool: it has no authentication and keeps the broker's
// sessions in memory only.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/edgegw/edgegw/drivers/mqtt/mqtttest"
)

func main() {
	kafkaPort := flag.Int("kafka", 9092, "Kafka port on 127.0.0.1")
	mqttPort := flag.Int("mqtt", 1883, "MQTT port on 127.0.0.1")
	dataDir := flag.String("data", ".devstack/kafka", "directory for Kafka's log (survives restarts)")
	partitions := flag.Int("partitions", 3, "partitions of each plant.* topic")
	verbose := flag.Bool("v", false, "log the MQTT broker's events")
	hall := flag.Bool("hall-sensor", true, "publish a simulated hall temperature on line1/hall/climate every second")
	flag.Parse()

	if err := run(*kafkaPort, *mqttPort, *dataDir, int32(*partitions), *verbose, *hall); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(kafkaPort, mqttPort int, dataDir string, partitions int32, verbose, hall bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	kc, err := kfake.NewCluster(
		kfake.Ports(kafkaPort),
		kfake.DataDir(dataDir),
		kfake.SeedTopics(partitions, "plant.readings", "plant.alerts", "plant.events"),
		kfake.AllowAutoTopicCreation(),
	)
	if err != nil {
		return fmt.Errorf("kafka on 127.0.0.1:%d: %w", kafkaPort, err)
	}
	defer kc.Close()

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	broker := mqtt.New(&mqtt.Options{InlineClient: true, Logger: logger})
	if err := broker.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", mqttPort)
	if err := broker.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		return fmt.Errorf("mqtt on %s: %w", addr, err)
	}
	if err := broker.Serve(); err != nil {
		return fmt.Errorf("mqtt on %s: %w", addr, err)
	}
	defer mqtttest.Stop(broker) // Close alone can deadlock in mochi v2.7.9

	fmt.Printf("devstack: kafka %s (topics plant.readings, plant.alerts, plant.events; data %s)\n", kc.ListenAddrs()[0], dataDir)
	fmt.Printf("devstack: mqtt  %s\n", addr)
	fmt.Println("devstack: READY")
	if hall {
		go publishHall(ctx, broker)
	}
	<-ctx.Done()
	fmt.Println("devstack: stopping")
	return nil
}

// publishHall stands in for a plant's own MQTT sensor: a JSON payload such
// as {"temp": 21.4, "rh": 40.2} on line1/hall/climate, QoS 1, every second.
func publishHall(ctx context.Context, broker *mqtt.Server) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		temp := 21 + 1.5*math.Sin(float64(i)/60) + rand.Float64()*0.2
		rh := 40 + 5*math.Cos(float64(i)/90) + rand.Float64()*0.5
		payload := fmt.Sprintf(`{"temp": %.2f, "rh": %.1f}`, temp, rh)
		_ = broker.Publish("line1/hall/climate", []byte(payload), false, 1)
	}
}
