// Package logging holds what hazgate adds to log/slog: the choice of
// format (text on a terminal, JSON under systemd) and a handler that
// keeps a repeating message from flooding the log.
package logging

import (
	"io"
	"os"
)

// Formats of Handler.
const (
	FormatAuto = "auto" // JSON under systemd (journal or service), text otherwise
	FormatText = "text"
	FormatJSON = "json"
)

// UnderSystemd reports whether the process runs as a systemd service with
// its output going to the journal rather than to a terminal. systemd sets
// INVOCATION_ID for every service and JOURNAL_STREAM when stdout or
// stderr is connected to the journal.
func UnderSystemd(stderr *os.File) bool {
	if os.Getenv("JOURNAL_STREAM") == "" && os.Getenv("INVOCATION_ID") == "" {
		return false
	}
	return !IsTerminal(stderr)
}

// IsTerminal reports whether f is a character device (a terminal), without
// a dependency on x/term: close enough for choosing a log format.
func IsTerminal(f *os.File) bool {
	if f == nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// JSON says whether format asks for JSON when writing to w: "json", or
// "auto" with w being stderr under systemd.
func JSON(format string, w io.Writer) bool {
	switch format {
	case FormatJSON:
		return true
	case FormatAuto:
		f, ok := w.(*os.File)
		return ok && UnderSystemd(f)
	}
	return false
}
