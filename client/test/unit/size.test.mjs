// The bundle budget: minified + gzip -9 at most 5 KB (scripts/size.mjs compares with others).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

test("dist/index.min.js is at most 5 KB minified + gzipped", () => {
  const min = readFileSync(new URL("../../dist/index.min.js", import.meta.url));
  const gz = gzipSync(min, { level: 9 }).length;
  assert.ok(gz <= 5 * 1024, `${gz} B`);
});

test("zero runtime dependencies", () => {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  assert.equal(pkg.dependencies, undefined);
  const js = readFileSync(new URL("../../dist/index.js", import.meta.url), "utf8");
  assert.doesNotMatch(js, /^\s*import\s/m);
});
