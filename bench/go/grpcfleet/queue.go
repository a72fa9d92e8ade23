package main

import (
	"container/list"
	"sync"
	"time"
)

// window is how far back the reported utilization and rates look (as the Envoy rows' backend).
const window = time.Second

const bucket = 100 * time.Millisecond

// totals are a backend's running sums since it started.
type totals struct {
	busy, capacity time.Duration // worker time busy, and worker time available
	ok, failed     int64
	latency        time.Duration // summed over the successful calls
}

// mark is the sums at one instant.
type mark struct {
	at time.Time
	s  totals
}

// backend is a queueing server: `workers` calls in service at once, the rest wait in FIFO order.
type backend struct {
	mu         sync.Mutex
	workers    int
	busyNow    int
	lastChange time.Time
	sums       totals
	waiting    *list.List // of chan struct{}, closed when a worker is handed over
	queueLimit int
	// ring of the sums at the end of each 100 ms bucket, for the 1 s window
	ring                 [window/bucket + 1]mark
	ringAt               int
	ringLen              int
	fastFail, slowFactor float64
	// hung: closed when the backend answers again; nil while it answers (see setHung).
	hung chan struct{}
}

// setHung makes the backend a black hole (its calls wait, taking no worker, until it answers
// again or their deadline passes) or ends that, releasing the calls that waited.
func (b *backend) setHung(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on && b.hung == nil {
		b.hung = make(chan struct{})
	} else if !on && b.hung != nil {
		close(b.hung)
		b.hung = nil
	}
}

func newBackend(workers int, now time.Time) *backend {
	return &backend{workers: workers, lastChange: now, waiting: list.New(), queueLimit: 500, slowFactor: 1}
}

// advance adds the busy and capacity time since the last change; callers hold mu.
func (b *backend) advance(now time.Time) {
	dt := now.Sub(b.lastChange)
	if dt <= 0 {
		return
	}
	b.sums.busy += time.Duration(b.busyNow) * dt
	b.sums.capacity += time.Duration(b.workers) * dt
	b.lastChange = now
}

// acquire waits for a worker; false when the queue is full.
func (b *backend) acquire(now time.Time) bool {
	b.mu.Lock()
	b.advance(now)
	if b.busyNow < b.workers && b.waiting.Len() == 0 {
		b.busyNow++
		b.mu.Unlock()
		return true
	}
	if b.waiting.Len() >= b.queueLimit {
		b.mu.Unlock()
		return false
	}
	ch := make(chan struct{})
	b.waiting.PushBack(ch)
	b.mu.Unlock()
	<-ch
	return true
}

// release frees a worker, handing it to the oldest waiting call if the capacity allows.
func (b *backend) release(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	b.busyNow--
	b.handOver()
}

// handOver starts waiting calls while workers are free; callers hold mu.
func (b *backend) handOver() {
	for b.busyNow < b.workers && b.waiting.Len() > 0 {
		ch := b.waiting.Remove(b.waiting.Front()).(chan struct{})
		b.busyNow++
		close(ch)
	}
}

func (b *backend) setWorkers(n int, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	b.workers = n
	b.handOver()
}

func (b *backend) count(ok bool, took time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.sums.ok++
		b.sums.latency += took
	} else {
		b.sums.failed++
	}
}

// snapshot is the running sums as of now.
func (b *backend) snapshot(now time.Time) totals {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	return b.sums
}

// sample records the sums at a bucket's end (called every 100 ms).
func (b *backend) sample(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	b.ringAt = (b.ringAt + 1) % len(b.ring)
	b.ring[b.ringAt] = mark{now, b.sums}
	if b.ringLen < len(b.ring) {
		b.ringLen++
	}
}

// recent is what the ORCA report says: utilization, answers and errors per second over the window.
func (b *backend) recent(now time.Time) (util, rps, eps, latencyMs float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance(now)
	if b.ringLen == 0 {
		return 0, 0, 0, 0
	}
	oldest := b.ring[(b.ringAt+len(b.ring)-b.ringLen+1)%len(b.ring)]
	span := now.Sub(oldest.at).Seconds()
	capacity := b.sums.capacity - oldest.s.capacity
	if span <= 0 || capacity <= 0 {
		return 0, 0, 0, 0
	}
	util = float64(b.sums.busy-oldest.s.busy) / float64(capacity)
	rps = float64(b.sums.ok+b.sums.failed-oldest.s.ok-oldest.s.failed) / span
	eps = float64(b.sums.failed-oldest.s.failed) / span
	if ok := b.sums.ok - oldest.s.ok; ok > 0 {
		latencyMs = float64(b.sums.latency-oldest.s.latency) / float64(ok) / float64(time.Millisecond)
	}
	return min(1, util), rps, eps, latencyMs
}
