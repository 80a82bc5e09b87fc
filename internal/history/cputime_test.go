package history

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) this process has used so far;
// benchmarks report CPU per sample, which wall time on a shared machine
// does not show.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
