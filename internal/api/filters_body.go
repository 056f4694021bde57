package api

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/audex-dev/audex"
)

// parseBodyFilters parses the "filters" object of a download or export
// request: list filters by canonical name only; action a string or an
// array of strings, success a boolean, the rest strings. Time bounds,
// order, limit and cursor are not filters.
func parseBodyFilters(raw json.RawMessage) (audex.Filter, error) {
	var f audex.Filter
	if len(raw) == 0 || string(raw) == "null" {
		return f, nil
	}
	var fields map[string]json.RawMessage
	if err := decodeStrict("filters", raw, &fields); err != nil {
		return f, err
	}
	strField := func(name string, raw json.RawMessage) (string, error) {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", invalid("filters."+name, "filters.%s must be a string", name)
		}
		return v, checkText("filters."+name, v, maxParamLength)
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[name]
		field := "filters." + name
		canonical, known := listParamAliases[name]
		switch {
		case !known:
			return f, invalid(field, "unknown filter %q", name)
		case slices.Contains(pagingParams, canonical) || canonical == "since" || canonical == "until":
			return f, invalid(field, "%s is not a filter; time bounds go beside filters, and order, limit and cursor do not apply", name)
		case canonical != name:
			return f, invalid(field, "use the canonical name %s inside filters", canonical)
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			return f, invalid(field, "filters.%s must not be null; leave it out to select every value", name)
		}
		switch name {
		case "action":
			var one string
			if json.Unmarshal(raw, &one) == nil {
				f.Actions = []string{one}
			} else if err := json.Unmarshal(raw, &f.Actions); err != nil || len(f.Actions) == 0 {
				return f, invalid(field, "filters.action must be a string or a non-empty array of strings")
			}
			for _, a := range f.Actions {
				if err := checkText(field, a, maxParamLength); err != nil {
					return f, err
				}
				if a == "" {
					return f, invalid(field, "filters.action must not hold empty strings")
				}
			}
			slices.Sort(f.Actions)
			f.Actions = slices.Compact(f.Actions)
		case "success":
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return f, invalid(field, "filters.success must be a boolean")
			}
			f.Success = &b
		case "source_ip":
			v, err := strField(name, raw)
			if err != nil {
				return f, err
			}
			p, err := parseSourceIP(field, v)
			if err != nil {
				return f, err
			}
			f.SourceIP = &p
		default:
			v, err := strField(name, raw)
			if err != nil {
				return f, err
			}
			*stringFilters(&f)[name] = &v
		}
	}
	return f, nil
}
