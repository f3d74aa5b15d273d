#!/usr/bin/env node
'use strict';
// Runs the TypeScript sources directly (tsx), so a clone works without a build step.
// The AWS SDK's notice about future Node versions is noise on every command; silence it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs');
require('../src/cli/main.ts')
  .main(process.argv)
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
