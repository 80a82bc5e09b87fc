package main

import (
	"bytes"
	"strings"
	"testing"

	"hazgate/internal/sim"
	"hazgate/internal/testkit"
)

// TestOPCUATool browses and reads the simulated reactor the way an
// integrator would on site.
func TestOPCUATool(t *testing.T) {
	r := testkit.StartReactor(t, sim.ReactorOptions{})
	if err := r.Set(sim.TT301, 91.25); err != nil {
		t.Fatal(err)
	}
	ep := r.Endpoint()

	var out, errb bytes.Buffer
	if code := run([]string{"opcua", "browse", ep, "ns=1;s=R-301"}, &out, &errb); code != exitOK {
		t.Fatalf("browse: exit %d, %s", code, errb.String())
	}
	for _, want := range []string{"ns=1;s=R-301.TT-301", "Variable", "Double", "91.25", "ns=1;s=R-301.HS-301", "read/write"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("browse output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	errb.Reset()
	code := run([]string{"opcua", "read", ep, "ns=1;s=R-301.TT-301", "ns=1;s=R-301.Missing"}, &out, &errb)
	if code != exitFailure {
		t.Errorf("read with a missing node: exit %d, want %d", code, exitFailure)
	}
	if s := out.String(); !strings.Contains(s, "91.25") || !strings.Contains(s, "BadNodeIDUnknown") {
		t.Errorf("read output:\n%s", s)
	}

	errb.Reset()
	if code := run([]string{"opcua", "read", ep, "ns=1;q=1"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "identifier type") {
		t.Errorf("bad node id: exit %d, %s", code, errb.String())
	}
}
