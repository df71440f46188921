// The browser portal's path to tenant-registry, reduced to a test page:
// Connect-Web (Connect protocol, JSON) straight from the browser, with a
// Keycloak bearer token, across origins (CORS). internal/browsertest bundles
// this with esbuild and drives it in headless Chromium.
//
// Query parameters: api (the API base URL, e.g. http://127.0.0.1:8080) and
// token (a bearer token; empty means none). The outcome is written into
// <pre id="result"> as JSON:
//
//	{"slug":"acme","status":"active","keyPrefix":"trk_abcdefgh","keyLength":47,"keyMatchesPrefix":true}
//	{"error":"…","code":"unauthenticated","step":"GetTenantBySlug"}
//
// The plaintext API key is never written anywhere: only its display prefix
// (which the server returns as non-secret) and its length.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { TenantService } from "../../gen/ts/tenantregistry/v1/tenant_pb";
import { ApiKeyService } from "../../gen/ts/tenantregistry/v1/api_key_pb";

const acmeTenantId = "00000000-0000-0000-0000-000000000001";

function bearer(token: string): Interceptor {
  return (next) => async (req) => {
    if (token !== "") {
      req.header.set("Authorization", `Bearer ${token}`);
    }
    return next(req);
  };
}

// codeName turns Code.InvalidArgument into "invalid_argument", the Connect
// protocol's wire name.
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

function show(result: Record<string, unknown>): void {
  const el = document.getElementById("result")!;
  el.textContent = JSON.stringify(result);
  el.dataset.state = "done";
}

async function run(): Promise<Record<string, unknown>> {
  const params = new URLSearchParams(location.search);
  const baseUrl = params.get("api") ?? "";
  const token = params.get("token") ?? "";
  if (baseUrl === "") {
    return { error: "missing ?api= (the API base URL)", code: "invalid_argument", step: "setup" };
  }
  const transport = createConnectTransport({ baseUrl, interceptors: [bearer(token)] });
  const tenants = createClient(TenantService, transport);
  const apiKeys = createClient(ApiKeyService, transport);

  let step = "GetTenantBySlug";
  try {
    const { tenant } = await tenants.getTenantBySlug({ slug: "acme" });
    step = "CreateApiKey";
    const created = await apiKeys.createApiKey({ tenantId: acmeTenantId, name: "browser" });
    const prefix = created.apiKey?.prefix ?? "";
    return {
      slug: tenant?.slug,
      status: tenant?.status,
      keyPrefix: prefix,
      keyLength: created.key.length,
      keyMatchesPrefix: prefix !== "" && created.key.startsWith(prefix),
    };
  } catch (e) {
    const err = ConnectError.from(e);
    return { error: err.rawMessage, code: codeName(err.code), step };
  }
}

run().then(show, (e: unknown) => show({ error: String(e), code: "unknown", step: "page" }));
