-- Modify "tenant_idp_config" table
ALTER TABLE "tenant_idp_config" ADD CONSTRAINT "tenant_idp_config_idp_state" CHECK ((idp_state)::text = ANY ((ARRAY['pending'::character varying, 'provisioned'::character varying, 'failed'::character varying])::text[])), ADD COLUMN "client_secret_sealed" bytea NULL, ADD COLUMN "saml_entity_id" character varying(2048) NULL, ADD COLUMN "saml_sso_url" character varying(2048) NULL, ADD COLUMN "saml_signing_certificate" character varying NULL, ADD COLUMN "idp_state" character varying(16) NOT NULL DEFAULT 'pending', ADD COLUMN "generation" bigint NOT NULL DEFAULT 1;
-- Create "tenant_idp_domains" table
CREATE TABLE "tenant_idp_domains" ("id" uuid NOT NULL, "domain" character varying(253) NOT NULL, "config_id" uuid NOT NULL, PRIMARY KEY ("id"), CONSTRAINT "tenant_idp_domains_tenant_idp_config_domains" FOREIGN KEY ("config_id") REFERENCES "tenant_idp_config" ("id") ON UPDATE NO ACTION ON DELETE CASCADE);
-- Create index "tenant_idp_domains_domain_key" to table: "tenant_idp_domains"
CREATE UNIQUE INDEX "tenant_idp_domains_domain_key" ON "tenant_idp_domains" ("domain");
