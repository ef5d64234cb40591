// Check YAML files the way an editor with yaml-language-server does, with tools independent of the project:
// `yaml` (the parser yaml-language-server uses, YAML 1.2) reads every document with positions, the file's
// `# yaml-language-server: $schema=PATH` modeline names the schema, Ajv (JSON Schema 2020-12) validates.
// usage: node ajv_check.mjs SCHEMA_DIR... -- FILE...   (every *.json under the SCHEMA_DIRs is added by its $id)
// stdout: [{"file", "schema", "documents", "problems": [{"line", "column", "keyword", "pointer", "message"}]}]
import fs from "node:fs";
import path from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { LineCounter, parseAllDocuments, isMap, isScalar } from "yaml";

const args = process.argv.slice(2);
const split = args.indexOf("--");
const schemaDirs = args.slice(0, split);
const files = args.slice(split + 1);

// One Ajv per directory of schemas a modeline names: its files first, then the core's (SCHEMA_DIRs) for the ids
// it lacks (a plugin's schema that names the core's by $id). Editors resolve the same references by file path.
function jsonFiles(dir) {
  return fs.statSync(dir).isDirectory()
    ? fs.readdirSync(dir).filter((n) => n.endsWith(".json")).sort().map((n) => path.join(dir, n)) : [dir];
}
const instances = new Map();
function validatorFor(schemaFile) {
  const dir = path.dirname(path.resolve(schemaFile));
  if (!instances.has(dir)) {
    const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: false });
    const ids = new Map();
    for (const file of [...jsonFiles(dir), ...schemaDirs.flatMap(jsonFiles)]) {
      const schema = JSON.parse(fs.readFileSync(file, "utf8"));
      if (!schema.$id || ajv.getSchema(schema.$id) || [...ids.values()].includes(schema.$id)) continue;
      ajv.addSchema(schema);
      ids.set(path.resolve(file), schema.$id);
    }
    instances.set(dir, { ajv, ids });
  }
  const { ajv, ids } = instances.get(dir);
  const id = ids.get(path.resolve(schemaFile));
  return id ? ajv.getSchema(id) : null;
}

function nodeAt(doc, pointer) {
  const keys = pointer.split("/").slice(1).map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
  let node = doc.contents;
  for (const key of keys) {
    if (node == null) return null;
    node = node.get ? node.get(isMap(node) ? key : Number(key), true) : null;
  }
  return node;
}

function keyAt(doc, pointer, key) {
  const map = nodeAt(doc, pointer);
  if (!isMap(map)) return null;
  const pair = map.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key);
  return pair ? pair.key : null;
}

const out = [];
for (const file of files) {
  const text = fs.readFileSync(file, "utf8");
  const match = text.match(/^#\s*yaml-language-server:\s*\$schema=(\S+)/m);
  const entry = { file, schema: match ? match[1] : null, documents: 0, problems: [] };
  out.push(entry);
  if (!match) continue;
  const schemaFile = path.resolve(path.dirname(file), match[1]);
  const validate = fs.existsSync(schemaFile) ? validatorFor(schemaFile) : null;
  if (!validate) {
    entry.problems.push({ line: 1, column: 1, keyword: "$schema", pointer: "", message: `cannot load ${match[1]}` });
    continue;
  }
  const lines = new LineCounter();
  for (const doc of parseAllDocuments(text, { lineCounter: lines })) {
    if (doc.contents == null) continue;
    entry.documents += 1;
    if (validate(doc.toJS())) continue;
    for (const error of validate.errors) {
      let pointer = error.instancePath;
      let node = nodeAt(doc, pointer);
      if (error.keyword === "additionalProperties") {
        pointer = `${pointer}/${error.params.additionalProperty}`;
        node = keyAt(doc, error.instancePath, error.params.additionalProperty);
      } // a missing property is marked where its mapping starts (the `{` of a flow mapping), as the editor does
      const offset = node && node.range ? node.range[0] : 0;
      const pos = lines.linePos(offset);
      entry.problems.push({ line: pos.line, column: pos.col, keyword: error.keyword, pointer, message: error.message });
    }
  }
}
process.stdout.write(JSON.stringify(out, null, 1));
