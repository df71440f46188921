// Package migrations embeds the Atlas-format migration directory (the SQL
// files and their atlas.sum) into the binaries that apply it.
package migrations

import "embed"

// FS holds the migration files and atlas.sum.
//
//go:embed *.sql atlas.sum
var FS embed.FS
