// make web: bundles src/ into static/ (committed, embedded by web.go) with
// esbuild: one minified ES module with uPlot inside, one stylesheet, the page.
import * as esbuild from 'esbuild';
import { copyFileSync } from 'node:fs';

const common = { bundle: true, minify: true, legalComments: 'eof', logLevel: 'info' };
await esbuild.build({ ...common, entryPoints: ['src/main.js'], outfile: 'static/app.js', format: 'esm', target: 'es2022' });
await esbuild.build({ ...common, entryPoints: ['src/style.css'], outfile: 'static/app.css' });
copyFileSync('src/index.html', 'static/index.html');
