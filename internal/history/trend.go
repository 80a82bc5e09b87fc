package history

import (
	"errors"
	"math"
	"time"
)

// Point is one step of a trend: the records of one slice of the window
// reduced to their extremes and mean, so a chart of 30 days draws a few
// hundred points and still shows every peak.
type Point struct {
	Time  time.Time `json:"-"`
	T     string    `json:"t"` // start of the slice, RFC 3339 UTC
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Mean  float64   `json:"mean"`
	Count uint64    `json:"count"` // samples with a value
	Bad   uint64    `json:"bad"`   // samples without one
}

// MaxPoints bounds the points of one trend.
const MaxPoints = 2000

// Trend reduces the records of tag in [from, to) to at most points
// slices of equal length. Slices without records are left out; a slice
// with only bad samples has Count 0. When the first record is later than
// from (a gateway started an hour ago, asked for a day), the slices start
// at that record, so the chart spreads what there is instead of drawing
// it in one corner; start is where they begin.
func Trend(r Reader, tag string, from, to time.Time, points int) (pts []Point, start time.Time, err error) {
	points = min(max(points, 1), MaxPoints)
	errFound := errors.New("found")
	err = r.Range(tag, from, to, func(rec Record) error {
		if rec.Time.After(from) {
			from = rec.Time.Truncate(time.Second)
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return nil, from, err
	}
	span := to.Sub(from)
	if span <= 0 {
		return nil, from, nil
	}
	step := max(span/time.Duration(points), time.Nanosecond)
	var (
		out []Point
		cur *Point
		sum float64
	)
	end := func() {
		if cur != nil && cur.Count > 0 {
			cur.Mean = sum / float64(cur.Count)
		}
		if cur != nil && cur.Count == 0 {
			cur.Min, cur.Max = 0, 0
		}
	}
	err = r.Range(tag, from, to, func(rec Record) error {
		i := rec.Time.Sub(from) / step
		at := from.Add(i * step)
		if cur == nil || !cur.Time.Equal(at) {
			end()
			out = append(out, Point{Time: at.UTC(), T: FormatTime(at), Min: math.Inf(1), Max: math.Inf(-1)})
			cur, sum = &out[len(out)-1], 0
		}
		cur.Bad += uint64(rec.Bad)
		if rec.Count == 0 {
			return nil
		}
		cur.Count += uint64(rec.Count)
		sum += finite(rec.Value) * float64(rec.Count)
		cur.Min = math.Min(cur.Min, finite(rec.Min))
		cur.Max = math.Max(cur.Max, finite(rec.Max))
		return nil
	})
	end()
	return out, from, err
}
