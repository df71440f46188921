// A webhook receiver built on the standardwebhooks library, as a product
// would write one. internal/webhook's TestStandardWebhooksReceiver runs it
// with node: it verifies every delivery with the library and prints one
// JSON line per request on stdout ({"webhook_id","type","tenant_id",
// "chain_seq","verified","error","answered", and the resource's
// "resource_id","resource_status","resource_name"}), after
// "listening <port>".
//
//   WEBHOOK_SECRET   the endpoint's whsec_… secret
//   PORT             the port to listen on (0: any)
//   FAIL_ONCE_TYPE   answer 500 to the first delivery of each message of
//                    this event type (the retry must carry the same
//                    webhook-id)
import http from "node:http";
import pkg from "standardwebhooks";

const { Webhook } = pkg;
const wh = new Webhook(process.env.WEBHOOK_SECRET);
const failOnceType = process.env.FAIL_ONCE_TYPE || "";
const failed = new Set();

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const line = { webhook_id: req.headers["webhook-id"] || "", verified: false, answered: 204 };
    try {
      const msg = wh.verify(body, req.headers);
      line.verified = true;
      line.type = msg.type;
      line.tenant_id = msg.data.tenant_id;
      line.chain_seq = msg.data.chain_seq;
      line.timestamp = msg.timestamp;
      if (msg.data.resource) {
        line.resource_id = msg.data.resource.id || "";
        line.resource_status = msg.data.resource.status || "";
        line.resource_name = msg.data.resource.name || "";
      }
    } catch (e) {
      line.error = String(e && e.message ? e.message : e);
      line.answered = 400;
    }
    if (line.verified && line.type === failOnceType && !failed.has(line.webhook_id)) {
      failed.add(line.webhook_id);
      line.answered = 500;
    }
    process.stdout.write(JSON.stringify(line) + "\n");
    res.writeHead(line.answered, { "content-type": "text/plain" });
    res.end(line.answered === 204 ? "" : "no");
  });
});

server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  process.stdout.write("listening " + server.address().port + "\n");
});
process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
});
