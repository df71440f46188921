package sso_test

import (
	"strings"
	"testing"

	"github.com/platform/tenant-registry/internal/secret"
	"github.com/platform/tenant-registry/internal/sso"
	"github.com/platform/tenant-registry/internal/store"
	"github.com/platform/tenant-registry/internal/storetest"
)

func TestCheckKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := storetest.SystemContext()
		e := newEnv(t, st)
		right := storetest.Must(secret.NewBox(testKey))
		wrong := storetest.Must(secret.NewBox([]byte("ffffffffffffffffffffffffffffffff")))
		// Nothing sealed yet: any key will do.
		if err := sso.CheckKey(ctx, st.Client, wrong); err != nil {
			t.Errorf("no secrets stored: %v", err)
		}
		id := e.tenant(t, "acme").ID.String()
		if _, err := e.sso.Set(ctx, e.oidc(id, idpSecret, "acme.example")); err != nil {
			t.Fatal(err)
		}
		if err := sso.CheckKey(ctx, st.Client, right); err != nil {
			t.Errorf("right key: %v", err)
		}
		err := sso.CheckKey(ctx, st.Client, wrong)
		if err == nil || !strings.Contains(err.Error(), "IDP_SECRET_KEY") || !strings.Contains(err.Error(), wrong.KeyID()) {
			t.Errorf("wrong key: %v, want an error naming IDP_SECRET_KEY", err)
		}
		if _, err := st.DB.ExecContext(ctx, "UPDATE tenant_idp_config SET client_secret_sealed = $1", []byte("garbage")); err != nil {
			t.Fatal(err)
		}
		if err := sso.CheckKey(ctx, st.Client, right); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("damaged value: %v", err)
		}
	})
}
