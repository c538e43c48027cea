// Validates External Secrets Operator objects with the validators that
// @kubernetes-models/external-secrets generates from ESO's CRD schemas
// (installed by scripts/test-deps.sh; no registry ships the CRD YAML).
// Usage: node eso_validate.mjs NODE_MODULES_DIR < objects.json
// Prints JSON: [{"kind", "name", "ok", "error"}] for each object of the input array.
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(process.argv[2], "@kubernetes-models/external-secrets");
const objs = JSON.parse(readFileSync(0, "utf8"));
const out = [];
for (const o of objs) {
  const [group, version] = String(o.apiVersion || "").split("/");
  let ok = false, error = null;
  try {
    if (group !== "external-secrets.io") throw new Error(`apiVersion ${o.apiVersion} is not external-secrets.io`);
    const mod = await import(pathToFileURL(join(root, group, version, `${o.kind}.js`)).href);
    new mod[o.kind](o).validate();
    ok = true;
  } catch (e) {
    error = String(e && e.message || e);
  }
  out.push({ kind: o.kind, name: o.metadata && o.metadata.name, ok, error });
}
process.stdout.write(JSON.stringify(out));
