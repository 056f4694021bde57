package api

import (
	"maps"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/audex-dev/audex"
)

// Limits on list parameters.
const (
	defaultLimit   = 100
	maxLimit       = 1000
	maxParamLength = 1024
)

// listParamAliases maps every accepted list parameter, canonical or alias,
// to its canonical name.
var listParamAliases = map[string]string{
	"since": "since", "from": "since",
	"until": "until", "to": "until",
	"action":        "action",
	"action_prefix": "action_prefix",
	"actor_id":      "actor_id", "identity_id": "actor_id",
	"actor_type": "actor_type", "identity_type": "actor_type",
	"target_id":       "target_id",
	"target_type":     "target_type",
	"resource_prefix": "resource_prefix", "path_prefix": "resource_prefix",
	"success":    "success",
	"source_ip":  "source_ip",
	"request_id": "request_id",
	"order":      "order", "sort_order": "order",
	"sort_by": "sort_by",
	"limit":   "limit",
	"cursor":  "cursor",
}

// listQuery is a parsed list request.
type listQuery struct {
	filter audex.Filter
	order  audex.Order
	limit  int
	cursor string
}

// Parameters that only listings take (not summaries).
var pagingParams = []string{"order", "sort_by", "limit", "cursor"}

// parseListQuery parses the query string of GET /v1/audit/events, less the
// canonical parameters in excluded (and their aliases). Unknown parameters,
// a parameter given twice (or with its alias) and malformed values are
// errors naming the parameter.
func parseListQuery(rawQuery string, excluded ...string) (listQuery, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return listQuery{}, invalid("", "malformed query string")
	}
	params := map[string][]string{}
	given := map[string]string{} // canonical name -> name used
	// Sorted, so that the error about a parameter given twice always names
	// the same one.
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vals := values[name]
		canonical, ok := listParamAliases[name]
		if !ok || slices.Contains(excluded, canonical) {
			return listQuery{}, invalid(name, "unknown query parameter %q", name)
		}
		if other, dup := given[canonical]; dup {
			return listQuery{}, invalid(name, "%s and %s are the same parameter; give one", other, name)
		}
		given[canonical] = name
		if len(vals) > 1 && canonical != "action" {
			return listQuery{}, invalid(name, "%s may be given only once", name)
		}
		for _, v := range vals {
			if err := checkText(name, v, maxParamLength); err != nil {
				return listQuery{}, err
			}
		}
		params[canonical] = vals
	}
	q := listQuery{order: audex.OrderDesc, limit: defaultLimit}
	one := func(canonical string) (string, string, bool) {
		vals, ok := params[canonical]
		if !ok {
			return "", "", false
		}
		return vals[0], given[canonical], true
	}
	f := &q.filter
	if v, name, ok := one("since"); ok {
		t, err := parseTime(name, v)
		if err != nil {
			return q, err
		}
		f.Since = &t
	}
	if v, name, ok := one("until"); ok {
		t, err := parseTime(name, v)
		if err != nil {
			return q, err
		}
		f.Until = &t
	}
	if err := checkRange(f.Since, f.Until, given["until"]); err != nil {
		return q, err
	}
	if vals, ok := params["action"]; ok {
		for _, v := range vals {
			for _, a := range strings.Split(v, ",") {
				if a == "" {
					return q, invalid("action", "action must not contain empty values")
				}
				f.Actions = append(f.Actions, a)
			}
		}
		slices.Sort(f.Actions)
		f.Actions = slices.Compact(f.Actions)
	}
	for canonical, dst := range stringFilters(f) {
		if v, _, ok := one(canonical); ok {
			*dst = &v
		}
	}
	if v, name, ok := one("success"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil || (v != "true" && v != "false") {
			return q, invalid(name, "success must be true or false")
		}
		f.Success = &b
	}
	if v, name, ok := one("source_ip"); ok {
		p, err := parseSourceIP(name, v)
		if err != nil {
			return q, err
		}
		f.SourceIP = &p
	}
	if v, name, ok := one("order"); ok {
		switch audex.Order(v) {
		case audex.OrderAsc, audex.OrderDesc:
			q.order = audex.Order(v)
		default:
			return q, invalid(name, "%s must be asc or desc", name)
		}
	}
	if v, name, ok := one("sort_by"); ok && v != "occurred_at" && v != "timestamp" {
		return q, invalid(name, "sort_by must be occurred_at (or its synonym timestamp)")
	}
	if v, _, ok := one("limit"); ok {
		n, err := parseLimit(map[string]string{"limit": v})
		if err != nil {
			return q, err
		}
		q.limit = n
	}
	if v, _, ok := one("cursor"); ok {
		if v == "" {
			return q, invalid("cursor", "cursor must not be empty")
		}
		q.cursor = v
	}
	return q, nil
}

