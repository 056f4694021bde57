package audex_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
)

func ptr[T any](v T) *T { return &v }

// jsonbMetadata is awkward metadata as PostgreSQL's jsonb text writes it:
// a space after every separator; <, >, &, U+2028, U+2029 and other
// non-ASCII raw; quotes, backslashes and control characters escaped.
const jsonbMetadata = `{"a": [1, {"b": null}], "s": "x y", "html": "<a href=\"?q=1&r=2\">", "n": 1.50, "e": 1000, ` +
	`"ls": "a` + "\u2028" + `b` + "\u2029" + `c", "u": "é 😀 \\ \" \n \u0001", "nested": {"k": [], "o": {}}}`

func TestEventJSON(t *testing.T) {
	t.Parallel()
	tricky := "quote\" back\\ nl\n tab\t bs\b ff\f ctl\x01 html<>& é 😀 \u2028\u2029 bad\xff"
	full := audex.Event{
		ID:         "evt_1",
		OccurredAt: time.Date(2026, 4, 23, 19, 2, 11, 512000000, time.FixedZone("x", 3600)),
		ReceivedAt: time.Date(2026, 4, 23, 19, 2, 11, 530001000, time.UTC),
		Action:     "agent.token_issued",
		Actor:      audex.Actor{ID: tricky, Type: ptr("agent"), Name: ptr("")},
		Target:     &audex.Target{ID: ptr("tok")},
		Resource:   ptr(tricky),
		SourceIP:   ptr("10.0.1.50"),
		StatusCode: ptr(200),
		Success:    ptr(false),
		DurationMS: ptr(int64(12)),
		// As PostgreSQL's jsonb text writes it: spaces after separators,
		// <, >, &, U+2028 and U+2029 raw.
		Metadata: json.RawMessage(jsonbMetadata),
	}
	for name, e := range map[string]audex.Event{"Full": full, "Minimal": {ID: "x", Action: "a", Actor: audex.Actor{ID: "y"}}} {
		t.Run(name+"MatchesEncodingJSON", func(t *testing.T) {
			t.Parallel()
			got := e.AppendJSON(nil)
			require.True(t, json.Valid(got), "%s", got)
			// The reference: the same struct encoded by reflection, with
			// times in UTC (AppendJSON converts) and metadata defaulted.
			type plain audex.Event
			ref := plain(e)
			ref.OccurredAt, ref.ReceivedAt = ref.OccurredAt.UTC(), ref.ReceivedAt.UTC()
			if ref.Metadata == nil {
				ref.Metadata = json.RawMessage(`{}`)
			}
			want, err := json.Marshal(ref)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
	t.Run("EncodingJSONLeavesItAsItIs", func(t *testing.T) {
		t.Parallel()
		// The list and get routes encode events with encoding/json, which
		// compacts and escapes what MarshalJSON returns: nothing is left
		// to change, so they write AppendJSON's bytes like the others.
		got, err := json.Marshal(full)
		require.NoError(t, err)
		require.Equal(t, string(full.AppendJSON(nil)), string(got))
		page, err := json.Marshal(map[string]any{"events": []audex.Event{full}})
		require.NoError(t, err)
		require.Equal(t, `{"events":[`+string(full.AppendJSON(nil))+`]}`, string(page))
	})
	t.Run("MetadataIsCompactAndEscaped", func(t *testing.T) {
		t.Parallel()
		e := audex.Event{Metadata: json.RawMessage(jsonbMetadata)}
		require.Equal(t, `{"a":[1,{"b":null}],"s":"x y","html":"\u003ca href=\"?q=1\u0026r=2\"\u003e","n":1.50,"e":1000,`+
			`"ls":"a\u2028b\u2029c","u":"é 😀 \\ \" \n \u0001","nested":{"k":[],"o":{}}}`, string(e.AppendMetadata(nil)))
		require.Equal(t, "{}", string((&audex.Event{}).AppendMetadata(nil)), "no metadata is an empty object")
		require.Equal(t, "prefix{}", string((&audex.Event{Metadata: json.RawMessage("{ }")}).AppendMetadata([]byte("prefix"))))
	})
	t.Run("TimesAreUTCWithZ", func(t *testing.T) {
		t.Parallel()
		var back map[string]any
		require.NoError(t, json.Unmarshal(full.AppendJSON(nil), &back))
		require.Equal(t, "2026-04-23T18:02:11.512Z", back["occurred_at"])
		require.Equal(t, "2026-04-23T19:02:11.530001Z", back["received_at"])
	})
}

// FuzzAppendMetadata holds AppendMetadata, whatever valid JSON the
// metadata is, to encoding/json's own compacting and escaping of it: the
// bytes the get route wrote before AppendJSON canonicalised metadata.
func FuzzAppendMetadata(f *testing.F) {
	for _, s := range []string{jsonbMetadata, `{}`, `{ }`, " {\n\t\"a\" :\r[ ] } ", `{"k": "\\"}`, `{"k": "\\\""}`,
		`{"<": ">&"}`, `{"x": "` + "\xe2\x80" + `"}`, `{"x": "` + "\xe2\x80\xa7\xe2\x81\xa8" + `"}`, `[1e3, -0.5E-2, true, false, null]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) {
			t.Skip("metadata is valid JSON")
		}
		want, err := json.Marshal(json.RawMessage(s))
		require.NoError(t, err)
		e := audex.Event{Metadata: json.RawMessage(s)}
		require.Equal(t, string(want), string(e.AppendMetadata(nil)), "metadata %q", s)
	})
}

// FuzzAppendJSONStrings holds AppendJSON's strings, whatever their text, to
// encoding/json's encoding of the same struct.
func FuzzAppendJSONStrings(f *testing.F) {
	for _, s := range []string{"plain", "quote\" back\\ nl\n tab\t ctl\x01\x1f\x7f", "html<>&", "é 😀 \u2028\u2029", "bad\xff\xe2\x80", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := audex.Event{ID: s, Action: s, Actor: audex.Actor{ID: s, Name: &s}, Resource: &s, Metadata: json.RawMessage(`{}`)}
		type plain audex.Event
		want, err := json.Marshal(plain(e))
		require.NoError(t, err)
		require.Equal(t, string(want), string(e.AppendJSON(nil)))
	})
}
