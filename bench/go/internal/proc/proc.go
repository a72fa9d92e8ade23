// Package proc reads what a benchmark reports about a process from Linux's /proc: CPU time and
// resident memory, of the server it drives (by pid) and of itself.
package proc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux this runs on.
const clockTicks = 100

// CPUSeconds is a process's user+system CPU time (/proc/PID/stat fields 14 and 15); 0 when unknown.
func CPUSeconds(pid int) float64 {
	stat, err := read(pid, "stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks
}

// RSSMiB is a process's resident set (/proc/PID/status VmRSS); 0 when unknown.
func RSSMiB(pid int) float64 {
	status, err := read(pid, "status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(status, "\n") {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 64)
			return n / 1024
		}
	}
	return 0
}

// SelfCPUSeconds is this process's user+system CPU time.
func SelfCPUSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func read(pid int, file string) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	return string(b), err
}