// parseSimpleQuery parses a query string whose parameters are all in
// allowed and given at most once; absent ones map to "".
func parseSimpleQuery(rawQuery string, allowed ...string) (map[string]string, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalid("", "malformed query string")
	}
	out := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		vals := values[name]
		switch {
		case !slices.Contains(allowed, name):
			return nil, invalid(name, "unknown query parameter %q", name)
		case len(vals) > 1:
			return nil, invalid(name, "%s may be given only once", name)
		}
		if err := checkText(name, vals[0], maxParamLength); err != nil {
			return nil, err
		}
		if vals[0] == "" {
			return nil, invalid(name, "%s must not be empty", name)
		}
		out[name] = vals[0]
	}
	return out, nil
}

// parseLimit reads q["limit"]: 1 to maxLimit, default defaultLimit.
func parseLimit(q map[string]string) (int, error) {
	v, ok := q["limit"]
	if !ok {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, invalid("limit", "limit must be an integer from 1 to %d", maxLimit)
	}
	return n, nil
}

// stringFilters maps the canonical names of f's plain string filters to
// its fields.
func stringFilters(f *audex.Filter) map[string]**string {
	return map[string]**string{
		"action_prefix": &f.ActionPrefix, "actor_id": &f.ActorID, "actor_type": &f.ActorType,
		"target_id": &f.TargetID, "target_type": &f.TargetType, "resource_prefix": &f.ResourcePrefix,
		"request_id": &f.RequestID,
	}
}

// The range of API times, in UTC: years 0001 to 9999, to the microsecond.
// Every time in it has a four-digit year in RFC 3339 (which encoding/json
// and the event encoding need); an offset or rounding can push a time
// written with a four-digit year out of it.
var (
	minTime = time.Date(1, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999_999_000, time.UTC)
)

// parseTime parses an API time: RFC 3339 with Z or an offset, or a bare
// date meaning midnight UTC. The result is UTC, rounded up to the
// microsecond (the database's precision), which keeps an inclusive or
// exclusive bound meaning the same, and within minTime..maxTime.
func parseTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t, err = time.Parse(time.DateOnly, v)
	}
	if err != nil {
		return time.Time{}, invalid(field, "%s must be an RFC 3339 time with Z or an offset (2026-04-20T00:00:00Z) or a date (2026-04-20)", field)
	}
	t = t.UTC()
	if rounded := t.Truncate(time.Microsecond); rounded.Before(t) {
		t = rounded.Add(time.Microsecond)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, invalid(field, "%s must be from %s to %s in UTC", field, minTime.Format(time.RFC3339Nano), maxTime.Format(time.RFC3339Nano))
	}
	return t, nil
}

// checkRange checks that until is after since when both are given.
func checkRange(since, until *time.Time, untilName string) error {
	if since != nil && until != nil && !until.After(*since) {
		if untilName == "" {
			untilName = "until"
		}
		return invalid(untilName, "%s must be after since", untilName)
	}
	return nil
}

// parseSourceIP parses an address (exact match) or a CIDR block.
func parseSourceIP(field, v string) (netip.Prefix, error) {
	if addr, err := netip.ParseAddr(v); err == nil && addr.Zone() == "" {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return p.Masked(), nil
	}
	return netip.Prefix{}, invalid(field, "%s must be an IPv4 or IPv6 address or a CIDR block", field)
}

// checkText rejects text that PostgreSQL cannot store or that is longer
// than max characters. Limits count characters (Unicode code points), as
// JSON Schema's maxLength does, so that the document's limits and the
// server's agree: 300 "é" are 300 characters, though 600 bytes.
func checkText(field, v string, max int) error {
	switch {
	case len(v) > max && utf8.RuneCountInString(v) > max: // (len: no count for short text)
		return invalid(field, "%s is longer than %d characters", field, max)
	case !utf8.ValidString(v):
		return invalid(field, "%s must be valid UTF-8", field)
	case strings.IndexByte(v, 0) >= 0:
		return invalid(field, "%s must not contain NUL characters", field)
	}
	return nil
}
