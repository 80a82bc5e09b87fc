package history

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// BenchmarkWriteManyTags is the history write of a large gateway: 50 000
// tags polled once a second, written as the writer does, one transaction
// per flush round holding perTag samples of every tag. It reports the CPU
// time per million samples (the unit of docs/PERFORMANCE.md's capacity
// table) and the bytes allocated per sample. The file is warmed first so
// that every tag's bucket has left bbolt's inline form, as it has in a
// gateway that has run a minute. heap-inuse-MiB is taken after the last
// round, before a collection: what the transactions left to collect.
//
//	go test -run '^$' -bench WriteManyTags -benchtime 5x ./internal/history/
func BenchmarkWriteManyTags(b *testing.B) {
	const nTags = 50_000
	tags := make([]string, nTags)
	for i := range tags {
		tags[i] = fmt.Sprintf("DEV%03d.TT-%05d", i/500, i)
	}
	// "store": one Store.Write per round, as the writer did before rounds
	// grew with the tags; "writer": the writer's flush, which splits a
	// round into transactions of tagsPerTx tags.
	for _, c := range []struct {
		via    string
		perTag int
	}{{"store", 1}, {"store", 5}, {"store", 10}, {"writer", 10}} {
		perTag := c.perTag
		b.Run(fmt.Sprintf("%s/tags50000x%d", c.via, perTag), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), File), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			next := t0
			w, f := NewWriter(s), &flusher{}
			round := func(n int) {
				batch := samples(tags, next, time.Second, n)
				if c.via == "writer" {
					w.flush(batch, f)
				} else if err := s.Write(batch); err != nil {
					b.Fatal(err)
				}
				next = next.Add(time.Duration(n) * time.Second)
			}
			// past the inline size: each tag has a page of its own (a
			// bucket under 1 KB is stored inline in its parent's page;
			// in chunks that takes a few hundred samples)
			for range 6 {
				round(40)
			}
			runtime.GC()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				round(perTag)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&m1)
			n := float64(b.N * perTag * nTags)
			b.ReportMetric(n/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(cpu.Seconds()/n*1e6, "cpu-s/Msample")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/n, "alloc-B/sample")
			b.ReportMetric(float64(m1.HeapInuse)/(1<<20), "heap-inuse-MiB")
			b.ReportMetric(0, "ns/op")
			if st := w.Stats(); st.Failed != 0 {
				b.Fatalf("writer %+v", st)
			}
		})
	}
}
