// Bundles src/ into dist/ (app.js, app.css, index.html, and the phone app
// in dist/field/), which the dispatcher embeds. The output is deterministic, so that check.sh can tell
// a stale dist/ from a fresh one by `git diff`.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";

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

// The phone app (#19), served under /field/: its page, script and style,
// the web app manifest and icons, and the service worker, which names the
// shell's version (a hash of the shell's files) so that a new build
// replaces the phone's cached shell.
mkdirSync("dist/field", { recursive: true });
await build({
  entryPoints: ["src/field/app.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  outfile: "dist/field/app.js",
  logLevel: "warning",
});
await build({
  entryPoints: ["src/field/app.css"],
  bundle: true,
  minify: true,
  outfile: "dist/field/app.css",
  logLevel: "warning",
});
const shellFiles = ["index.html", "manifest.webmanifest", "icon-192.png", "icon-512.png"];
for (const name of shellFiles) {
  copyFileSync(`src/field/${name}`, `dist/field/${name}`);
}
const shellHash = createHash("sha256");
for (const name of [...shellFiles, "app.js", "app.css"]) {
  shellHash.update(readFileSync(`dist/field/${name}`));
}
// The worker's push side (notifications and their actions, #20) is
// TypeScript with the generated client: bundled and appended to sw.js.
const pushWorker = await build({
  entryPoints: ["src/field/push-worker.ts"],
  bundle: true,
  format: "iife",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  write: false,
  logLevel: "warning",
});
const worker = readFileSync("src/field/sw.js", "utf8").replace("__SHELL_VERSION__", shellHash.digest("hex").slice(0, 16));
writeFileSync("dist/field/sw.js", `${worker}\n${pushWorker.outputFiles[0].text}`);
