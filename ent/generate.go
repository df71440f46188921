// Package ent holds the Ent client generated from ./schema. Only schema/ and
// this file are written by hand; run `make generate` after changing them.
package ent

//go:generate go tool ent generate --feature sql/upsert,sql/lock,sql/execquery,sql/modifier ./schema
