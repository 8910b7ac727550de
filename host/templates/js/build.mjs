// Build plugin.js into a Switchboard plugin component:
//   node build.mjs [OUTPUT]     (default: dist/{{name}}.wasm)
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { componentize } from "@bytecodealliance/componentize-js";

const here = dirname(fileURLToPath(import.meta.url));
const output = resolve(process.argv[2] ?? resolve(here, "dist/{{name}}.wasm"));
const { component } = await componentize({
  sourcePath: resolve(here, "plugin.js"),
  witPath: resolve(here, {{wit}}),
  worldName: "channel",
  // No console, randomness, clocks or fetch: the component imports the host interface only.
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
await mkdir(dirname(output), { recursive: true });
await writeFile(output, component);
console.log(`${output}: ${(component.byteLength / 1e6).toFixed(1)} MB`);
