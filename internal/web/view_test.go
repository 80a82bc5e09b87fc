package web

import (
	"errors"
	"strings"
	"testing"
	"time"

	"hazgate/buffer"
	"hazgate/internal/model"
	"hazgate/rules"
)

func TestBuildView(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	s := Snapshot{
		Now: now,
		Buffer: buffer.Stats{
			Event: buffer.StreamStats{Records: 2, OldestTime: now.Add(-90 * time.Second)},
			Data:  buffer.StreamStats{Records: 5, OldestTime: now.Add(-3 * time.Hour)},
		},
		Commit: Commit{Err: errors.New("disk full")},
		Devices: []Device{{Name: "plc", Tags: []Tag{
			{Name: "A", Unit: "m", HasSample: true, Sample: model.Sample{Value: 1.23456, Quality: model.Bad, Reason: "timeout"}},
			{Name: "B", Digital: true, HasSample: true, Sample: model.Sample{Value: 1}},
			{Name: "C"},
		}}},
		Active: []rules.ActiveAlarm{
			{Tag: "A", Level: "h", Colour: "orange"},
			{Tag: "A", Level: "hh", Colour: "red", State: rules.ActiveUnacked},
		},
	}
	v := buildView(s, "en")
	var oldest, failed string
	for _, kv := range v.Buffer {
		switch kv.K {
		case "Oldest waiting":
			oldest = kv.V
		case "Write failed":
			failed = kv.V
		}
	}
	if oldest != "3h0m0s" || failed != "disk full" || v.BufferOK {
		t.Errorf("buffer view %+v", v.Buffer)
	}
	tags := v.Devices[0].Tags
	if tags[0].Value != "1.235 ?" || tags[0].QualityClass != "q-bad" || tags[0].Reason != "timeout" {
		t.Errorf("bad tag %+v", tags[0])
	}
	if tags[0].AlarmClass != "al-red" || !strings.HasPrefix(tags[0].Alarm, "HH") {
		t.Errorf("the worst alarm does not colour the row: %+v", tags[0])
	}
	if tags[1].Value != "1" || tags[1].AlarmClass != "al-normal" {
		t.Errorf("digital tag %+v", tags[1])
	}
	if tags[2].Value != "—" {
		t.Errorf("tag without a sample %+v", tags[2])
	}
	if zh := buildView(s, "zh"); zh.T["tag"] != "位号" || zh.Devices[0].Tags[0].Quality != "坏" {
		t.Errorf("zh view %+v", zh.Devices[0].Tags[0])
	}
}

func TestWordsComplete(t *testing.T) {
	for k := range words["zh"] {
		if words["en"][k] == "" {
			t.Errorf("en lacks %q", k)
		}
	}
	for k := range words["en"] {
		if words["zh"][k] == "" {
			t.Errorf("zh lacks %q", k)
		}
	}
}
