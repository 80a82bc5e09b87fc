package history

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Reader is what an export and a trend read: a Store, or a test double.
type Reader interface {
	Range(tag string, from, to time.Time, fn func(Record) error) error
	Tags() ([]string, error)
}

// Format is an export format.
type Format string

const (
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// ParseFormat accepts "csv" and "json".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatCSV, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("format %q is not csv or json", s)
}

// CSVHeader is the first line of a CSV export. A raw sample has
// interval_s 0, count 1 (0 when bad) and min = max = value; an aggregate
// has value = mean of count samples, the extremes in min and max, bad =
// samples without a value, and covers [time, time + interval_s).
var CSVHeader = []string{"time", "tag", "value", "quality", "reason", "min", "max", "count", "bad", "interval_s"}

// Export writes the records of tag in [from, to) to w and returns how
// many it wrote.
func Export(r Reader, w io.Writer, format Format, tag string, from, to time.Time) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	var err error
	switch format {
	case FormatCSV:
		cw := csv.NewWriter(bw)
		if err = cw.Write(CSVHeader); err != nil {
			return 0, err
		}
		row := make([]string, len(CSVHeader))
		err = r.Range(tag, from, to, func(rec Record) error {
			n++
			return cw.Write(csvRow(row, rec))
		})
		cw.Flush()
		if err == nil {
			err = cw.Error()
		}
	case FormatJSON:
		// a JSON array written as it is read: an export of 30 days is not
		// held in memory
		if _, err = bw.WriteString("["); err != nil {
			return 0, err
		}
		enc := json.NewEncoder(bw)
		err = r.Range(tag, from, to, func(rec Record) error {
			if n > 0 {
				if _, err := bw.WriteString(","); err != nil {
					return err
				}
			}
			n++
			return enc.Encode(jsonRecord(rec))
		})
		if err == nil {
			_, err = bw.WriteString("]\n")
		}
	default:
		return 0, fmt.Errorf("history export: unknown format %q", format)
	}
	if err != nil {
		return n, fmt.Errorf("history export of %s: %w", tag, err)
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("history export of %s: %w", tag, err)
	}
	return n, nil
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// FormatTime is how exports write a time: UTC, RFC 3339 with as many
// fractional digits as needed.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func csvRow(row []string, r Record) []string {
	row[0] = FormatTime(r.Time)
	row[1] = r.Tag
	row[2] = fmtFloat(r.Value)
	row[3] = r.Quality.String()
	row[4] = r.Reason
	row[5] = fmtFloat(r.Min)
	row[6] = fmtFloat(r.Max)
	row[7] = strconv.FormatUint(uint64(r.Count), 10)
	row[8] = strconv.FormatUint(uint64(r.Bad), 10)
	row[9] = fmtFloat(r.Interval.Seconds())
	return row
}

// JSONRecord is one record of a JSON export.
type JSONRecord struct {
	Time      string   `json:"time"`
	Tag       string   `json:"tag"`
	Value     float64  `json:"value"`
	Quality   string   `json:"quality"`
	Reason    string   `json:"reason,omitempty"`
	Min       *float64 `json:"min,omitempty"`        // aggregates only
	Max       *float64 `json:"max,omitempty"`        // aggregates only
	Count     *uint32  `json:"count,omitempty"`      // aggregates only
	Bad       *uint32  `json:"bad,omitempty"`        // aggregates only
	IntervalS *float64 `json:"interval_s,omitempty"` // aggregates only
}

func jsonRecord(r Record) JSONRecord {
	j := JSONRecord{Time: FormatTime(r.Time), Tag: r.Tag, Value: finite(r.Value), Quality: r.Quality.String(), Reason: r.Reason}
	if r.Aggregate() {
		mn, mx, iv := finite(r.Min), finite(r.Max), r.Interval.Seconds()
		j.Min, j.Max, j.Count, j.Bad, j.IntervalS = &mn, &mx, &r.Count, &r.Bad, &iv
	}
	return j
}

// finite maps NaN and infinities (which JSON cannot carry) to 0; a device
// that reports them has its sample marked bad by the driver anyway.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}
