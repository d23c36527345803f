package uplink

import (
	"bytes"
	"context"
	"io"
	"sync"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
)

// producer sends one batch to Kafka: one produce request per partition
// (split further only past maxRequestBytes), all partitions at once, and
// waits for every answer. It is what kafka-go's Writer does for a
// synchronous WriteMessages with MaxAttempts 1, without the Writer's costs
// per message: the Writer asks its transport for the topic's metadata once
// per message and copies every message into a batch sized for BatchSize,
// which at 40,000 readings/s was 70 % of the bytes and 80 % of the objects
// the gateway allocated (BENCHMARKS.md). Here metadata is asked for once
// per topic per batch (the transport caches it and refreshes it after a
// failure) and the records are read in place from the batch's messages.
type producer struct {
	client      *kafka.Client
	transport   *kafka.Transport
	compression kafka.Compression
	balancer    kafka.Murmur2Balancer
}

// maxRequestBytes bounds the uncompressed records of one produce request
// (keys, values, headers and recordOverhead each), below Kafka's default
// message.max.bytes of 1,048,588 for a record batch: a partition's records
// past it go in a second request once the first was acknowledged.
const maxRequestBytes = 1_000_000

// recordOverhead is an upper bound on what a record adds to its key,
// value and headers in a v2 record batch: its length, attributes,
// timestamp and offset deltas, key and value lengths and header count,
// as varints.
const recordOverhead = 40

// recordSize is what m takes in a record batch, at most.
func recordSize(m *kafka.Message) int {
	s := recordOverhead + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		s += 10 + len(h.Key) + len(h.Value)
	}
	return s
}

// partitionRecords are the messages of one batch bound for one partition.
type partitionRecords struct {
	topic     string
	partition int
	idx       []int32 // into the batch's messages, ascending
	err       error
}

// write produces msgs and returns nil once Kafka acknowledged all of them,
// with acks=all. A failure on some partitions returns a kafka.WriteErrors
// with the error at each message that was not acknowledged; a failure
// before anything was sent (metadata) returns that error.
func (p *producer) write(ctx context.Context, msgs []kafka.Message) error {
	parts, err := p.assign(ctx, msgs)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, pr := range parts {
		wg.Go(func() { pr.err = p.produce(ctx, msgs, pr) })
	}
	wg.Wait()
	var werr kafka.WriteErrors
	for _, pr := range parts {
		if pr.err == nil {
			continue
		}
		if werr == nil {
			werr = make(kafka.WriteErrors, len(msgs))
		}
		for _, i := range pr.idx {
			werr[i] = pr.err
		}
	}
	if werr != nil {
		return werr
	}
	return nil
}

// assign groups msgs by topic and partition (murmur2 of the key, as the
// Java client does), keeping their order within each partition.
func (p *producer) assign(ctx context.Context, msgs []kafka.Message) ([]*partitionRecords, error) {
	type tp struct {
		topic     string
		partition int
	}
	counts := map[string]int{}
	byTP := map[tp]*partitionRecords{}
	var parts []*partitionRecords
	for i := range msgs {
		m := &msgs[i]
		n, ok := counts[m.Topic]
		if !ok {
			var err error
			if n, err = p.partitions(ctx, m.Topic); err != nil {
				return nil, err
			}
			counts[m.Topic] = n
		}
		k := tp{m.Topic, p.balancer.Balance(*m, partitionList(n)...)}
		pr := byTP[k]
		if pr == nil {
			pr = &partitionRecords{topic: k.topic, partition: k.partition}
			byTP[k] = pr
			parts = append(parts, pr)
		}
		pr.idx = append(pr.idx, int32(i))
	}
	return parts, nil
}

// partitions is how many partitions topic has, from the transport's cached
// metadata; the topic is created if the brokers allow it.
func (p *producer) partitions(ctx context.Context, topic string) (int, error) {
	r, err := p.transport.RoundTrip(ctx, p.client.Addr, &metadataAPI.Request{
		TopicNames:             []string{topic},
		AllowAutoTopicCreation: true,
	})
	if err != nil {
		return 0, err
	}
	for _, t := range r.(*metadataAPI.Response).Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return 0, kafka.Error(t.ErrorCode)
		}
		if len(t.Partitions) == 0 {
			return 0, kafka.UnknownTopicOrPartition
		}
		return len(t.Partitions), nil
	}
	return 0, kafka.UnknownTopicOrPartition
}

// partitionList is 0, 1, ..., n-1, for the balancer.
func partitionList(n int) []int {
	if n <= len(firstPartitions) {
		return firstPartitions[:n]
	}
	l := make([]int, n)
	for i := range l {
		l[i] = i
	}
	return l
}

var firstPartitions = func() []int {
	l := make([]int, 256)
	for i := range l {
		l[i] = i
	}
	return l
}()

// produce sends pr's records in requests of at most maxRequestBytes, one
// after the other, so that their order in the partition is the batch's.
func (p *producer) produce(ctx context.Context, msgs []kafka.Message, pr *partitionRecords) error {
	idx := pr.idx
	for len(idx) > 0 {
		n, size := 0, 0
		for n < len(idx) {
			m := &msgs[idx[n]]
			s := recordSize(m)
			if n > 0 && size+s > maxRequestBytes {
				break
			}
			size += s
			n++
		}
		res, err := p.client.Produce(ctx, &kafka.ProduceRequest{
			Topic:        pr.topic,
			Partition:    pr.partition,
			RequiredAcks: kafka.RequireAll,
			Compression:  p.compression,
			Records:      &messageRecords{msgs: msgs, idx: idx[:n]},
		})
		if err == nil && res != nil && res.Error != nil {
			err = res.Error
		}
		if err != nil {
			return err
		}
		idx = idx[n:]
	}
	return nil
}

// messageRecords reads some of a batch's messages as records, in place:
// one Record and two readers for all of them, valid until the next
// ReadRecord, as kafka-go's RecordReader allows.
type messageRecords struct {
	msgs       []kafka.Message
	idx        []int32
	next       int
	rec        kafka.Record
	key, value bytesReader
}

func (r *messageRecords) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.idx) {
		return nil, io.EOF
	}
	m := &r.msgs[r.idx[r.next]]
	r.next++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }
