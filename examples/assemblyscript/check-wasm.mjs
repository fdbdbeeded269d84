// Checks a built handler module against handler ABI v1 (docs/ABI.md) and
// prints its imports and exports:
//   node check-wasm.mjs build/echo.wasm echo,fail
// Fails (exit 1) when an import is not from module "switchyard", when
// `memory`, `alloc` or `switchyard_abi_v1` is missing, or when an expected
// handler export is missing.
import { readFileSync } from "node:fs";

const HOST_IMPORTS = new Set([
  "send_success", "send_error", "send_to_client", "send_to_user", "send_to_tag",
  "send_to_all", "join_tag", "quit_tag", "tag_members", "client_id", "user_id",
  "claims", "log",
]);

const [file, handlerList = ""] = process.argv.slice(2);
if (!file) {
  console.error("usage: node check-wasm.mjs FILE.wasm [export1,export2,...]");
  process.exit(2);
}
const module = new WebAssembly.Module(readFileSync(file));
const imports = WebAssembly.Module.imports(module);
const exports = WebAssembly.Module.exports(module);
const problems = [];

for (const i of imports) {
  if (i.module !== "switchyard" || i.kind !== "function" || !HOST_IMPORTS.has(i.name)) {
    problems.push(`unexpected import ${i.module}.${i.name} (${i.kind})`);
  }
}
const byName = new Map(exports.map((e) => [e.name, e.kind]));
const want = [["memory", "memory"], ["alloc", "function"], ["switchyard_abi_v1", "function"]];
for (const h of handlerList.split(",").filter(Boolean)) want.push([h, "function"]);
for (const [name, kind] of want) {
  if (byName.get(name) !== kind) problems.push(`missing ${kind} export "${name}"`);
}

console.log(`${file}`);
console.log(`  imports: ${imports.map((i) => `${i.module}.${i.name}`).join(", ") || "(none)"}`);
console.log(`  exports: ${exports.map((e) => e.name).join(", ")}`);
if (problems.length) {
  for (const p of problems) console.error(`  ERROR: ${p}`);
  process.exit(1);
}
