package alertmqtt

import "sync"

// maxQueued bounds the transitions kept while the broker is reachable but
// slower than the rules. Past it the queue collapses to the latest state of
// each rule, as it does during an outage, so memory stays bounded by the
// number of rules.
const maxQueued = 1024

// queue holds the transitions not yet acknowledged by the broker, oldest
// first. While the broker is reachable every transition is kept, so a
// screen watching a rule sees it fire and resolve even when both happen
// within a millisecond; while it is away only each rule's latest state is
// kept, because the topics are retained and only the last state matters.
type queue struct {
	mu    sync.Mutex
	items []queued
	gen   uint64
	up    bool
}

type queued struct {
	rule    string
	payload []byte
	gen     uint64 // order of arrival; tells a newer state of a rule from an older one
}

func (q *queue) push(rule string, payload []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.gen++
	q.items = append(q.items, queued{rule: rule, payload: payload, gen: q.gen})
	if !q.up || len(q.items) > maxQueued {
		q.items = latestPerRule(q.items)
	}
}

// setUp records whether the broker is reachable; going down collapses the
// queue to the latest state of each rule.
func (q *queue) setUp(up bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.up = up
	if !up {
		q.items = latestPerRule(q.items)
	}
}

// snapshot returns the queued transitions, oldest first.
func (q *queue) snapshot() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queued(nil), q.items...)
}

// settle drops the transitions the broker acknowledged, and with each one
// every older state of the same rule: one that failed while a newer one got
// through must not be retried, or it would replace the newer retained state.
func (q *queue) settle(acked []queued) {
	if len(acked) == 0 {
		return
	}
	newest := make(map[string]uint64, len(acked))
	for _, a := range acked {
		newest[a.rule] = max(newest[a.rule], a.gen)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := q.items[:0]
	for _, it := range q.items {
		if g, ok := newest[it.rule]; !ok || it.gen > g {
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):]) // let the dropped payloads go
	q.items = kept
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// latestPerRule keeps the last item of each rule, in their order.
func latestPerRule(items []queued) []queued {
	seen := make(map[string]bool, len(items))
	keep := make([]bool, len(items))
	for i := len(items) - 1; i >= 0; i-- {
		if !seen[items[i].rule] {
			seen[items[i].rule] = true
			keep[i] = true
		}
	}
	out := items[:0]
	for i, it := range items {
		if keep[i] {
			out = append(out, it)
		}
	}
	clear(items[len(out):])
	return out
}
