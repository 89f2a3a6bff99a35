// Builds the portal into dist/: one script bundle (with OPAQUE's
// WebAssembly inside it) from src/main.js and the modules it imports, the
// page, the styles. The HSP serves dist/ as is. Prints the bundle's size and
// how much of it is the portal's own code, to see what a change costs.
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";

const out = new URL("./dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  legalComments: "linked",
  metafile: true,
  outfile: `${out}app.js`,
});
cpSync("src/index.html", `${out}index.html`);
cpSync("src/app.css", `${out}app.css`);
cpSync("node_modules/uplot/dist/uPlot.min.css", `${out}uPlot.min.css`);

const bundle = readFileSync(`${out}app.js`);
const inputs = Object.values(result.metafile.outputs).flatMap((o) => Object.entries(o.inputs));
const own = inputs.filter(([path]) => path.startsWith("src/")).reduce((sum, [, i]) => sum + i.bytesInOutput, 0);
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
console.log(
  `portal built into ${out}: app.js ${kb(bundle.length)} (${kb(gzipSync(bundle).length)} gzipped), ` +
    `of which the portal's own code ${kb(own)}`,
);
