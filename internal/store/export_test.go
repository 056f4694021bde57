package store

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
