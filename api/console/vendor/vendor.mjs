#!/usr/bin/env node
// Copies the GraphiQL, React and ReactDOM browser builds pinned in
// package-lock.json into ../graphiql, the directory the gemba binary embeds
// and serves at /graphql. The result is committed: a user never runs npm.
// CI runs `npm ci && node vendor.mjs` and fails when the committed files
// differ from what this script produces.
//
// Usage: (cd api/console/vendor && npm ci && node vendor.mjs [--out <dir>])
//   --out writes elsewhere than ../graphiql (CI compares the two).

import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, 'node_modules');
const outAt = process.argv.indexOf('--out');
const out = outAt >= 0 ? process.argv[outAt + 1] : join(here, '..', 'graphiql');
if (!out) {
  console.error('usage: node vendor.mjs [--out <dir>]');
  process.exit(2);
}

// Source file in node_modules → embedded name.
const FILES = [
  ['react/umd/react.production.min.js', 'react.production.min.js'],
  ['react-dom/umd/react-dom.production.min.js', 'react-dom.production.min.js'],
  ['graphiql/graphiql.min.js', 'graphiql.min.js'],
  ['graphiql/graphiql.min.css', 'graphiql.min.css'],
];
const PACKAGES = ['graphiql', 'react', 'react-dom'];

/** Source maps are not shipped: drop the comment so no browser asks for one. */
function stripSourceMap(text) {
  return text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, '\n');
}

/** Anything that would make a browser fetch from another host. */
function externalReferences(name, text) {
  const found = [];
  if (name.endsWith('.css')) {
    for (const m of text.matchAll(/@import[^;]*;|url\(\s*["']?(?!["']?data:)[^)]*\)/g)) found.push(m[0]);
  }
  return found;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const versions = {};
for (const pkg of PACKAGES) {
  versions[pkg] = JSON.parse(readFileSync(join(modules, pkg, 'package.json'), 'utf8')).version;
}

for (const [from, to] of FILES) {
  const text = stripSourceMap(readFileSync(join(modules, from), 'utf8'));
  const external = externalReferences(to, text);
  if (external.length) {
    console.error(`${to} refers to assets outside the binary: ${external.join(', ')}`);
    process.exit(1);
  }
  writeFileSync(join(out, to), text);
}

let licenses = 'Third-party software embedded in the gemba binary and served at /graphql.\n';
for (const pkg of PACKAGES) {
  const dir = join(modules, pkg);
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  licenses += `\n=== ${pkg} ${versions[pkg]} ===\n\n${readFileSync(join(dir, file), 'utf8').trim()}\n`;
}
writeFileSync(join(out, 'LICENSES.txt'), licenses);
writeFileSync(join(out, 'versions.json'), `${JSON.stringify(versions, null, 2)}\n`);
console.log(`vendored ${Object.entries(versions).map(([k, v]) => `${k}@${v}`).join(', ')} into ${out}`);
