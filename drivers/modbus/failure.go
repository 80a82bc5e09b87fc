package modbus

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	gmb "github.com/goburrow/modbus"

	"hazgate/internal/config"
	"hazgate/internal/model"
)

// failure is a sorted request error with the reason its tags get.
type failure struct {
	kind   failKind
	reason string
}

// functionCode is the read function of an area.
func functionCode(area string) byte {
	switch area {
	case config.AreaCoil:
		return gmb.FuncCodeReadCoils
	case config.AreaDiscrete:
		return gmb.FuncCodeReadDiscreteInputs
	case config.AreaHolding:
		return gmb.FuncCodeReadHoldingRegisters
	case config.AreaInput:
		return gmb.FuncCodeReadInputRegisters
	}
	return 0
}

// classify sorts the error of a request with function code fc and words
// the reason for the samples in the terms of model.Reason*.
func classify(err error, fc byte) failure {
	var te *transportError
	if errors.As(err, &te) {
		switch te.kind {
		case failTimeout:
			return failure{te.kind, model.ReasonTimeout}
		case failRefused:
			return failure{te.kind, model.ReasonConnRefused}
		case failCancelled:
			return failure{te.kind, model.ReasonNotPolled}
		case failProtocol:
			return failure{te.kind, model.ReasonConnection + ": invalid response: " + te.err.Error()}
		}
		return failure{te.kind, model.ReasonConnection + ": " + connDetail(te)}
	}
	var me *gmb.ModbusError
	if errors.As(err, &me) {
		if me.FunctionCode != fc|0x80 {
			// goburrow takes any other function code for an exception
			return failure{failProtocol, fmt.Sprintf("%s: invalid response: function code %d", model.ReasonConnection, me.FunctionCode)}
		}
		return failure{failException, fmt.Sprintf("%s: %d (%s)", model.ReasonException, me.ExceptionCode, exceptionName(me.ExceptionCode))}
	}
	// Everything else comes from goburrow's checks of an answer that did
	// arrive: wrong transaction or unit id, inconsistent lengths, an
	// unexpected function code.
	msg := strings.TrimPrefix(err.Error(), "modbus: ")
	if strings.Contains(msg, "transaction id") {
		return failure{failProtocol, model.ReasonTransactionMismatch}
	}
	return failure{failProtocol, model.ReasonConnection + ": invalid response: " + msg}
}

func connDetail(te *transportError) string {
	switch {
	case errors.Is(te.err, io.EOF), errors.Is(te.err, io.ErrUnexpectedEOF):
		return "closed by device during " + te.op
	case errors.Is(te.err, syscall.ECONNRESET):
		return "reset by device during " + te.op
	}
	return te.Error()
}

func exceptionName(code byte) string {
	switch code {
	case 1:
		return "illegal function"
	case 2:
		return "illegal data address"
	case 3:
		return "illegal data value"
	case 4:
		return "server device failure"
	case 5:
		return "acknowledge"
	case 6:
		return "server device busy"
	case 8:
		return "memory parity error"
	case 10:
		return "gateway path unavailable"
	case 11:
		return "gateway target device failed to respond"
	}
	return "unknown"
}
