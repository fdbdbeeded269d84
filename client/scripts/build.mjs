// Builds dist/index.js (ES module, readable: what the server serves at /assets/switchyard-client.js),
// dist/index.min.js (minified) and dist/index.d.ts (tsc --emitDeclarationOnly).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const common = { entryPoints: [path.join(root, "src/index.ts")], bundle: true, format: "esm", target: "es2020", logLevel: "warning" };
await build({ ...common, outfile: path.join(root, "dist/index.js") });
await build({ ...common, outfile: path.join(root, "dist/index.min.js"), minify: true });
execFileSync(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", root, "--emitDeclarationOnly"], { stdio: "inherit" });
