package model

import (
	"fmt"
	"net/http"
)

// Error ids of SPEC §3.5.
const (
	ErrInvalidRequestStructure = "invalid-request-structure"
	ErrInvalidParametersFormat = "invalid-parameters-format"
	ErrMissingParameter        = "missing-parameter"
	ErrInvalidItemID           = "invalid-item-id"
	ErrItemIDAlreadyExists     = "item-id-already-exists"
	ErrItemNameAlreadyExists   = "item-name-already-exists"
	ErrUnknownFolder           = "unknown-folder"
	ErrUnknownChannel          = "unknown-channel"
	ErrUnknownEvent            = "unknown-event"
	ErrUnknownAttachment       = "unknown-attachment"
	ErrUnknownAccess           = "unknown-access"
	ErrUnknownBookmark         = "unknown-bookmark"
	ErrUnknownUser             = "unknown-user"
	ErrInvalidOperation        = "invalid-operation"
	ErrPeriodsOverlap          = "periods-overlap"
	ErrInvalidAccessToken      = "invalid-access-token"
	ErrInvalidCredentials      = "invalid-credentials"
	ErrForbidden               = "forbidden"
	ErrTooManyRequests         = "too-many-requests"
	ErrPayloadTooLarge         = "payload-too-large"
	ErrUnexpected              = "unexpected-error"
	// ErrUnavailable is not in SPEC §3.5: a cluster node answers it when
	// the cluster's log cannot take a write (docs/OPERATIONS.md).
	ErrUnavailable = "service-unavailable"
)

var statusOf = map[string]int{
	ErrInvalidRequestStructure: http.StatusBadRequest,
	ErrInvalidParametersFormat: http.StatusBadRequest,
	ErrMissingParameter:        http.StatusBadRequest,
	ErrInvalidItemID:           http.StatusBadRequest,
	ErrItemIDAlreadyExists:     http.StatusBadRequest,
	ErrItemNameAlreadyExists:   http.StatusBadRequest,
	ErrUnknownFolder:           http.StatusBadRequest,
	ErrUnknownChannel:          http.StatusBadRequest,
	ErrUnknownEvent:            http.StatusBadRequest,
	ErrUnknownAttachment:       http.StatusNotFound,
	ErrUnknownAccess:           http.StatusNotFound,
	ErrUnknownBookmark:         http.StatusNotFound,
	ErrUnknownUser:             http.StatusNotFound,
	ErrInvalidOperation:        http.StatusBadRequest,
	ErrPeriodsOverlap:          http.StatusBadRequest,
	ErrInvalidAccessToken:      http.StatusUnauthorized,
	ErrInvalidCredentials:      http.StatusUnauthorized,
	ErrForbidden:               http.StatusForbidden,
	ErrTooManyRequests:         http.StatusTooManyRequests,
	ErrPayloadTooLarge:         http.StatusRequestEntityTooLarge,
	ErrUnexpected:              http.StatusInternalServerError,
	ErrUnavailable:             http.StatusServiceUnavailable,
}

// Error is the one typed error of the API: an error id of SPEC §3.5, a
// message and optional data. HTTP maps it to a status and a JSON body; the
// sync protocol carries it in a rejection; the replica records it.
type Error struct {
	ID      string `json:"id" msgpack:"id"`
	Message string `json:"message" msgpack:"message"`
	Data    any    `json:"data,omitempty" msgpack:"data,omitempty"`
	// InPath marks an unknown-* error about an id taken from the URL path,
	// answered 404 rather than 400.
	InPath bool `json:"-" msgpack:"-"`
}

func (e *Error) Error() string { return e.ID + ": " + e.Message }

// Status returns the HTTP status of the error.
func (e *Error) Status() int {
	if e.InPath {
		switch e.ID {
		case ErrUnknownFolder, ErrUnknownChannel, ErrUnknownEvent:
			return http.StatusNotFound
		}
	}
	if s, ok := statusOf[e.ID]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Errorf returns an *Error with the given id and a formatted message.
func Errorf(id, format string, args ...any) *Error {
	return &Error{ID: id, Message: fmt.Sprintf(format, args...)}
}

// WithData returns e with data attached.
func (e *Error) WithData(data any) *Error { e.Data = data; return e }

// Path returns e marked as concerning an id from the URL path.
func (e *Error) Path() *Error { e.InPath = true; return e }

// FieldError is the common invalid-parameters-format error naming one field.
func FieldError(field, format string, args ...any) *Error {
	return Errorf(ErrInvalidParametersFormat, "%s: %s", field, fmt.Sprintf(format, args...)).
		WithData(map[string]any{"field": field})
}
