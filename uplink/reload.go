package uplink

import "hazgate/internal/config"

// UpdateTags makes the payloads carry the tag metadata (description,
// kind, unit, hazard source, indicator) of a reloaded config from now on,
// including for records already buffered (docs/uplink.md §3.1). The rest
// of cfg is not looked at: what the uplink was built with (brokers,
// credentials, topics, commands) changes only with a restart. Safe to call
// while Run runs.
func (u *Uplink) UpdateTags(cfg *config.Config) { u.enc.setTags(cfg) }

func (e *encoder) setTags(cfg *config.Config) {
	tags := make(map[string]*tagMeta)
	for _, d := range cfg.Devices {
		for _, t := range d.Tags {
			tags[t.Name] = newTagMeta(t.Name, t.Description, t.Kind, t.Unit, t.HazardSource, t.Indicator)
		}
	}
	e.tags.Store(&tags)
}
