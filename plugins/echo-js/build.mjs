// Build echo.js into a Switchboard plugin component:
//   node build.mjs [OUTPUT]     (default: dist/echo_js.wasm beside this file)
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { componentize } from "@bytecodealliance/componentize-js";

const here = dirname(fileURLToPath(import.meta.url));
const output = resolve(process.argv[2] ?? resolve(here, "dist/echo_js.wasm"));

const started = performance.now();
const { component } = await componentize({
  sourcePath: resolve(here, "echo.js"),
  witPath: resolve(here, "../../wit"),
  worldName: "channel",
  // Every optional engine feature off, so that the component imports only
  // the host interface: no console output (an uncaught exception traps
  // silently), no real randomness, no clocks or timers, no fetch.
  disableFeatures: ["stdio", "random", "clocks", "http", "fetch-event"],
});
const seconds = (performance.now() - started) / 1000;

await mkdir(dirname(output), { recursive: true });
await writeFile(output, component);
const megabytes = component.byteLength / 1e6;
console.log(`${output}: ${megabytes.toFixed(1)} MB, built in ${seconds.toFixed(1)} s`);
