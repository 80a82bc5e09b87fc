// Package interop lets tests that talk to independent peers (Mosquitto,
// libmodbus, mbpoll, socat, node-opcua) say what they need. A developer
// without a peer installed sees the test skipped with the reason; CI, which
// installs every peer and sets HAZGATE_INTEROP=1, fails instead, so an
// interop test can never pass by not running.
package interop

import (
	"os"
	"os/exec"
	"testing"
)

// Env is the variable .ci/run sets to make missing peers an error.
const Env = "HAZGATE_INTEROP"

// EmulatedEnv is set by scripts/test.sh while it runs the arm64 and armv7
// test binaries under qemu-user: there the unit tests check what differs
// by architecture (word size, alignment, byte order in codecs, the 32-bit
// mmap of bbolt), while wall-clock timing and talks with peer processes
// measure the emulator, not the code, and are skipped.
const EmulatedEnv = "HAZGATE_EMULATED"

// Emulated reports whether the tests run under CPU emulation.
func Emulated() bool { return os.Getenv(EmulatedEnv) == "1" }

// SkipIfEmulated skips a test whose result depends on real CPU speed.
func SkipIfEmulated(tb testing.TB, why string) {
	tb.Helper()
	if Emulated() {
		tb.Skipf("under CPU emulation (%s=1): %s", EmulatedEnv, why)
	}
}

// Required reports whether missing peers must fail the test.
func Required() bool { return os.Getenv(Env) == "1" }

// Require returns the absolute paths of the named programs, or skips (fails
// under HAZGATE_INTEROP=1) when one is not installed.
func Require(tb testing.TB, programs ...string) []string {
	tb.Helper()
	SkipIfEmulated(tb, "interop with peer processes runs natively (the peers are not emulated, only the timing would be)")
	paths := make([]string, len(programs))
	for i, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			if Required() {
				tb.Fatalf("interop peer %q is not installed (%v); .ci/run must install it", p, err)
			}
			tb.Skipf("interop peer %q is not installed; set %s=1 to make this a failure", p, Env)
		}
		paths[i] = path
	}
	return paths
}
