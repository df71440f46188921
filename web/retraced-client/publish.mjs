// Drives the official Retraced client (@retracedhq/retraced, pinned in
// web/package.json) against the registry's Retraced publisher API, as a
// product would use it. internal/server's TestRetracedClient runs it with
// node against the real server and checks what it prints: one JSON line per
// step, {"step","ok","id","token","error"}; a step that the client rejects
// prints ok=false and the client's error (reportEvent also rejects when its
// own hash of the event differs from the server's).
//
//   ENDPOINT        the registry's base URL (the client appends /publisher/v1/…)
//   PROJECT_ID      the key's project id (its tenant id for a key without one)
//   API_KEY         a key with the scope audit:publish
//   NO_SCOPE_KEY    a key of the same tenant without that scope
//   GROUP_ID        the key's tenant id (its group)
//   OTHER_GROUP_ID  another tenant's id
import pkg from "@retracedhq/retraced";

const { Client } = pkg;
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const endpoint = env("ENDPOINT");
const projectId = env("PROJECT_ID");
const group = env("GROUP_ID");
const otherGroup = env("OTHER_GROUP_ID");
const client = new Client({ endpoint, projectId, apiKey: env("API_KEY"), component: "retraced-client-test", version: "1" });
const noScope = new Client({ endpoint, projectId, apiKey: env("NO_SCOPE_KEY") });

const steps = [
  ["with_target", () => client.reportEvent({
    action: "document.signed", crud: "u", group: { id: group, name: "ignored" },
    actor: { id: "user:1", name: "Ada", href: "https://app.example/users/1" },
    target: { id: "doc:42%", name: "Contract", type: "document" },
    source_ip: "10.1.2.3", description: "signed the contract",
    fields: { colon: "a:b", percent: "100%", equals: "x=y", semicolon: "p;q", all: "%3A:=;%", empty: "" },
    created: new Date("2026-12-01T10:00:00Z"),
  })],
  ["without_target", () => client.reportEvent({
    action: "user.login", crud: "c", group: { id: group }, actor: { id: "user:2" }, is_failure: true,
    fields: { note: "k=v; 50% : done" },
  })],
  ["no_group_anonymous", () => client.reportEvent({ action: "page.viewed", crud: "r", actor: { id: "anonymous" }, is_anonymous: true })],
  ["empty_fields", () => client.reportEvent({ action: "settings.read", crud: "r", actor: { id: "user:3" }, fields: {} })],
  ["viewer_token", () => client.getViewerToken(group, "viewer:1", true)],
  ["no_scope_event", () => noScope.reportEvent({ action: "a.b", crud: "c", actor: { id: "u" } })],
  ["no_scope_viewer", () => noScope.getViewerToken(group, "viewer:1", false)],
  ["other_group_event", () => client.reportEvent({ action: "a.b", crud: "c", group: { id: otherGroup }, actor: { id: "u" } })],
  ["other_group_viewer", () => client.getViewerToken(otherGroup, "viewer:1", false)],
];

for (const [step, run] of steps) {
  const line = { step, ok: false };
  try {
    const v = await run();
    line.ok = true;
    if (step.startsWith("viewer")) line.token = v;
    else line.id = v;
  } catch (err) {
    line.error = String(err && err.message ? err.message : err);
  }
  console.log(JSON.stringify(line));
}
