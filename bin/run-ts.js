#!/usr/bin/env node
'use strict';
// `node bin/run-ts.js file.ts args…`: runs a TypeScript entry point (benchmarks, scripts).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs');
const file = require('node:path').resolve(process.argv[2]);
process.argv.splice(1, 2, file);
require(file);
