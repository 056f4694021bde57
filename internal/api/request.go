package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
)

// Decoding of request bodies, shared by every route that takes one: JSON
// only, strict (unknown fields and trailing data refused), errors that
// name the offending field.

// maxBodyBytes bounds every request body (an ingest of 1,000 events fits).
const maxBodyBytes = 5 << 20

// requireJSON checks that the request body is declared as JSON.
func requireJSON(r *http.Request) error {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return invalid("Content-Type", "Content-Type must be application/json")
	}
	return nil
}

// decodeBody reads a JSON object of at most maxBodyBytes, declared as
// JSON, into v, rejecting unknown fields and trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodeStrict("", body, v)
}

// readBody reads a request body of at most maxBodyBytes, declared as JSON.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return nil, &Error{Code: CodePayloadTooLarge, Message: fmt.Sprintf("request body is larger than %d bytes", maxBodyBytes)}
		}
		return nil, invalid("", "could not read the request body")
	}
	return body, nil
}

// decodeStrict decodes one JSON object from data into v. Errors name the
// offending field below prefix.
func decodeStrict(prefix string, data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return invalid(prefix, "%s must be a JSON object", nameOr(prefix, "the body"))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(prefix, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid(prefix, "%s has data after the JSON object", nameOr(prefix, "the body"))
	}
	return nil
}

// jsonError turns an encoding/json error into an invalid_argument error.
func jsonError(prefix string, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return invalid(prefix, "malformed JSON: %v", err)
	case errors.As(err, &typ):
		field := joinField(prefix, typ.Field)
		return invalid(field, "%s must be %s", field, jsonTypeName(typ.Type.String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		field := joinField(prefix, name)
		return invalid(field, "unknown field %s", field)
	}
	return invalid(prefix, "malformed JSON")
}

// jsonInt is an integer field of a request body. JSON Schema, and so the
// document, counts every number whose fraction is zero as an integer
// (200.0, 2e2), which encoding/json refuses for a Go int; this type takes
// them. A fraction, or a value beyond int64, is a *json.UnmarshalTypeError,
// which encoding/json names the field of and jsonError turns into a 400.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil // as for any Go value: null leaves it unchanged
	}
	v, ok := parseJSONInteger(string(data))
	if !ok {
		what := "number " + string(data)
		if data[0] != '-' && (data[0] < '0' || data[0] > '9') {
			what = "non-number"
		}
		return &json.UnmarshalTypeError{Value: what, Type: reflect.TypeFor[int64]()}
	}
	*n = jsonInt(v)
	return nil
}

// parseJSONInteger returns the value of a JSON number literal whose
// fraction is zero (200, 200.0, 2E+2, -0.0, 1.5e1); ok is false for a
// fraction, a value beyond int64 or anything but a number. It works on the
// digits, so no exponent, however large, costs more than the literal's
// length.
func parseJSONInteger(lit string) (n int64, ok bool) {
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, true
	}
	mantissa, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mantissa = lit[:i]
		var err error
		if exp, err = strconv.Atoi(lit[i+1:]); err != nil {
			if !errors.Is(err, strconv.ErrRange) {
				return 0, false
			}
			exp = 1 << 30 // beyond any literal's digits; the sign is kept below
			if strings.HasPrefix(lit[i+1:], "-") {
				exp = -exp
			}
		}
	}
	sign := ""
	if strings.HasPrefix(mantissa, "-") {
		sign, mantissa = "-", mantissa[1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	all := whole + frac
	if all == "" || strings.Trim(all, "0123456789") != "" {
		return 0, false
	}
	digits := strings.TrimLeft(all, "0")
	if digits == "" {
		return 0, true // zero, whatever its exponent
	}
	// point is where the decimal point falls in digits.
	point := len(whole) + exp - (len(all) - len(digits))
	if point < len(digits) {
		if point <= 0 || strings.Trim(digits[point:], "0") != "" {
			return 0, false // a fraction
		}
		digits = digits[:point]
	}
	if point > 19 {
		return 0, false // at least 10^19: beyond int64
	}
	digits += strings.Repeat("0", point-len(digits))
	n, err := strconv.ParseInt(sign+digits, 10, 64)
	return n, err == nil
}

func jsonTypeName(goType string) string {
	switch {
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "[]"):
		return "an array"
	}
	return "an object"
}

func joinField(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "." + name
}

func nameOr(field, fallback string) string {
	if field == "" {
		return fallback
	}
	return field
}
