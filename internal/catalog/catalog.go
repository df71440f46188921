// Package catalog is the product catalog: the products a tenant can have,
// with their display name, description and self-serve trial. The catalog is
// configuration, not code: an embedded default (default.json) that
// CATALOG_FILE replaces.
package catalog

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"
)

// DefaultTrialDays is the length of a self-serve trial in the default catalog.
const DefaultTrialDays = 14

// MaxTrialDays bounds trial_days in a catalog file.
const MaxTrialDays = 90

//go:embed default.json
var defaultJSON []byte

// Product is one entry of the catalog.
type Product struct {
	Key            string `json:"key"`
	DisplayName    string `json:"display_name"`
	Description    string `json:"description"`
	TrialAvailable bool   `json:"trial_available"`
	// TrialDays is the trial's length; 0 when no trial is offered.
	TrialDays int `json:"trial_days"`
}

// Catalog is a validated, immutable list of products.
type Catalog struct {
	products []Product
	byKey    map[string]int
}

// file is the JSON document: {"products": [...]}.
type file struct {
	Products []Product `json:"products"`
}

var keyPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{1,62}$`)

// Default returns the embedded default catalog.
func Default() *Catalog {
	c, err := Parse("embedded default catalog", defaultJSON)
	if err != nil {
		panic(err) // a test proves the embedded file is valid
	}
	return c
}

// Load reads and validates the catalog file at path (CATALOG_FILE). Errors
// name the file and the problem.
func Load(path string) (*Catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("catalog file %q: %w", path, err)
	}
	return Parse(fmt.Sprintf("catalog file %q", path), data)
}

// Parse validates a catalog document strictly: no unknown fields, no
// trailing data, at least one product, well-formed unique keys, a display
// name, and trial_days from 1 to 90 exactly when a trial is offered. name
// prefixes every error.
func Parse(name string, data []byte) (*Catalog, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", name, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f file
	if err := dec.Decode(&f); err != nil {
		return nil, fail("invalid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail("invalid JSON: unexpected data after the catalog object")
	}
	if len(f.Products) == 0 {
		return nil, fail("products: must list at least one product")
	}
	c := &Catalog{products: make([]Product, 0, len(f.Products)), byKey: make(map[string]int, len(f.Products))}
	for i, p := range f.Products {
		where := fmt.Sprintf("products[%d]", i)
		if p.Key != "" {
			where = fmt.Sprintf("products[%d] (%q)", i, p.Key)
		}
		if !keyPattern.MatchString(p.Key) {
			return nil, fail("%s: key: must match %s (2-63 characters: lower case, digits, dashes; starting with a letter)", where, keyPattern)
		}
		if j, dup := c.byKey[p.Key]; dup {
			return nil, fail("%s: key: duplicate key %q (also products[%d])", where, p.Key, j)
		}
		p.DisplayName = strings.TrimSpace(p.DisplayName)
		if p.DisplayName == "" {
			return nil, fail("%s: display_name: must not be empty", where)
		}
		if utf8.RuneCountInString(p.DisplayName) > 100 {
			return nil, fail("%s: display_name: must be at most 100 characters", where)
		}
		p.Description = strings.TrimSpace(p.Description)
		if utf8.RuneCountInString(p.Description) > 2000 {
			return nil, fail("%s: description: must be at most 2000 characters", where)
		}
		switch {
		case p.TrialAvailable && (p.TrialDays < 1 || p.TrialDays > MaxTrialDays):
			return nil, fail("%s: trial_days: must be from 1 to %d when trial_available is true, got %d", where, MaxTrialDays, p.TrialDays)
		case !p.TrialAvailable && p.TrialDays != 0:
			return nil, fail("%s: trial_days: must be 0 or absent when trial_available is false, got %d", where, p.TrialDays)
		}
		c.byKey[p.Key] = len(c.products)
		c.products = append(c.products, p)
	}
	return c, nil
}

// Products returns the products in catalog order.
func (c *Catalog) Products() []Product {
	out := make([]Product, len(c.products))
	copy(out, c.products)
	return out
}

// Lookup returns the product with key.
func (c *Catalog) Lookup(key string) (Product, bool) {
	i, ok := c.byKey[key]
	if !ok {
		return Product{}, false
	}
	return c.products[i], true
}

// Keys returns the product keys in catalog order.
func (c *Catalog) Keys() []string {
	out := make([]string, len(c.products))
	for i, p := range c.products {
		out[i] = p.Key
	}
	return out
}
