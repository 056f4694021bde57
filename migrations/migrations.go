// Package migrations holds audex's database schema as plain SQL files,
// applied in order by goose through store.Migrate. It imports nothing.
package migrations

import "embed"

// FS holds the numbered goose migrations.
//
//go:embed *.sql
var FS embed.FS
