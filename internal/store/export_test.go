package store

// ScanSummary exposes the scan that SummarizeEvents falls back on, so that
// tests can hold the rollup path against it.
var ScanSummary = scanSummary
