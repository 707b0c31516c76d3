const crypto = require("node:crypto");

// headers: the request's headers (Node lower-cases their names); secret: the gateway's first secret.
function sessionHeadersAreGenuine(headers, secret, maxAge = 300) {
  const sig = Object.fromEntries(headers["x-session-signature"].split(",").map((p) => p.split("=", 2)));
  const message = [sig.t, headers["x-session-id"], headers["x-session-new"], headers["x-session-data"]].join(".");
  const expected = crypto.createHmac("sha256", secret).update(message).digest("hex");
  return expected.length === (sig.v1 || "").length &&
    crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(sig.v1)) &&
    Math.abs(Date.now() / 1000 - Number(sig.t)) <= maxAge;
}
