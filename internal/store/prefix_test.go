package store

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrefixUpperBound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ prefix, upper string }{
		{"doc.", "doc/"},
		{"a", "b"},
		{"é", "ê"},
		{"a\U0010FFFF", "b"},
		{"\uD7FF", "\uE000"},
	} {
		got, ok := prefixUpperBound(tc.prefix)
		require.True(t, ok, tc.prefix)
		require.Equal(t, tc.upper, got, tc.prefix)
		for _, s := range []string{tc.prefix, tc.prefix + "\x00", tc.prefix + "zzz", tc.prefix + "\U0010FFFF\U0010FFFF"} {
			require.Less(t, s, got, "every string starting with the prefix is below the bound")
		}
		require.False(t, strings.HasPrefix(got, tc.prefix))
	}
	_, ok := prefixUpperBound("\U0010FFFF")
	require.False(t, ok)
}
