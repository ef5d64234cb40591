// Parse Mermaid diagrams with Mermaid's own parser (the `mermaid` npm package), no browser.
// usage: node mermaid_parse.mjs FILE...   stdout: [{"file", "ok", "error"}]
import fs from "node:fs";
import { JSDOM } from "jsdom";

// Mermaid sanitises labels with DOMPurify, which needs a DOM when the module loads: give it jsdom's (no browser)
const { window } = new JSDOM("<!DOCTYPE html><html><body></body></html>");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });
const out = [];
for (const file of process.argv.slice(2)) {
  try {
    await mermaid.parse(fs.readFileSync(file, "utf8"));
    out.push({ file, ok: true, error: "" });
  } catch (error) {
    out.push({ file, ok: false, error: String(error && error.message ? error.message : error) });
  }
}
process.stdout.write(JSON.stringify(out, null, 1));
