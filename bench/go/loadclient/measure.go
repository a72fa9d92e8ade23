package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// trigger is the one HTTP request that changes the weight on the server under test.
type trigger struct {
	method, url, body string
	client            *http.Client
}

func newTrigger(spec, body string) (*trigger, error) {
	method, url, ok := strings.Cut(spec, " ")
	if !ok || url == "" {
		return nil, fmt.Errorf(`-trigger must be "METHOD URL", got %q`, spec)
	}
	return &trigger{method: method, url: url, body: body, client: &http.Client{Timeout: 60 * time.Second}}, nil
}

func (t *trigger) fire(weight uint32) error {
	w := strconv.FormatUint(uint64(weight), 10)
	req, err := http.NewRequest(t.method, strings.ReplaceAll(t.url, "{w}", w), bytes.NewBufferString(strings.ReplaceAll(t.body, "{w}", w)))
	if err != nil {
		return err
	}
	if t.body != "" {
		req.Header.Set("content-type", "application/json")
	}
	res, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(res.Body, 2048))
	if res.StatusCode >= 300 {
		return fmt.Errorf("trigger %s %s: %d %s", t.method, t.url, res.StatusCode, text)
	}
	return nil
}

// latencies: receive time after the trigger across the streams that got the change (ms).
func latencies(run *round, t0 time.Time) map[string]any {
	var xs []float64
	for i := range run.seen {
		if at := run.seen[i].Load(); at != 0 {
			xs = append(xs, float64(at-t0.UnixNano())/1e6)
		}
	}
	slices.Sort(xs)
	return map[string]any{"p50": quantile(xs, 0.5), "p99": quantile(xs, 0.99), "max": quantile(xs, 1)}
}

// quantile is the nearest-rank quantile; -1 when nothing was received.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(float64(len(sorted))*q+0.999999999) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU reads utime+stime of every thread of pid from /proc/PID/stat (clock ticks, 100 Hz).
func serverCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" closing the command name: state is field 3, utime 14, stime 15.
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// runQueueWait sums, over this process's threads, the time they were runnable but waiting for a
// core (/proc/self/task/*/schedstat, second field, ns); 0 where schedstat is not available.
func runQueueWait() time.Duration {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += n
		}
	}
	return time.Duration(total)
}
