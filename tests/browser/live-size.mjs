// The size of the live-component client as a browser gets it: public/js/live.js
// (without morphdom, which it imports) and the vendored morphdom, raw, minified
// by esbuild and gzipped. Fails when live.js outgrows its budget.
//
// Run: `npm run size` in this folder (after `npm ci`).

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { transform } from "esbuild";

const js = resolve(import.meta.dirname, "../../public/js");
/** live.js budget, in bytes. */
const MAX_MINIFIED = 10240;
const MAX_GZIPPED = 4096;

/** Raw, minified and gzipped sizes of a file. */
async function measure(path) {
  const source = readFileSync(path, "utf8");
  const { code } = await transform(source, { minify: true, format: "esm", loader: "js" });
  const sizes = { raw: Buffer.byteLength(source), min: Buffer.byteLength(code), gz: gzipSync(code, { level: 9 }).length };
  console.log(`${path.slice(js.length + 1)}: ${sizes.raw} B, ${sizes.min} B minified, ${sizes.gz} B gzipped (zlib level 9)`);
  return sizes;
}

const live = await measure(resolve(js, "live.js"));
await measure(resolve(js, "vendor/morphdom.js"));
if (live.min > MAX_MINIFIED || live.gz > MAX_GZIPPED) {
  console.error(`live.js is over budget: at most ${MAX_MINIFIED} B minified and ${MAX_GZIPPED} B gzipped`);
  process.exit(1);
}
