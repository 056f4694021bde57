package audex_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/audex-dev/audex"
)

func ptr[T any](v T) *T { return &v }

func TestEventJSON(t *testing.T) {
	t.Parallel()
	tricky := "quote\" back\\ nl\n tab\t ctl\x01 html<>& é 😀 \u2028\u2029 bad\xff"
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
		Metadata:   json.RawMessage(`{"a":[1,{"b":null}]}`),
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
	t.Run("TimesAreUTCWithZ", func(t *testing.T) {
		t.Parallel()
		var back map[string]any
		require.NoError(t, json.Unmarshal(full.AppendJSON(nil), &back))
		require.Equal(t, "2026-04-23T18:02:11.512Z", back["occurred_at"])
		require.Equal(t, "2026-04-23T19:02:11.530001Z", back["received_at"])
	})
}
