// The demo a test runs against a live `regelwerk serve`:
//   REGELWERK_URL=http://127.0.0.1:8080 REGELWERK_KEY=rwk_... node demo.mjs path/to/bundle matrix
// It deploys the tenant's bundle, starts and fires a workflow, asks a batch of permission questions and reads
// a refusal's explanation; it prints one JSON line per step.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { RegelwerkClient, RegelwerkError } from "./regelwerk-client.mjs";

function bundleFiles(root) {
  const files = {};
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith(".")) continue;
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(root, path).split(sep).join("/")] = readFileSync(path, "utf8");
    }
  };
  walk(root);
  return files;
}

const [bundleDir, matrix] = process.argv.slice(2);
const client = new RegelwerkClient(process.env.REGELWERK_URL, process.env.REGELWERK_KEY);
const say = (step, data) => console.log(JSON.stringify({ step, ...data }));

const employee = { id: "e1", roles: ["medewerker"] };
const manager = { id: "m1", roles: ["leidinggevende"] };

const deployed = await client.deploy(bundleFiles(bundleDir), matrix);
say("deploy", { version: deployed.version, active: deployed.active });

const started = await client.start("reminder", { note: "from node" }, employee);
say("start", { id: started.id, state: started.state });

try {
  await client.fire(started.id, "close", employee);
  say("refusal", { refused: false });
} catch (error) {
  if (!(error instanceof RegelwerkError)) throw error;
  say("refusal", { refused: true, status: error.status, code: error.code,
                   reason: error.problem.explain.reason });
}
const why = await client.explain(started.id, "close", employee);
say("explain", { allowed: why.allowed, reasons: why.reasons });

const fired = await client.fire(started.id, "close", manager);
say("fire", { state: fired.state, version: fired.version });

const resources = [];
for (let i = 0; i < 50; i++) resources.push({ type: "reminder", id: `r${i}`, actions: ["read", "close"] });
const batch = await client.canBatch(employee, resources);
let allowed = 0, denied = 0;
for (const result of batch.results) {
  for (const answer of Object.values(result.actions)) answer.allowed ? allowed++ : denied++;
}
say("batch", { questions: allowed + denied, allowed, denied,
               first_denial: batch.results[0].actions.close.explain.reason });

const history = await client.history(started.id);
say("history", { events: history.map((h) => h.event) });
