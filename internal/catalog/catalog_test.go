package catalog_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/catalog"
)

func TestDefault(t *testing.T) {
	c := catalog.Default()
	for _, key := range []string{"certifai", "compliance"} {
		p, ok := c.Lookup(key)
		if !ok {
			t.Fatalf("default catalog lacks %q", key)
		}
		if got, want := p.TrialDays, catalog.DefaultTrialDays; !p.TrialAvailable || got != want {
			t.Errorf("%s: trial %v, %d days; want a %d-day trial", key, p.TrialAvailable, got, want)
		}
	}
	if _, ok := c.Lookup("nope"); ok {
		t.Error("Lookup(nope) found something")
	}
}

func write(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "catalog.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadGood(t *testing.T) {
	path := write(t, `{"products":[
		{"key":"certifai","display_name":"CertifAI","description":"AI","trial_available":true,"trial_days":30},
		{"key":"x-ray","display_name":" X-Ray "}]}`)
	c, err := catalog.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := c.Products()
	want := []catalog.Product{
		{Key: "certifai", DisplayName: "CertifAI", Description: "AI", TrialAvailable: true, TrialDays: 30},
		{Key: "x-ray", DisplayName: "X-Ray"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d products, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("product %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLoadBad(t *testing.T) {
	good := `{"key":"certifai","display_name":"CertifAI","trial_available":true,"trial_days":14}`
	cases := []struct {
		name, body, want string
	}{
		{"not JSON", `{"products":[`, "invalid JSON"},
		{"unknown top-level field", `{"products":[` + good + `],"extra":1}`, `unknown field "extra"`},
		{"unknown product field", `{"products":[{"key":"certifai","display_name":"C","price":3}]}`, `unknown field "price"`},
		{"trailing data", `{"products":[` + good + `]} {}`, "after the catalog object"},
		{"no products", `{"products":[]}`, "at least one product"},
		{"duplicate key", `{"products":[` + good + `,` + good + `]}`, `duplicate key "certifai"`},
		{"upper-case key", `{"products":[{"key":"CertifAI","display_name":"C"}]}`, "key: must match"},
		{"key too short", `{"products":[{"key":"c","display_name":"C"}]}`, "key: must match"},
		{"key starts with digit", `{"products":[{"key":"9lives","display_name":"C"}]}`, "key: must match"},
		{"key too long", `{"products":[{"key":"` + strings.Repeat("a", 64) + `","display_name":"C"}]}`, "key: must match"},
		{"empty key", `{"products":[{"display_name":"C"}]}`, "products[0]: key: must match"},
		{"empty display name", `{"products":[{"key":"certifai","display_name":"  "}]}`, "display_name: must not be empty"},
		{"trial without days", `{"products":[{"key":"certifai","display_name":"C","trial_available":true}]}`, "trial_days: must be from 1 to 90"},
		{"trial too long", `{"products":[{"key":"certifai","display_name":"C","trial_available":true,"trial_days":91}]}`, "trial_days: must be from 1 to 90"},
		{"days without trial", `{"products":[{"key":"certifai","display_name":"C","trial_days":14}]}`, "trial_days: must be 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := write(t, c.body)
			_, err := catalog.Load(path)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if got := err.Error(); !strings.Contains(got, path) || !strings.Contains(got, c.want) {
				t.Errorf("error %q: want it to name the file and contain %q", got, c.want)
			}
		})
	}
	if _, err := catalog.Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: err = %v, want one naming the file", err)
	}
}
