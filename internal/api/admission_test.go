package api

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdmission(t *testing.T) {
	t.Parallel()

	requireRefused := func(t *testing.T, err error, code string) {
		t.Helper()
		var apiErr *Error
		require.True(t, errors.As(err, &apiErr), "%v", err)
		require.Equal(t, code, apiErr.Code)
		require.Positive(t, apiErr.RetryAfter)
	}

	t.Run("ATenantPastItsRequestsWaitsThenGets429AndOthersGoOn", func(t *testing.T) {
		t.Parallel()
		a := newAdmission(Limits{TenantRequests: 2})
		r1, err := a.admit(t.Context(), "busy", workInteractive)
		require.NoError(t, err)
		_, err = a.admit(t.Context(), "busy", workInteractive)
		require.NoError(t, err)
		start := time.Now()
		_, err = a.admit(t.Context(), "busy", workInteractive)
		requireRefused(t, err, CodeRateLimited)
		require.GreaterOrEqual(t, time.Since(start), admissionWait, "it waited for a slot first")

		_, err = a.admit(t.Context(), "quiet", workInteractive)
		require.NoError(t, err, "another tenant has slots of its own")

		// A slot given back while a request waits goes to it.
		go func() { time.Sleep(100 * time.Millisecond); r1() }()
		_, err = a.admit(t.Context(), "busy", workInteractive)
		require.NoError(t, err)
	})

	t.Run("SummariesTakeTurnsWithinTheTenantsRequests", func(t *testing.T) {
		t.Parallel()
		a := newAdmission(Limits{TenantRequests: 4, TenantSummaries: 1})
		release, err := a.admit(t.Context(), "t", workSummary)
		require.NoError(t, err)
		_, err = a.admit(t.Context(), "t", workSummary)
		requireRefused(t, err, CodeRateLimited)
		_, err = a.admit(t.Context(), "t", workInteractive)
		require.NoError(t, err, "a list goes on beside the summary")
		release()
		_, err = a.admit(t.Context(), "t", workSummary)
		require.NoError(t, err, "the summary's slot was given back")
	})

	t.Run("AllTenantsPastTheProcesssRequestsGet503", func(t *testing.T) {
		t.Parallel()
		a := newAdmission(Limits{TenantRequests: 2, Requests: 2})
		_, err := a.admit(t.Context(), "a", workInteractive)
		require.NoError(t, err)
		release, err := a.admit(t.Context(), "b", workInteractive)
		require.NoError(t, err)
		_, err = a.admit(t.Context(), "c", workInteractive)
		requireRefused(t, err, CodeUnavailable)
		release()
		_, err = a.admit(t.Context(), "c", workInteractive)
		require.NoError(t, err, "a slot given back is free for anyone")
		_, err = a.admit(t.Context(), "a", workInteractive)
		requireRefused(t, err, CodeUnavailable)
		_, err = a.admit(t.Context(), "a", workInteractive)
		requireRefused(t, err, CodeUnavailable)
	})

	t.Run("DownloadsAreCappedPerTenantWith429AndInAllWith503AtOnce", func(t *testing.T) {
		t.Parallel()
		a := newAdmission(Limits{TenantDownloads: 1, Downloads: 2})
		first, err := a.admit(t.Context(), "a", workDownload)
		require.NoError(t, err)
		start := time.Now()
		_, err = a.admit(t.Context(), "a", workDownload)
		requireRefused(t, err, CodeRateLimited)
		require.Less(t, time.Since(start), admissionWait, "a download is refused at once")
		_, err = a.admit(t.Context(), "b", workDownload)
		require.NoError(t, err)
		_, err = a.admit(t.Context(), "c", workDownload)
		requireRefused(t, err, CodeUnavailable)
		first()
		_, err = a.admit(t.Context(), "c", workDownload)
		require.NoError(t, err, "a slot given back is free for anyone")
	})
}
