package model_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

func TestErrorStatusOfEveryID(t *testing.T) {
	for _, c := range []struct {
		id     string
		status int
	}{
		{model.ErrInvalidRequestStructure, http.StatusBadRequest},
		{model.ErrInvalidParametersFormat, http.StatusBadRequest},
		{model.ErrMissingParameter, http.StatusBadRequest},
		{model.ErrInvalidItemID, http.StatusBadRequest},
		{model.ErrItemIDAlreadyExists, http.StatusBadRequest},
		{model.ErrItemNameAlreadyExists, http.StatusBadRequest},
		{model.ErrUnknownFolder, http.StatusBadRequest},
		{model.ErrUnknownChannel, http.StatusBadRequest},
		{model.ErrUnknownEvent, http.StatusBadRequest},
		{model.ErrUnknownAttachment, http.StatusNotFound},
		{model.ErrUnknownAccess, http.StatusNotFound},
		{model.ErrUnknownBookmark, http.StatusNotFound},
		{model.ErrUnknownUser, http.StatusNotFound},
		{model.ErrInvalidOperation, http.StatusBadRequest},
		{model.ErrPeriodsOverlap, http.StatusBadRequest},
		{model.ErrInvalidAccessToken, http.StatusUnauthorized},
		{model.ErrInvalidCredentials, http.StatusUnauthorized},
		{model.ErrForbidden, http.StatusForbidden},
		{model.ErrTooManyRequests, http.StatusTooManyRequests},
		{model.ErrPayloadTooLarge, http.StatusRequestEntityTooLarge},
		{model.ErrUnexpected, http.StatusInternalServerError},
		{"no-such-error-id", http.StatusInternalServerError},
	} {
		if got, want := model.Errorf(c.id, "x").Status(), c.status; got != want {
			t.Fatalf("%s: got %d, want %d", c.id, got, want)
		}
	}
}

func TestErrorStatusOfIDInPath(t *testing.T) {
	for _, c := range []struct {
		id     string
		status int
	}{
		{model.ErrUnknownEvent, http.StatusNotFound},
		{model.ErrUnknownFolder, http.StatusNotFound},
		{model.ErrUnknownChannel, http.StatusNotFound},
		{model.ErrUnknownAttachment, http.StatusNotFound},
		{model.ErrUnknownAccess, http.StatusNotFound},
		{model.ErrInvalidItemID, http.StatusBadRequest},
		{model.ErrInvalidParametersFormat, http.StatusBadRequest},
		{model.ErrForbidden, http.StatusForbidden},
	} {
		if got, want := model.Errorf(c.id, "x").Path().Status(), c.status; got != want {
			t.Fatalf("%s in path: got %d, want %d", c.id, got, want)
		}
	}
}

func TestErrorCarriesIDMessageAndData(t *testing.T) {
	e := model.Errorf(model.ErrPeriodsOverlap, "overlaps %d periods", 2).WithData(map[string]any{"overlappedIds": []string{"a", "b"}})
	if got, want := e.Error(), "periods-overlap: overlaps 2 periods"; got != want {
		t.Fatalf("Error: got %q, want %q", got, want)
	}
	if got, want := e.Message, "overlaps 2 periods"; got != want {
		t.Fatalf("Message: got %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("apply change 3: %w", e)
	var got *model.Error
	if !errors.As(wrapped, &got) || got != e {
		t.Fatalf("errors.As through a wrap: got %v, want %v", got, e)
	}
	if got, want := got.Data.(map[string]any)["overlappedIds"].([]string)[1], "b"; got != want {
		t.Fatalf("Data: got %q, want %q", got, want)
	}
}

func TestFieldErrorNamesTheField(t *testing.T) {
	err := model.FieldError("time", "must be a number, not %q", "now")
	if got, want := err.ID, model.ErrInvalidParametersFormat; got != want {
		t.Fatalf("ID: got %q, want %q", got, want)
	}
	if got, want := errField(err), "time"; got != want {
		t.Fatalf("field: got %q, want %q", got, want)
	}
	if got, want := err.Message, `time: must be a number, not "now"`; got != want {
		t.Fatalf("Message: got %q, want %q", got, want)
	}
	if got, want := err.Status(), http.StatusBadRequest; got != want {
		t.Fatalf("Status: got %d, want %d", got, want)
	}
}
