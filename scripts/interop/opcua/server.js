// An independent OPC UA server (node-opcua) for hazgate's interop tests:
// reactor R-301 with a changing temperature, a pressure, an agitator state
// and two writable nodes. drivers/opcua/interop_test.go starts it.
//
//   node server.js --port 48400 --pki DIR [--secure [--policy P] --user NAME --password PW]
//                  [--max-nodes-per-read N]
//
// Without --secure: security None, anonymous login. With --secure: only
// policy P (default Basic256Sha256; or Aes128_Sha256_RsaOaep,
// Aes256_Sha256_RsaPss) with Sign and SignAndEncrypt, user name login only. The
// server listens on 127.0.0.1 only and keeps its certificates in DIR.
// When it serves it writes its certificate (DER) to DIR/server-cert.der and
// prints "READY <port>" on stdout. SIGTERM stops it.
"use strict";

const fs = require("fs");
const path = require("path");
// node-opcua-server's own exports are few; the rest comes from the
// packages it depends on, pinned by package-lock.json.
const { OPCUAServer } = require("node-opcua-server");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { Variant, DataType } = require("node-opcua-variant");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");
const { nodesets } = require("node-opcua-nodesets");

function arg(name, def) {
  const i = process.argv.indexOf("--" + name);
  if (i < 0) return def;
  const v = process.argv[i + 1];
  return v === undefined || v.startsWith("--") ? true : v;
}

async function main() {
  const port = parseInt(arg("port", "48400"), 10);
  const pki = path.resolve(arg("pki", "pki"));
  const secure = arg("secure", false) === true;
  const user = arg("user", "");
  const password = arg("password", "");
  const policy = arg("policy", "Basic256Sha256");
  const maxNodesPerRead = parseInt(arg("max-nodes-per-read", "0"), 10); // 0: no limit
  if (secure && !SecurityPolicy[policy]) throw new Error("unknown --policy " + policy);

  const certs = new OPCUACertificateManager({ rootFolder: path.join(pki, "server"), automaticallyAcceptUnknownCertificate: true });
  const userCerts = new OPCUACertificateManager({ rootFolder: path.join(pki, "user"), automaticallyAcceptUnknownCertificate: true });
  await certs.initialize();
  await userCerts.initialize();

  const server = new OPCUAServer({
    port,
    host: "127.0.0.1",
    hostname: "127.0.0.1",
    nodeset_filename: [nodesets.standard],
    serverCertificateManager: certs,
    userCertificateManager: userCerts,
    securityPolicies: secure ? [SecurityPolicy[policy]] : [SecurityPolicy.None],
    securityModes: secure ? [MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt] : [MessageSecurityMode.None],
    allowAnonymous: !secure,
    userManager: { isValidUser: (u, p) => user !== "" && u === user && p === password },
    serverCapabilities: { operationLimits: { maxNodesPerRead } },
    buildInfo: { productName: "hazgate interop reactor", manufacturerName: "hazgate tests" },
  });
  await server.initialize();

  const addressSpace = server.engine.addressSpace;
  const ns = addressSpace.getOwnNamespace();
  const reactor = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "R-301", nodeId: "s=R-301" });

  const t0 = Date.now();
  const temperature = () => 80 + 5 * Math.sin((Date.now() - t0) / 2000);
  let agitatorCmd = false;
  let setpoint = 80.0;
  const variable = (name, dataType, get, set) =>
    ns.addVariable({
      componentOf: reactor,
      nodeId: "s=R-301." + name,
      browseName: name,
      dataType,
      minimumSamplingInterval: 50,
      value: set
        ? { get: () => new Variant({ dataType: DataType[dataType], value: get() }), set: (v) => { set(v.value); return 0; } }
        : { get: () => new Variant({ dataType: DataType[dataType], value: get() }) },
      accessLevel: set ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: set ? "CurrentRead | CurrentWrite" : "CurrentRead",
    });
  variable("TT-301", "Double", temperature);
  variable("PT-301", "Double", () => 0.25 + 0.01 * (temperature() - 80));
  variable("XS-301", "Boolean", () => true);
  variable("HS-301", "Boolean", () => agitatorCmd, (v) => { agitatorCmd = v; });
  variable("TIC-301.SP", "Double", () => setpoint, (v) => { setpoint = v; });
  variable("Count", "Int16", () => 7);

  await server.start();
  fs.writeFileSync(path.join(pki, "server-cert.der"), server.getCertificate());
  process.stdout.write("READY " + port + "\n");

  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write("server.js: " + (err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
