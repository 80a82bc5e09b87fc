package buffer

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"hazgate/internal/model"
)

// Every Append in these benchmarks is durable: it returns after its fsync.

func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run("batch="+strconv.Itoa(n), func(b *testing.B) {
			buf := openT(b, filepath.Join(b.TempDir(), "buf.db"), Options{})
			samples := mkSamples(n, 0, t0)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := buf.Append(ctx, nil, samples); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(buf.Stats().Commits)/float64(b.N), "commits/op")
		})
	}
}

func BenchmarkAppendConcurrent(b *testing.B) {
	const workers, n = 8, 100
	buf := openT(b, filepath.Join(b.TempDir(), "buf.db"), Options{})
	samples := mkSamples(n, 0, t0)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + workers - 1) / workers
	for range workers {
		wg.Go(func() {
			for range per {
				if err := buf.Append(ctx, nil, samples); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(per*workers*n)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(per*workers)/float64(buf.Stats().Commits), "appends/commit")
}

func BenchmarkRead(b *testing.B) {
	buf := openT(b, filepath.Join(b.TempDir(), "buf.db"), Options{})
	for i := range 100 {
		appendT(b, buf, nil, mkSamples(1000, float64(i*1000), t0))
	}
	b.ReportAllocs()
	b.ResetTimer()
	after := uint64(0)
	read := 0
	for b.Loop() {
		recs, err := buf.Read(model.StreamData, after, 500)
		if err != nil {
			b.Fatal(err)
		}
		read += len(recs)
		after = recs[len(recs)-1].Seq
		if after >= 100_000 {
			after = 0
		}
	}
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
}
