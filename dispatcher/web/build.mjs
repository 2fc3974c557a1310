// Bundles src/ into dist/ (app.js, app.css, index.html), which the
// dispatcher embeds. The output is deterministic, so that check.sh can tell
// a stale dist/ from a fresh one by `git diff`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

mkdirSync("dist", { recursive: true });
await build({
  entryPoints: ["src/app.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  outfile: "dist/app.js",
  logLevel: "warning",
});
await build({
  entryPoints: ["src/app.css"],
  bundle: true,
  minify: true,
  outfile: "dist/app.css",
  logLevel: "warning",
});
copyFileSync("src/index.html", "dist/index.html");
