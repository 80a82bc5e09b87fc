package history

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"hazgate/internal/model"
)

// BenchmarkWrite measures what the history writer stores per second and
// how many bytes one sample takes on disk, for flushes of 1000 samples
// (100 tags, ten polls: a second of a large plant) and of 10 000.
//
//	go test -run '^$' -bench Write -benchtime 200x ./internal/history/
func BenchmarkWrite(b *testing.B) {
	for _, polls := range []int{10, 100} {
		b.Run(map[int]string{10: "flush1000", 100: "flush10000"}[polls], func(b *testing.B) {
			tags := make([]string, 100)
			for i := range tags {
				tags[i] = "TAG-" + string(rune('A'+i/26)) + string(rune('a'+i%26))
			}
			s, err := Open(filepath.Join(b.TempDir(), File), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := samples(tags, t0, 100*time.Millisecond, polls)
			n := 0
			b.ResetTimer()
			for i := range b.N {
				for j := range batch {
					batch[j].Time = batch[j].Time.Add(time.Duration(polls) * 100 * time.Millisecond)
					batch[j].Value += 0.001 * float64(i)
				}
				if err := s.Write(batch); err != nil {
					b.Fatal(err)
				}
				n += len(batch)
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(st.Bytes)/float64(n), "record-bytes/sample")
			b.ReportMetric(float64(st.FileSize)/float64(n), "file-bytes/sample")
		})
	}
}

// BenchmarkOffer is the cost the pipeline's committer pays per committed
// batch of 100 samples: a copy into the writer's queue. The queue is
// drained by a goroutine that only receives, so the figure is the
// committer's side alone.
//
//	go test -run '^$' -bench Offer ./internal/history/
func BenchmarkOffer(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), File), Options{QueueBatches: 1024})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := NewWriter(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-w.queue:
			case <-ctx.Done():
				return
			}
		}
	}()
	batch := make([]model.Sample, 100)
	for i := range batch {
		batch[i] = model.Sample{Tag: "LT-101", Value: float64(i), Time: t0.Add(time.Duration(i))}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w.Offer(batch)
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkExportCSV measures how fast a CSV export reads and writes one
// tag's records (a day at 1 s is 86 400).
//
//	go test -run '^$' -bench ExportCSV ./internal/history/
func BenchmarkExportCSV(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), File), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 86400
	if err := s.Write(samples([]string{"LT-101"}, t0, time.Second, n)); err != nil {
		b.Fatal(err)
	}
	var out countWriter
	b.ResetTimer()
	for range b.N {
		if _, err := Export(s, &out, FormatCSV, "LT-101", t0, t0.Add(n*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(out)/float64(n*b.N), "bytes/record")
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// BenchmarkDownsample measures a retention pass that folds six hours of
// 100 tags polled every second (2.16 M samples) into one-minute
// aggregates, as it runs when a full history first passes max_bytes.
//
//	go test -run '^$' -bench Downsample -benchtime 1x ./internal/history/
func BenchmarkDownsample(b *testing.B) {
	tags := make([]string, 100)
	for i := range tags {
		tags[i] = fmt.Sprintf("TT-%03d", i)
	}
	for range b.N {
		b.StopTimer()
		clk := &clock{t: t0}
		s, err := Open(filepath.Join(b.TempDir(), File), Options{MaxBytes: 8 << 20, DownsampleInterval: time.Minute, Now: clk.Now})
		if err != nil {
			b.Fatal(err)
		}
		for m := range 6 * 60 {
			if err := s.Write(samples(tags, t0.Add(time.Duration(m)*time.Minute), time.Second, 60)); err != nil {
				b.Fatal(err)
			}
		}
		before := s.Stats()
		clk.Set(t0.Add(7 * time.Hour))
		b.StartTimer()
		start := time.Now()
		if err := s.Enforce(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.StopTimer()
		after := s.Stats()
		b.ReportMetric(float64(after.Downsampled)/el.Seconds(), "samples-folded/s")
		b.ReportMetric(float64(before.Bytes)/(1<<20), "MiB-before")
		b.ReportMetric(float64(after.Bytes)/(1<<20), "MiB-after")
		b.ReportMetric(float64(after.Deleted), "deleted")
		s.Close()
	}
}
