package app_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/app"
	"github.com/platform/tenant-registry/internal/clock"
	"github.com/platform/tenant-registry/internal/config"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
	"github.com/platform/tenant-registry/internal/webhook"
)

// TestWrongIDPSecretKeyRefused: once a client secret is sealed, app.New
// with another IDP_SECRET_KEY fails with an error naming IDP_SECRET_KEY
// (instead of handing Keycloak garbage later); the right key starts.
func TestWrongIDPSecretKeyRefused(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		newApp := func(key string) (*app.App, error) {
			cfg, err := config.Load(func(k string) string {
				if k == "IDP_SECRET_KEY" {
					return key
				}
				return "" // APP_ENV=dev: the mock Keycloak, acme seeded
			})
			if err != nil {
				t.Fatal(err)
			}
			return app.New(ctx, app.Deps{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler), Clock: clock.System})
		}
		const (
			keyA = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=" // 32 × "a"
			keyB = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=" // 32 × "b"
		)
		// Nothing sealed yet: any key starts.
		if _, err := newApp(keyB); err != nil {
			t.Fatalf("no secrets stored, key B: %v", err)
		}
		a, err := newApp(keyA)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.SSO.Set(storetest.SystemContext(), sso.SetInput{
			TenantID: "00000000-0000-0000-0000-000000000001", Protocol: "oidc", Domains: []string{"acme.example"},
			OIDC: &sso.OIDCInput{Issuer: "https://login.acme.example", ClientID: "c", ClientSecret: "sealed-under-a"},
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := newApp(keyB); err == nil || !strings.Contains(err.Error(), "IDP_SECRET_KEY") {
			t.Errorf("app.New with another key: %v, want an error naming IDP_SECRET_KEY", err)
		}
		if _, err := newApp(keyA); err != nil {
			t.Errorf("app.New with the sealing key: %v", err)
		}
	})
}

// TestWrongIDPSecretKeyRefusedForWebhooks: the same for the webhook
// endpoints' signing secrets, sealed under the same key.
func TestWrongIDPSecretKeyRefusedForWebhooks(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		newApp := func(key string) (*app.App, error) {
			cfg, err := config.Load(func(k string) string {
				if k == "IDP_SECRET_KEY" {
					return key
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			return app.New(ctx, app.Deps{Config: cfg, Store: st, Logger: slog.New(slog.DiscardHandler), Clock: clock.System})
		}
		const (
			keyA = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=" // 32 × "a"
			keyB = "YmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmI=" // 32 × "b"
		)
		a, err := newApp(keyA)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Webhooks.Create(storetest.SystemContext(), webhook.CreateInput{URL: "http://127.0.0.1:9/hook"}); err != nil {
			t.Fatal(err)
		}
		_, err = newApp(keyB)
		if err == nil || !strings.Contains(err.Error(), "IDP_SECRET_KEY") || !strings.Contains(err.Error(), "webhook") {
			t.Errorf("app.New with another key: %v, want an error naming IDP_SECRET_KEY and the webhook secrets", err)
		}
		if _, err := newApp(keyA); err != nil {
			t.Errorf("app.New with the sealing key: %v", err)
		}
	})
}
