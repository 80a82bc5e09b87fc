package logging

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestJSONUnderSystemd: auto picks JSON only when systemd runs the
// process and stderr is not a terminal; text and json are what they say.
func TestJSONUnderSystemd(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv("JOURNAL_STREAM", "")
	t.Setenv("INVOCATION_ID", "")
	if JSON(FormatAuto, f) {
		t.Error("auto chose JSON outside systemd")
	}
	t.Setenv("INVOCATION_ID", "4f0c3b2a")
	if !JSON(FormatAuto, f) {
		t.Error("auto chose text under systemd")
	}
	if JSON(FormatAuto, &bytes.Buffer{}) || JSON(FormatText, f) || !JSON(FormatJSON, &bytes.Buffer{}) {
		t.Error("auto on a buffer, text or json not as asked")
	}
	if IsTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
}
