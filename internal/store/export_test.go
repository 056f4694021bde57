package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/audex-dev/audex"
)

// ScanSummary exposes the scan that SummarizeEvents falls back on, so that
// tests can hold the rollup path against it.
var ScanSummary = scanSummary

// DecodeEvent exposes the decoder of scanEvent's raw rows, so that tests
// can hold it against Scan.
var DecodeEvent = decodeEvent

// SelectEventColumns and ScanEventColumns expose the event columns'
// statement text and their Scan, the decoder's reference.
var (
	SelectEventColumns = selectEventColumns
	ScanEventColumns   = scanEventAnd
)

// LeavesOfInChunks is LeavesOf joining chunk arrivals at a time.
var LeavesOfInChunks = leavesOf

// LeavesByTime finds the leaves of the events that f matches received
// from from on and before to, among the leaves from first to before last,
// from the log alone (leavesByTime), into a set of size leaves; found is
// false when it could not.
func LeavesByTime(ctx context.Context, db DBTX, tenantID string, f audex.Filter, from, to time.Time, first, last, size int64) (LeafSet, bool, error) {
	set := newLeafSet(size)
	found, err := leavesByTime(ctx, db, tenantID, f, from, to, first, last, set)
	return set, found, err
}

// CheaperByDays reports whether a page of limit events of the tenant's,
// of values of the keys index that match matches of its total events, is
// read a day at a time rather than down the list order (when nothing else
// filters rows).
func CheaperByDays(ctx context.Context, db DBTX, tenantID string, limit int, matches, total int64) (bool, error) {
	return eventKeys{tenantID: tenantID}.cheaperByDays(ctx, db, limit, matches, total)
}

// ListByKeyDays lists a page of f, which must hold values of the keys
// index, as keysList does after its first read when the values are
// common: from the keys index a day first, then dayChunkGrowth times as
// many days each read.
func ListByKeyDays(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	events := []audex.Event{}
	err := withListPlans(ctx, db, func(tx pgx.Tx) error {
		k, _, ok, err := keysOf(ctx, tx, tenantID, f)
		if err != nil || !ok || k.none() {
			return err
		}
		events, err = k.listDays(ctx, tx, f, order, after, 1, dayChunkGrowth, limit)
		return err
	})
	return events, err
}

// ListByRangeDays lists a page of f, which must filter by one range (a
// prefix, an address block), as wideRangeList does after its first read
// when the range is neither common nor of few values: from the range's
// index a day first, then dayChunkGrowth times as many days each read.
func ListByRangeDays(ctx context.Context, db DBTX, tenantID string, f audex.Filter, order audex.Order, after *audex.Position, limit int) ([]audex.Event, error) {
	r, rest, ok := singleColumnRange(f)
	if !ok {
		return nil, errors.New("not a filter of one range")
	}
	var events []audex.Event
	err := withListPlans(ctx, db, func(tx pgx.Tx) (err error) {
		events, err = listRangeByDays(ctx, tx, tenantID, r, rest, order, after, limit)
		return err
	})
	return events, err
}

// LastAddr exposes the last address of a block, the bound of its index
// range.
var LastAddr = lastAddr

// WithListPlans exposes the transaction that a list's statements run in.
var WithListPlans = withListPlans
