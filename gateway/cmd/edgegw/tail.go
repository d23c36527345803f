package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// cmdTail prints a topic as one line per record:
// TOPIC/PARTITION@OFFSET KEY VALUE. It reads every partition directly (no
// consumer group), so it commits nothing and disturbs no consumer.
func cmdTail(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	broker := fs.String("brokers", "127.0.0.1:9092", "a Kafka broker host:port")
	topic := fs.String("topic", "plant.readings", "topic to print")
	fromStart := fs.Bool("from-beginning", false, "start at the oldest record instead of new ones")
	count := fs.Int("count", 0, "stop after this many records (0: run until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	conn, err := kafka.DialContext(ctx, "tcp", *broker)
	if err != nil {
		fmt.Fprintf(stderr, "edgegw tail: %s: %v\n", *broker, err)
		return 1
	}
	parts, err := conn.ReadPartitions(*topic)
	_ = conn.Close()
	if err != nil {
		fmt.Fprintf(stderr, "edgegw tail: topic %s: %v\n", *topic, err)
		return 1
	}
	start := kafka.LastOffset
	if *fromStart {
		start = kafka.FirstOffset
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	printed := 0
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{*broker}, Topic: *topic,
				Partition: p.ID, StartOffset: start, MaxWait: 200 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				if *count == 0 || printed < *count {
					fmt.Fprintf(stdout, "%s/%d@%d %s %s\n", m.Topic, m.Partition, m.Offset, m.Key, m.Value)
					printed++
				}
				if *count > 0 && printed >= *count {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}
