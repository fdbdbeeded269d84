// Measures the minified + gzipped (level 9) size of this client and of two well-known real-time
// clients, each bundled the same way (esbuild: bundle, minify, ESM, browser platform) from an
// entry that imports its main export. Prints a markdown table (pasted into README.md).
//   node scripts/size.mjs            # table
//   node scripts/size.mjs --check    # also exit 1 when switchyard-client is over 5 KB
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const version = (pkg) => JSON.parse(readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")).version;
const own = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version;

const clients = [
  ["switchyard-client", own, `export { Switchyard } from ${JSON.stringify(path.join(root, "src/index.ts"))};`],
  ["centrifuge", version("centrifuge"), `export { Centrifuge } from "centrifuge";`],
  ["socket.io-client", version("socket.io-client"), `export { io } from "socket.io-client";`],
];

const rows = [];
for (const [name, ver, contents] of clients) {
  const out = await build({
    stdin: { contents, resolveDir: root, loader: "js" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2020",
    write: false,
    logLevel: "error",
  });
  const code = out.outputFiles[0].contents;
  rows.push({ name, ver, min: code.length, gz: gzipSync(code, { level: 9 }).length });
}

const kb = (n) => (n / 1024).toFixed(1) + " KB";
console.log("| client | version | minified | minified + gzip -9 |");
console.log("|---|---|---:|---:|");
for (const r of rows) console.log(`| ${r.name} | ${r.ver} | ${kb(r.min)} | ${kb(r.gz)} (${r.gz} B) |`);

const ours = rows[0];
if (process.argv.includes("--check") && ours.gz > 5 * 1024) {
  console.error(`switchyard-client is ${ours.gz} B gzipped, over the 5 KB budget`);
  process.exit(1);
}
