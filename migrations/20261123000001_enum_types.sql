-- Enum types referenced by the Ent schemas through SchemaType (ent does not
-- create them). Keep the values in step with ent/schema.
CREATE TYPE "tenant_status" AS ENUM ('trial', 'active', 'frozen');
CREATE TYPE "tenant_plan" AS ENUM ('starter', 'professional', 'enterprise');
CREATE TYPE "entitlement_status" AS ENUM ('requested', 'trial', 'active', 'expired');
CREATE TYPE "idp_protocol" AS ENUM ('oidc', 'saml');
