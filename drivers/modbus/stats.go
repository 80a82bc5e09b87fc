package modbus

import (
	"errors"
	"sync"
	"time"

	"hazgate/drivers/modbus/rtuframe"
)

// Stats are a driver's (or a bus's) counters since it was made.
type Stats struct {
	Requests      uint64        // requests sent (or attempted), reads and writes
	Writes        uint64        // of those: writes
	Errors        uint64        // requests that failed, for any reason
	Timeouts      uint64        // of those: no answer within the timeout
	CRCErrors     uint64        // of those: an RTU frame whose CRC did not match
	Exceptions    uint64        // of those: exception answers
	Reconnects    uint64        // connections opened after the first
	LastError     string        // the latest failure, "" if none
	LastErrorAt   time.Time     // when it happened (UTC)
	LastRoundTrip time.Duration // from sending the latest request to the end of its answer
}

// Stats returns a snapshot of the driver's counters.
func (d *driver) Stats() Stats { return d.stats.snapshot() }

type statsCounter struct {
	mu     sync.Mutex
	s      Stats
	opened uint64
}

func (c *statsCounter) request(rtt time.Duration, opened uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Requests++
	c.s.LastRoundTrip = rtt
	for range opened {
		if c.opened > 0 {
			c.s.Reconnects++
		}
		c.opened++
	}
}

func (c *statsCounter) write() {
	c.mu.Lock()
	c.s.Writes++
	c.mu.Unlock()
}

func (c *statsCounter) fail(kind failKind, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Errors++
	switch kind {
	case failTimeout:
		c.s.Timeouts++
	case failException:
		c.s.Exceptions++
	}
	if errors.Is(err, rtuframe.ErrCRC) {
		c.s.CRCErrors++
	}
	c.s.LastError = err.Error()
	c.s.LastErrorAt = time.Now().UTC()
}

func (c *statsCounter) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}
