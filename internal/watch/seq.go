package watch

import "sort"

// seqTrack follows one (gateway, stream) as docs/uplink.md §4.2 says: the
// numbers received, and the ranges the gateway reported as dropped. The
// watch starts in the middle of a stream, so the lowest number received is
// where it begins; a resend after a reconnection may lower it, which is
// fine because the gateway resends from its oldest unacknowledged record
// onwards, without holes.
type seqTrack struct {
	seen      map[uint64]bool
	explained []Range
	low, high uint64 // lowest and highest number received; 0 = none yet
	received  uint64
	dups      uint64
	// firstClaim and lastClaim are what the gateway's status messages said
	// the broker had acknowledged on this stream (see claimedAcked), at
	// the first and the latest status seen; 0 = no status yet.
	firstClaim, lastClaim uint64
	claims                int
}

// claim records an acknowledged-through number from a status message.
func (t *seqTrack) claim(acked uint64) {
	if t.claims == 0 {
		t.firstClaim = acked
	}
	t.lastClaim = acked
	t.claims++
}

// silentLoss reports the range the gateway says the broker acknowledged
// during the watch but that never reached us: the signature of a broker
// that acknowledges and drops (an ACL under MQTT 3.1.1, docs/uplink.md §1).
// Only numbers acknowledged after the first status count, because the
// watch may have started after the earlier ones were delivered.
func (t *seqTrack) silentLoss() (Range, bool) {
	if t.claims < 2 || t.lastClaim <= t.firstClaim || t.high >= t.lastClaim {
		return Range{}, false
	}
	from := max(t.firstClaim, t.high) + 1
	return Range{from, t.lastClaim}, true
}

func newSeqTrack() *seqTrack { return &seqTrack{seen: make(map[uint64]bool)} }

// add records seq and reports whether it is new (false: a duplicate).
func (t *seqTrack) add(seq uint64) bool {
	if t.seen[seq] {
		t.dups++
		return false
	}
	t.seen[seq] = true
	t.received++
	if t.low == 0 || seq < t.low {
		t.low = seq
	}
	if seq > t.high {
		t.high = seq
	}
	return true
}

// explain marks r as known loss (a gap event).
func (t *seqTrack) explain(r Range) { t.explained = append(t.explained, r) }

func (t *seqTrack) isExplained(seq uint64) bool {
	for _, r := range t.explained {
		if seq >= r.First && seq <= r.Last {
			return true
		}
	}
	return false
}

// missing lists, as ranges, the numbers between low and high that never
// arrived and that no gap event explains.
func (t *seqTrack) missing() []Range {
	if t.received == 0 {
		return nil
	}
	var out []Range
	// Walk only the holes: sort what was received, look between neighbours.
	got := make([]uint64, 0, len(t.seen))
	for s := range t.seen {
		got = append(got, s)
	}
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	for i := 1; i < len(got); i++ {
		for s := got[i-1] + 1; s < got[i]; s++ {
			if t.isExplained(s) {
				continue
			}
			if n := len(out); n > 0 && out[n-1].Last == s-1 {
				out[n-1].Last = s
			} else {
				out = append(out, Range{s, s})
			}
		}
	}
	return out
}
