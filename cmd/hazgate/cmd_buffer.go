package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"hazgate/buffer"
	"hazgate/internal/config"
	"hazgate/internal/gateway"
	"hazgate/internal/model"
)

// cmdBuffer inspects a gateway's buffer while the gateway is stopped:
//
//	hazgate buffer stats (-c FILE | --data DIR)
//	hazgate buffer dump  (-c FILE | --data DIR) [--stream data|event] [--from SEQ] [--limit N]
func cmdBuffer(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "stats" && args[0] != "dump") {
		fmt.Fprintln(stderr, "usage: hazgate buffer stats|dump (-c FILE | --data DIR) [--stream data|event] [--from SEQ] [--limit N]")
		return exitUsage
	}
	sub := args[0]
	fs := flag.NewFlagSet("buffer "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "", "the gateway's config file (its data_dir holds the buffer)")
	dataDir := fs.String("data", "", "the data directory, instead of -c")
	stream := fs.String("stream", "data", "dump: data or event")
	from := fs.Uint64("from", 0, "dump: first sequence number")
	limit := fs.Int("limit", 100, "dump: records at most")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	dir := *dataDir
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitUsage
		}
		dir = cfg.Gateway.DataDir
	}
	if dir == "" {
		fmt.Fprintln(stderr, "hazgate buffer: name the buffer with -c FILE or --data DIR")
		return exitUsage
	}
	path := filepath.Join(dir, gateway.BufferFile)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(stderr, "hazgate buffer: no buffer at %s: %v\n", path, err)
		return exitFailure
	}
	buf, err := buffer.Open(path, buffer.Options{})
	if errors.Is(err, buffer.ErrLocked) {
		fmt.Fprintf(stderr, "hazgate buffer: %s is in use: a gateway is running on it. Stop it first (systemctl stop hazgate); the buffer cannot be read while the gateway writes it.\n", path)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "hazgate buffer: %v\n", err)
		return exitFailure
	}
	defer buf.Close()

	if sub == "stats" {
		printBufferStats(stdout, path, buf.Stats())
		return exitOK
	}
	var st model.Stream
	switch *stream {
	case "data":
		st = model.StreamData
	case "event":
		st = model.StreamEvent
	default:
		fmt.Fprintf(stderr, "hazgate buffer dump: --stream %q is not data or event\n", *stream)
		return exitUsage
	}
	after := uint64(0)
	if *from > 0 {
		after = *from - 1
	}
	recs, err := buf.Read(st, after, *limit)
	if err != nil {
		fmt.Fprintf(stderr, "hazgate buffer dump: %v\n", err)
		return exitFailure
	}
	enc := json.NewEncoder(stdout)
	for _, r := range recs {
		var v any = r.Sample
		if st == model.StreamEvent {
			v = r.Event
		}
		if err := enc.Encode(map[string]any{"seq": r.Seq, "stream": st.String(), "record": v}); err != nil {
			fmt.Fprintf(stderr, "hazgate buffer dump: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

func printBufferStats(w io.Writer, path string, st buffer.Stats) {
	fmt.Fprintf(w, "buffer %s: %d bytes of records in a %d-byte file, %d commits since open\n", path, st.Bytes, st.FileSize, st.Commits)
	for _, s := range []struct {
		name string
		s    buffer.StreamStats
	}{{"event", st.Event}, {"data", st.Data}} {
		age := "-"
		if !s.s.OldestTime.IsZero() {
			age = time.Since(s.s.OldestTime).Round(time.Second).String()
		}
		fmt.Fprintf(w, "  %-5s %d records waiting (seq %d..%d), next seq %d, oldest %s old, %d dropped over the file's life\n",
			s.name, s.s.Records, s.s.OldestSeq, s.s.NewestSeq, s.s.NextSeq, age, s.s.Dropped)
	}
	if st.CorruptRecords > 0 {
		fmt.Fprintf(w, "  %d damaged records were found and removed\n", st.CorruptRecords)
	}
}
