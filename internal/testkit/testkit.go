// Package testkit holds what the gateway's tests keep needing around
// them: the embedded broker, Mosquitto and the simulated plant and
// reactor on free loopback ports, a gateway (or any other long-running
// part) run in the background until the test ends, polling for a
// condition, the gateway's events as the platform receives them, and the
// files, certificates and buffers those tests write and read.
//
// It is imported from _test.go files only. Nothing in the hazgate binary
// may import it (TestNotInTheBinary checks), so it may
// lean on the testing package freely.
package testkit

import (
	"context"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond every 50 ms until it holds, and fails the test when
// it still does not hold after timeout. what names the condition in the
// failure: "timed out after 10s waiting for first data".
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Runner is a long-running part of the gateway, such as
// *gateway.Gateway: Run works until ctx is cancelled, then returns.
type Runner interface {
	Run(ctx context.Context) error
}

// RunInBackground calls r.Run in a goroutine and returns stop, which
// cancels it and waits up to stopWithin for Run to return. The test fails
// when Run returns an error or does not return in time; name says which
// part in those failures ("gateway stopped with ..."). stop may be called
// any number of times and also runs when the test ends, so a test calls
// it only when it must check what follows an orderly stop.
func RunInBackground(t testing.TB, name string, r Runner, stopWithin time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s stopped with %v", name, err)
				}
			case <-time.After(stopWithin):
				t.Errorf("%s did not stop within %s", name, stopWithin)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
