package scheduler

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"hazgate/internal/interop"
)

// timingAttempts is how often a timing test may run before its failure
// counts. A loop that drifts or waits for another device fails every
// attempt; a 2-core CI machine running every package under the race
// detector may, now and then, delay one timer by more than the tolerance.
const timingAttempts = 3

// attempt collects the failures of one run of a timing test.
type attempt struct {
	failures []string
	logs     []string
}

func (a *attempt) Errorf(format string, args ...any) {
	a.failures = append(a.failures, fmt.Sprintf(format, args...))
}

func (a *attempt) Error(args ...any) { a.failures = append(a.failures, fmt.Sprint(args...)) }

// Fatalf ends the attempt (its goroutine), not the test.
func (a *attempt) Fatalf(format string, args ...any) {
	a.Errorf(format, args...)
	runtime.Goexit()
}

func (a *attempt) Fatal(args ...any) {
	a.Error(args...)
	runtime.Goexit()
}

func (a *attempt) Logf(format string, args ...any) {
	a.logs = append(a.logs, fmt.Sprintf(format, args...))
}

// retryTiming runs body until one attempt passes, and fails the test with
// the last attempt's failures when none does.
func retryTiming(t *testing.T, body func(timing *attempt)) {
	t.Helper()
	interop.SkipIfEmulated(t, "a timing test measures the emulator's speed")
	var last *attempt
	for i := 1; i <= timingAttempts; i++ {
		a := &attempt{}
		done := make(chan struct{})
		go func() { defer close(done); body(a) }()
		<-done
		for _, l := range a.logs {
			t.Log(l)
		}
		if len(a.failures) == 0 {
			if i > 1 {
				t.Logf("passed on attempt %d of %d", i, timingAttempts)
			}
			return
		}
		t.Logf("attempt %d of %d failed: %s", i, timingAttempts, strings.Join(a.failures, "; "))
		last = a
	}
	t.Errorf("failed in all %d attempts; the last:\n%s", timingAttempts, strings.Join(last.failures, "\n"))
}
