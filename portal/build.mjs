// Builds the portal into dist/: one script bundle (with OPAQUE's
// WebAssembly inside it), the page, the styles. The HSP serves dist/ as is.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";

const out = new URL("./dist/", import.meta.url).pathname;
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  sourcemap: false,
  legalComments: "linked",
  outfile: `${out}app.js`,
});
cpSync("src/index.html", `${out}index.html`);
cpSync("src/app.css", `${out}app.css`);
cpSync("node_modules/uplot/dist/uPlot.min.css", `${out}uPlot.min.css`);
console.log(`portal built into ${out}`);
