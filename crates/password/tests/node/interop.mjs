// The browser's OPAQUE client, @serenity-kit/opaque, driven by tests/node_interop.rs.
//
// One JSON object per line on stdin, one answer per line on stdout. OPAQUE
// messages cross to Rust as hex; serenity's own encoding (base64url without
// padding) is checked on every value it returns.
import * as readline from "node:readline";
import * as opaque from "@serenity-kit/opaque";

const keyStretching = "memory-constrained";

function fromSerenity(value) {
  if (!/^[A-Za-z0-9_-]*$/.test(value)) {
    throw new Error(`not base64url without padding: ${value}`);
  }
  const bytes = Buffer.from(value, "base64url");
  if (bytes.toString("base64url") !== value) {
    throw new Error(`not canonical base64url: ${value}`);
  }
  return bytes.toString("hex");
}

function toSerenity(hex) {
  return Buffer.from(hex, "hex").toString("base64url");
}

// Client states stay here; Rust refers to them by name.
const states = new Map();

const ops = {
  createSetup() {
    const serverSetup = opaque.server.createSetup();
    return {
      setup: fromSerenity(serverSetup),
      publicKey: fromSerenity(opaque.server.getPublicKey(serverSetup)),
    };
  },
  startRegistration({ id, password }) {
    const { clientRegistrationState, registrationRequest } =
      opaque.client.startRegistration({ password });
    states.set(id, clientRegistrationState);
    return { request: fromSerenity(registrationRequest) };
  },
  finishRegistration({ id, password, response }) {
    const { registrationRecord, exportKey } = opaque.client.finishRegistration({
      clientRegistrationState: states.get(id),
      registrationResponse: toSerenity(response),
      password,
      keyStretching,
    });
    states.delete(id);
    return { upload: fromSerenity(registrationRecord), exportKey: fromSerenity(exportKey) };
  },
  startLogin({ id, password }) {
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    states.set(id, clientLoginState);
    return { ke1: fromSerenity(startLoginRequest) };
  },
  finishLogin({ id, password, ke2 }) {
    const result = opaque.client.finishLogin({
      clientLoginState: states.get(id),
      loginResponse: toSerenity(ke2),
      password,
      keyStretching,
    });
    states.delete(id);
    if (result === undefined) {
      return { refused: true };
    }
    return {
      ke3: fromSerenity(result.finishLoginRequest),
      sessionKey: fromSerenity(result.sessionKey),
      exportKey: fromSerenity(result.exportKey),
    };
  },
};

await opaque.ready;
const lines = readline.createInterface({ input: process.stdin, terminal: false });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let answer;
  try {
    const request = JSON.parse(line);
    const op = ops[request.op];
    if (op === undefined) throw new Error(`unknown op ${request.op}`);
    answer = op(request);
  } catch (error) {
    answer = { error: String(error) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
