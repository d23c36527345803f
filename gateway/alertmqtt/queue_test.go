package alertmqtt

import (
	"fmt"
	"strings"
	"testing"
)

// show renders a queue as "rule:payload ..." for comparisons.
func show(items []queued) string {
	var parts []string
	for _, it := range items {
		parts = append(parts, it.rule+":"+string(it.payload))
	}
	return strings.Join(parts, " ")
}

func TestQueue(t *testing.T) {
	var q queue
	q.setUp(true)
	for _, s := range []string{"a:1", "b:1", "a:2", "a:3", "c:1"} {
		rule, payload, _ := strings.Cut(s, ":")
		q.push(rule, []byte(payload))
	}
	if got := show(q.snapshot()); got != "a:1 b:1 a:2 a:3 c:1" {
		t.Fatalf("while up the queue keeps every transition in order: %s", got)
	}

	// a:3 acknowledged, a:1 and a:2 not (they failed): they must not be
	// retried over the newer retained state.
	items := q.snapshot()
	q.settle([]queued{items[3]})
	if got := show(q.snapshot()); got != "b:1 c:1" {
		t.Fatalf("after settling a:3: %s", got)
	}

	q.push("b", []byte("2"))
	q.setUp(false)
	if got := show(q.snapshot()); got != "c:1 b:2" {
		t.Fatalf("going down keeps the latest per rule, in order: %s", got)
	}
	q.push("c", []byte("2"))
	q.push("c", []byte("3"))
	if got := show(q.snapshot()); got != "b:2 c:3" {
		t.Fatalf("while down a transition replaces its rule's older one: %s", got)
	}

	// Settling an item that a newer state already replaced changes nothing.
	q.settle([]queued{{rule: "c", gen: 1}})
	if got := show(q.snapshot()); got != "b:2 c:3" {
		t.Fatalf("stale settle: %s", got)
	}
}

func TestQueueBoundedWhileUp(t *testing.T) {
	var q queue
	q.setUp(true)
	want := map[string]string{}
	for i := range 10 * maxQueued {
		rule := fmt.Sprintf("r%d", i%3)
		q.push(rule, []byte(fmt.Sprint(i)))
		want[rule] = fmt.Sprint(i)
	}
	if n := q.len(); n > maxQueued+1 {
		t.Fatalf("queue holds %d transitions, want at most %d", n, maxQueued+1)
	}
	last := map[string]string{}
	for _, it := range q.snapshot() {
		last[it.rule] = string(it.payload)
	}
	for r, w := range want {
		if last[r] != w {
			t.Errorf("%s latest = %s, want %s", r, last[r], w)
		}
	}
}
