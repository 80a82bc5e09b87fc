package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"hazgate/internal/model"
	"hazgate/rules"
)

//go:embed assets
var assets embed.FS

// page is parsed once per server; the CSS and script are inlined so the
// page needs nothing from anywhere else (the box may have no internet and
// a laptop on site no cache).
type page struct {
	tmpl *template.Template
}

func newPage() (*page, error) {
	css, err := assets.ReadFile("assets/style.css")
	if err != nil {
		return nil, err
	}
	js, err := assets.ReadFile("assets/refresh.js")
	if err != nil {
		return nil, err
	}
	opjs, err := assets.ReadFile("assets/operate.js")
	if err != nil {
		return nil, err
	}
	trendJS, err := assets.ReadFile("assets/trend.js")
	if err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"css":     func() template.CSS { return template.CSS(css) },
		"js":      func() template.JS { return template.JS(js) },
		"operate": func() template.JS { return template.JS(opjs) },
	}
	funcs["trendjs"] = func() template.JS { return template.JS(trendJS) } // history.go
	t, err := template.New("page.html").Funcs(funcs).ParseFS(assets, "assets/page.html")
	if err != nil {
		return nil, err
	}
	return &page{tmpl: t}, nil
}

// view is what the template renders: the snapshot turned into rows with
// words already in the chosen language.
type view struct {
	Lang, Other, OtherName string
	T                      map[string]string
	GatewayID, Version     string
	Now                    string
	Uptime                 string
	Broker                 string
	BrokerOK               bool
	BrokerDetail           string
	Buffer                 []kv
	BufferOK               bool
	Health                 Health
	Devices                []deviceView
	Active                 []alarmView
	Interlocks             []interlockView
	// Operate shows the operator's buttons: the server has an Operator.
	Operate bool
	// Account is who the actions are recorded as before the typed name:
	// "local" or the basic-auth user.
	Account   string
	History   []kv       // history counters; nil when off (history.go)
	TrendTags []trendTag // the trend's tag selector; nil when history is off
}

type interlockView struct {
	Name, Description, State, Class, Condition, Bypass, Failed string
	Tripped, Bypassed                                          bool
}

type kv struct{ K, V string }

type deviceView struct {
	Name, Protocol, Address, State, StateClass, Detail string
	Tags                                               []tagView
}

type tagView struct {
	Name, Description, Value, Unit, Quality, QualityClass, Reason, Time string
	Alarm, AlarmClass                                                   string
}

