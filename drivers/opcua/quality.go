package opcua

import (
	"fmt"
	"strings"

	"github.com/gopcua/opcua/ua"

	"hazgate/internal/model"
)

// Quality maps an OPC UA status code onto the gateway's quality (OPC UA
// Part 4, 7.34.1: the two top bits are the severity, 00 Good, 01
// Uncertain, 10 and 11 Bad). The reason names the code, so an operator
// can look it up: "bad: BadNodeIDUnknown (0x80340000)". The low 16 bits
// (info bits such as "overflow" or "limit") do not change the severity
// and are kept in the hex number only.
func Quality(code ua.StatusCode) (model.Quality, string) {
	switch uint32(code) >> 30 {
	case 0:
		return model.Good, ""
	case 1:
		return model.Uncertain, "uncertain: " + statusName(code)
	}
	return model.Bad, "bad: " + statusName(code)
}

// statusName is the code's name without gopcua's "Status" prefix and its
// number, e.g. "BadNodeIDUnknown (0x80340000)".
func statusName(code ua.StatusCode) string {
	if d, ok := ua.StatusCodes[code&0xFFFF0000]; ok {
		return fmt.Sprintf("%s (0x%08X)", strings.TrimPrefix(d.Name, "Status"), uint32(code))
	}
	return fmt.Sprintf("0x%08X", uint32(code))
}

// number converts a variant's value to the float64 the gateway carries:
// booleans are 0/1, every integer and float type converts; anything else
// (strings, arrays, structures) is an error naming the type.
func number(v *ua.Variant) (float64, error) {
	if v == nil {
		return 0, fmt.Errorf("no value")
	}
	switch x := v.Value().(type) {
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case int8:
		return float64(x), nil
	case uint8:
		return float64(x), nil
	case int16:
		return float64(x), nil
	case uint16:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case uint32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	case nil:
		return 0, fmt.Errorf("empty value")
	default:
		return 0, fmt.Errorf("value of type %T is not a number", x)
	}
}
