// Package proc reads what a benchmark reports about a process from Linux's /proc: CPU time (of a
// thread too) and resident memory, of the server it drives (by pid) and of itself; the host's
// accept-queue overflows; and it profiles the benchmark's own CPU.
package proc

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux this runs on.
const clockTicks = 100

// CPUSplit is a process's user and system CPU time (/proc/PID/stat fields 14 and 15), apart (the
// kernel's share: sockets, copies); 0 when unknown.
func CPUSplit(pid int) (user, system float64) {
	user, system, _ = cpuSplit(pid, "stat")
	return user, system
}

// cpuSplit reads user and system time from a stat file of the process (its own, or one of its threads').
func cpuSplit(pid int, file string) (user, system float64, ok bool) {
	stat, err := read(pid, file)
	if err != nil {
		return 0, 0, false
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return utime / clockTicks, stime / clockTicks, true
}

// ThreadCPUSeconds is one thread's user+system CPU time (/proc/PID/task/TID/stat; the main
// thread's id is the pid, and /proc/PID/stat would be the whole process's); -1 when unknown.
func ThreadCPUSeconds(pid, tid int) float64 {
	if pid <= 0 {
		return -1
	}
	user, system, ok := cpuSplit(pid, fmt.Sprintf("task/%d/stat", tid))
	if !ok {
		return -1
	}
	return user + system
}

// ListenOverflows is the kernel's count of connections dropped because a listening socket's
// accept queue was full (TcpExt ListenOverflows in /proc/net/netstat, all sockets of the host);
// each such client retries its SYN a second later. -1 when unknown.
func ListenOverflows() int64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != "TcpExt:" || len(values) != len(names) {
			continue
		}
		for j, name := range names {
			if name == "ListenOverflows" {
				n, _ := strconv.ParseInt(values[j], 10, 64)
				return n
			}
		}
	}
	return -1
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

// SelfCPUSplit is this process's user and system CPU time, from one reading.
func SelfCPUSplit() (user, system float64) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()) / 1e9, float64(ru.Stime.Nano()) / 1e9
}

func read(pid int, file string) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("no process")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	return string(b), err
}

// ProfileCPU starts this process's CPU profile (pprof) into path; the returned func ends it.
// An empty path profiles nothing.
func ProfileCPU(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