type alarmView struct {
	Tag, Device, Level, State, Colour, Since, Value, Limit, Reason, Acked string
	LevelKey                                                              string // hh, h, ..., fault: what an ack names
	CanAck                                                                bool   // not acknowledged yet
	Shelved                                                               string // "until ... by ...", "" when not shelved
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	lang := r.URL.Query().Get("lang")
	if lang != "en" {
		lang = "zh"
	}
	snap := s.src()
	v := buildView(snap, lang)
	v.TrendTags = trendTags(snap, s.hist != nil, r.URL.Query().Get("trend"))
	if s.ops != nil {
		v.Operate, v.Account = true, LocalAccount
		if s.cred != nil {
			v.Account, _, _ = r.BasicAuth()
		}
	}
	var out bytes.Buffer
	if err := s.page.tmpl.Execute(&out, v); err != nil {
		s.log.Error("render status page", "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
	_, _ = w.Write(out.Bytes())
}

func buildView(s Snapshot, lang string) view {
	t := words[lang]
	v := view{Lang: lang, T: t, GatewayID: s.GatewayID, Version: s.Version,
		Now: s.Now.Local().Format("2006-01-02 15:04:05"), Uptime: fmtDuration(s.Uptime)}
	v.Other, v.OtherName = "en", "English"
	if lang == "en" {
		v.Other, v.OtherName = "zh", "中文"
	}
	u := s.Uplink
	v.BrokerOK = u.Connected
	v.Broker = t["disconnected"]
	if u.Connected {
		v.Broker = t["connected"]
	}
	v.BrokerDetail = u.Broker
	if !u.Connected && u.LastError != "" {
		v.BrokerDetail = strings.TrimSpace(u.Broker + " " + u.LastError)
	}
	b := s.Buffer
	v.BufferOK = s.Commit.Err == nil
	var first time.Time // the oldest record waiting in either stream
	for _, st := range []time.Time{b.Event.OldestTime, b.Data.OldestTime} {
		if !st.IsZero() && (first.IsZero() || st.Before(first)) {
			first = st
		}
	}
	oldest := "-"
	if !first.IsZero() {
		oldest = fmtDuration(s.Now.Sub(first))
	}
	v.Buffer = []kv{
		{t["buf_events"], strconv.FormatUint(b.Event.Records, 10)},
		{t["buf_data"], strconv.FormatUint(b.Data.Records, 10)},
		{t["buf_bytes"], fmtBytes(b.Bytes)},
		{t["buf_oldest"], oldest},
		{t["buf_dropped"], strconv.FormatUint(b.Dropped, 10)},
		{t["buf_acked"], strconv.FormatUint(u.AckedRecords, 10)},
	}
	if s.Commit.Err != nil {
		v.Buffer = append(v.Buffer, kv{t["buf_error"], s.Commit.Err.Error()})
	}
	v.Health = CheckHealth(s)
	v.History = historyRows(s.History, t)

	// the worst alarm per tag colours its row
	worst := map[string]rules.ActiveAlarm{}
	for _, a := range s.Active {
		if w, ok := worst[a.Tag]; !ok || rank(a) < rank(w) {
			worst[a.Tag] = a
		}
	}
	for _, d := range s.Devices {
		dv := deviceView{Name: d.Name, Protocol: d.Protocol, Address: d.Address,
			State: t["state_"+string(d.Stats.State)], StateClass: "st-" + string(d.Stats.State)}
		if dv.State == "" {
			dv.State = string(d.Stats.State)
		}
		if d.Stats.LastError != "" && d.Stats.State != "up" {
			dv.Detail = d.Stats.LastError
		}
		for _, tg := range d.Tags {
			tv := tagView{Name: tg.Name, Description: tg.Description, Unit: tg.Unit, Value: "—", Quality: "—"}
			if tg.HasSample {
				sm := tg.Sample
				tv.Value = fmtValue(sm.Value, tg.Digital)
				tv.Quality = t["q_"+qualityKey(sm.Quality)]
				tv.QualityClass = "q-" + qualityKey(sm.Quality)
				tv.Reason = sm.Reason
				tv.Time = sm.Time.Local().Format("15:04:05")
				if sm.Quality != model.Good && !strings.Contains(tv.Value, "—") {
					tv.Value += " ?"
				}
			}
			tv.Alarm, tv.AlarmClass = t["normal"], "al-normal"
			if a, ok := worst[tg.Name]; ok {
				tv.Alarm = levelName(t, a.Level) + " · " + t["as_"+a.State.String()]
				tv.AlarmClass = "al-" + a.Colour
			}
			dv.Tags = append(dv.Tags, tv)
		}
		v.Devices = append(v.Devices, dv)
	}
	for _, a := range s.Active {
		av := alarmView{Tag: a.Tag, Device: a.Device, Level: levelName(t, a.Level), State: t["as_"+a.State.String()],
			Colour: a.Colour, Since: a.Since.Local().Format("01-02 15:04:05"), Reason: a.Reason,
			LevelKey: a.Level, CanAck: a.State == rules.ActiveUnacked || a.State == rules.ReturnedUnacked}
		if a.Level != rules.LevelFault {
			av.Value, av.Limit = fmtValue(a.Value, false), fmtValue(a.Limit, false)
		}
		if a.AckedBy != "" {
			av.Acked = a.AckedBy + " " + a.AckedAt.Local().Format("15:04:05")
		}
		if !a.ShelvedUntil.IsZero() {
			av.Shelved = fmt.Sprintf("%s %s %s", t["shelved_until"], a.ShelvedUntil.Local().Format("01-02 15:04"), a.ShelvedBy)
		}
		v.Active = append(v.Active, av)
	}
	for _, il := range s.Interlocks {
		iv := interlockView{Name: il.Name, Description: il.Description, State: t["il_normal"], Class: "il-normal", Condition: t["no"],
			Tripped: il.Tripped, Bypassed: il.Bypassed}
		if il.Tripped {
			iv.State, iv.Class = t["il_tripped"]+" "+il.TrippedAt.Local().Format("15:04:05"), "il-tripped"
			if il.FirstOut {
				iv.State += " (" + t["il_first"] + ")"
			}
		}
		if il.Condition {
			iv.Condition = t["yes"]
		}
		if il.Bypassed {
			iv.Bypass = fmt.Sprintf("%s %s %s: %s", t["il_until"], il.BypassUntil.Local().Format("01-02 15:04"), il.BypassWho, il.BypassReason)
			if !il.Tripped {
				iv.Class = "il-bypassed"
			}
		}
		iv.Failed = strings.Join(il.FailedOutputs, ", ")
		v.Interlocks = append(v.Interlocks, iv)
	}
	return v
}

// rank orders alarms for colouring a tag's row: red first.
func rank(a rules.ActiveAlarm) int {
	switch a.Colour {
	case "red":
		return 0
	case "orange":
		return 1
	case "yellow":
		return 2
	case "blue":
		return 3
	}
	return 4
}

func levelName(t map[string]string, level string) string {
	if n, ok := t["lv_"+level]; ok {
		return n
	}
	return level
}

func qualityKey(q model.Quality) string {
	switch q {
	case model.Good:
		return "good"
	case model.Uncertain:
		return "uncertain"
	}
	return "bad"
}

func fmtValue(v float64, digital bool) string {
	if digital {
		if v != 0 {
			return "1"
		}
		return "0"
	}
	// three decimals are finer than any field instrument here
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		d = 0
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		return fmt.Sprintf("%dd %s", days, d)
	}
	return d.String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
