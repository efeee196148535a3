// make web: bundles src/ into static/ (committed, embedded by web.go) with
// esbuild: one minified ES module with uPlot inside, one stylesheet, the page.
// It also records in sources.sha256 what it was built from, so that a Go test
// (web_test.go) catches sources changed without a rebuild, with no Node.
import * as esbuild from 'esbuild';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';

const common = { bundle: true, minify: true, legalComments: 'eof', logLevel: 'info' };
await esbuild.build({ ...common, entryPoints: ['src/main.js'], outfile: 'static/app.js', format: 'esm', target: 'es2022' });
await esbuild.build({ ...common, entryPoints: ['src/style.css'], outfile: 'static/app.css' });
copyFileSync('src/index.html', 'static/index.html');

// One line per input, "sha256  path", sorted by path (as sha256sum prints).
const inputs = ['build.mjs', 'package-lock.json', ...readdirSync('src', { recursive: true })
  .map((p) => 'src/' + p.split('\\').join('/'))
  .filter((p) => /\.(js|css|html)$/.test(p))].sort();
const lines = inputs.map((p) => createHash('sha256').update(readFileSync(p)).digest('hex') + '  ' + p + '\n');
writeFileSync('sources.sha256', lines.join(''));
