/**
 * `npm run demo`: the local stack plus a scripted minute of attacks — detections become
 * incidents, blocks appear in the WAF emulator's IP sets, one is released by its TTL, one by
 * an operator, bad input is refused, and a virtual patch guards an endpoint until its fix is
 * deployed — so a newcomer sees the whole loop.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectTemporal } from '../client/temporal';
import {
  decideRemediation,
  incidentStatus,
  listRemediations,
  releaseRemediation,
  startRemediation,
  waitUntilSettled,
  type Detection,
} from '../client/remediation';
import { PolicyError } from '../domain/policy';
import { configuredWaf } from '../waf/client';
import { managedWafStatus } from '../waf/provision';
import type { DevStack } from '../dev/stack';
import { assertPortFree, freePort } from '../dev/services';
import { incidentUrl } from './context';
import { remediationTable, setTable, timeline } from './format';
import { startAndAnnounce, stopOnSignal } from './dev';
import { cliEnv } from './context';
import { loadConfig } from '../config';
import { git } from '../ledger/git';
import fs from 'node:fs';

const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
const say = (line = '') => console.log(line);
const step = (n: number, text: string) => say(`\n── ${n}. ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function portOr(preferred: number): Promise<number> {
  return assertPortFree(preferred, '').then(
    () => preferred,
    () => freePort(),
  );
}

function sqliProbe(ip: string, n: number): string {
  return `${ip} - - "GET /api/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--&page=${n} HTTP/1.1" 403`;
}

const EXAMPLE_LOG = path.join(PROJECT_ROOT, 'examples', 'access.log');
const EXAMPLE_CONFIG = path.join(PROJECT_ROOT, 'examples', 'detectors.yaml');

/** Runs the real `perimeter` command against the demo's stack, its output indented under the step. */
function runCliForDemo(stack: DevStack, args: string[]): Promise<void> {
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    AWS_ENDPOINT_URL_WAFV2: stack.waf.endpoint,
    PERIMETER_TEMPORAL_UI_URL: stack.temporal.uiUrl,
    ...(stack.config.ledger ? { PERIMETER_LEDGER_PATH: stack.config.ledger.path } : {}),
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'perimeter.js'), ...args], { env });
    const indent = (chunk: Buffer) => process.stdout.write(chunk.toString().replace(/^(?=.)/gm, '   '));
    child.stdout.on('data', indent);
    child.stderr.on('data', indent);
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`perimeter ${args[0]} exited with ${code}`)),
    );
  });
}

async function scenario(stack: DevStack, client: Client): Promise<void> {
  const { config } = stack;
  const deps = { client, config };
  const { gateway, patches, provision } = configuredWaf(config.waf);
  const setName = (action: string, family = 'ipv4') => `${config.waf.setPrefix}-${action}-${family}-0`;
  const showSet = async (action: string, family = 'ipv4') =>
    say(`   ${setName(action, family)}: [${(await gateway.addresses(setName(action, family))).join(', ')}]`);

  step(
    1,
    'A log detector sees 203.0.113.42 send SQL-injection probes → incident with a 5 s dry run, 20 s TTL',
  );
  const attack: Detection = {
    targets: ['203.0.113.42'],
    action: 'block',
    ttlMs: 20_000,
    observeMs: 5_000,
    reason: '40 SQL-injection probes in 60 s',
    detector: 'demo-log-detector',
    requestedBy: 'demo',
    evidence: {
      classes: { sqli: 40 },
      samples: [sqliProbe('203.0.113.42', 1), sqliProbe('203.0.113.42', 2)],
    },
  };
  const [first] = await startRemediation(deps, attack);
  if (!first) throw new Error('no incident started');
  say(`   started ${first.workflowId}`);
  say(`   ${incidentUrl(config, first.workflowId)}`);
  await sleep(1_000);
  say('   observing: the address is only counted, not blocked —');
  await showSet('count');
  await showSet('block');

  step(
    2,
    'The attacker keeps going: repeat detections join the open incident as evidence, not a second block',
  );
  for (let i = 0; i < 2; i++) {
    const [again] = await startRemediation(deps, {
      ...attack,
      evidence: { classes: { sqli: 12, traversal: 3 }, samples: [sqliProbe('203.0.113.42', 3 + i)] },
    });
    say(`   detection ${again?.joined ? 'joined' : 'STARTED A NEW'} incident ${again?.workflowId}`);
  }

  step(3, 'Two more detections: an XSS burst from a /24 (challenge) and an IPv6 scanner (block)');
  const xss = await startRemediation(deps, {
    targets: ['198.51.100.0/24'],
    action: 'challenge',
    ttlMs: 120_000,
    reason: 'XSS payloads from 37 addresses in one /24',
    detector: 'demo-log-detector',
    requestedBy: 'demo',
    evidence: { classes: { xss: 37 } },
  });
  const v6 = await startRemediation(deps, {
    targets: ['2001:db8:bad::/48'],
    action: 'block',
    ttlMs: 120_000,
    reason: 'scanner user agent (sqlmap) probing /admin',
    detector: 'demo-log-detector',
    requestedBy: 'demo',
    evidence: { classes: { scanner: 210 } },
  });
  for (const s of [...xss, ...v6]) say(`   ${s.target} → ${s.workflowId}`);

  step(4, 'Bad input is refused before anything starts');
  for (const bad of [
    { targets: ['0.0.0.0/0'], ttlMs: 60_000 },
    { targets: ['10.1.2.3'], ttlMs: 60_000 },
    { targets: ['203.0.113.300'], ttlMs: 60_000 },
    { targets: ['203.0.113.9'], ttlMs: 30 * 86_400_000 },
  ]) {
    try {
      await startRemediation(deps, { ...bad, reason: 'demo', detector: 'demo', requestedBy: 'demo' });
      say(`   !! ${bad.targets[0]} was accepted`);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      say(`   refused: ${err.message}`);
    }
  }

  step(5, 'The dry run ends; the block is applied');
  const active = await waitUntilSettled(client, first.workflowId, 30_000);
  say(`   ${first.target} is ${active.state} until ${active.expiresAt}`);
  await showSet('block');
  await showSet('challenge');
  await showSet('block', 'ipv6');
  say('');
  say(setTable(await managedWafStatus(provision)));
  say('');
  say(remediationTable(await listRemediations(client)));

  step(
    6,
    'A log detector replays examples/access.log (`perimeter detect … --config examples/detectors.yaml`)',
  );
  say('   344 lines: shoppers, one SQL injector, a Nikto scan, a burst of 12 XSS sprayers, an internal');
  say('   sqlmap run, a source below the threshold, and three garbage lines');
  await runCliForDemo(stack, ['detect', EXAMPLE_LOG, '--config', EXAMPLE_CONFIG, '--no-progress']);
  const applied = Date.now() + 15_000;
  while (
    (await gateway.check('block', ['203.0.113.66/32', '203.0.113.161/32'])).present.length < 2 &&
    Date.now() < applied
  ) {
    await sleep(100);
  }
  say('   a moment later the incidents have applied their remediations:');
  await showSet('block');
  await showSet('challenge');

  step(7, 'A detection that needs a person: it waits for approval (Slack buttons, or the CLI here)');
  const [asked] = await startRemediation(deps, {
    targets: ['203.0.113.77'],
    action: 'block',
    ttlMs: 120_000,
    approval: 'slack',
    reason: 'credential stuffing against /login from one address',
    detector: 'demo-log-detector',
    requestedBy: 'demo',
    evidence: { classes: { 'credential-stuffing': 180 }, authenticated: 0 },
  });
  if (!asked) throw new Error('no incident started');
  const waitingDeadline = Date.now() + 15_000;
  while (
    (await incidentStatus(client, asked.workflowId)).state !== 'awaiting-approval' &&
    Date.now() < waitingDeadline
  ) {
    await sleep(100);
  }
  say(`   ${asked.target}: ${(await incidentStatus(client, asked.workflowId)).state}; nothing applied yet`);
  await showSet('block');
  const decided = await decideRemediation(client, asked.workflowId, {
    decision: 'approve',
    by: 'demo-approver',
  });
  say(`   \`perimeter approve ${asked.target}\` → approved by ${decided.by}, now ${decided.state}`);
  await showSet('block');

  step(8, 'An operator releases the /24 early (`perimeter unblock 198.51.100.0/24`)');
  const released = await releaseRemediation(client, '198.51.100.0/24', {
    by: 'demo-operator',
    reason: 'false positive',
  });
  say(`   ${released.workflowId}: ${released.state}`);
  await showSet('challenge');

  step(9, 'A scanner finds SQL injection in GET /api/search?q=: a virtual patch until the fix ships');
  const finding = 'DEMO-SQLI-1';
  await runCliForDemo(stack, [
    ...['patch', finding, '--path', '/api/search', '--method', 'GET', '--field', 'query:q'],
    ...['--kind', 'sqli', '--observe', '2s', '--reason', 'DAST: q is injectable'],
  ]);
  for (const action of ['count', 'block'] as const) {
    const seen = Date.now() + 20_000;
    let rule = await patches.check(finding);
    while (rule?.action !== action && Date.now() < seen) {
      await sleep(100);
      rule = await patches.check(finding);
    }
    say(
      `   web ACL rule ${rule?.rule ?? '(missing)'}: ${rule?.action ?? 'absent'} (priority ${rule?.priority ?? '-'})`,
    );
  }
  say('   the fix is deployed; the pipeline runs `perimeter patch retire DEMO-SQLI-1 --commit 4f2c9e1`:');
  await runCliForDemo(stack, ['patch', 'retire', finding, '--commit', '4f2c9e1', '--by', 'demo-pipeline']);
  say(`   web ACL rule: ${(await patches.check(finding)) ? 'STILL THERE' : 'gone'}`);

  step(10, `Waiting for the 20 s TTL of ${first.target} to end …`);
  const deadline = Date.now() + 40_000;
  while ((await gateway.check('block', [first.target])).present.length > 0 && Date.now() < deadline)
    await sleep(250);
  const after = await waitUntilSettled(client, first.workflowId, 1_000).catch(() =>
    incidentStatus(client, first.workflowId),
  );
  say(`   ${first.target}: ${after.state} at ${after.releasedAt ?? '?'}`);
  await showSet('block');

  step(11, `The incident's story (\`perimeter show ${first.target}\`)`);
  say(timeline(first.workflowId, await incidentStatus(client, first.workflowId)));

  const ledger = config.ledger?.path;
  if (ledger) {
    step(12, `The IaC ledger: each applied and released change is a commit in ${ledger}`);
    const log = await git(ledger, ['log', '--format=%h %s', '-n', '8']);
    say(log.trimEnd().replace(/^/gm, '   '));
    say('   `perimeter ledger verify` compares it with the WAF:');
    await runCliForDemo(stack, ['ledger', 'verify']);
  }
}

/**
 * The demo records its changes in a git working copy of its own (in the state folder) unless
 * PERIMETER_LEDGER_PATH names one.
 */
async function demoEnv(): Promise<Record<string, string | undefined>> {
  const env = cliEnv();
  if (env.PERIMETER_LEDGER_PATH) return env;
  const dir = path.resolve(loadConfig(env).stateDir, 'ledger');
  if (!fs.existsSync(path.join(dir, '.git'))) {
    fs.mkdirSync(dir, { recursive: true });
    await git(dir, ['init', '-q', '-b', 'main']);
    fs.writeFileSync(path.join(dir, 'README.md'), '# Perimeter ledger (demo)\n');
    await git(dir, ['add', 'README.md']);
    await git(dir, ['commit', '-q', '-m', 'ledger: start']);
  }
  return { ...env, PERIMETER_LEDGER_PATH: dir };
}

export async function runDemo(options: { keep: boolean }): Promise<void> {
  const stack = await startAndAnnounce({
    env: await demoEnv(),
    temporalPort: await portOr(7233),
    uiPort: await portOr(8233),
    wafPort: await portOr(5000),
  });
  const { client, connection } = await connectTemporal(stack.config);
  try {
    await scenario(stack, client);
  } catch (err) {
    await connection.close();
    await stack.stop();
    throw err;
  }
  if (options.keep) {
    say(`\nThe stack keeps running: open ${stack.temporal.uiUrl} to read each incident's timeline.`);
    say('The IPv6 block expires by itself in about 2 minutes. Ctrl-C stops everything.');
    await connection.close();
    await stopOnSignal(stack);
    return;
  }
  say('\nReleasing what is still held, then stopping the stack …');
  for (const r of await listRemediations(client)) {
    await releaseRemediation(client, r.workflowId, { by: 'demo', reason: 'demo finished' });
  }
  await connection.close();
  await stack.stop();
  say('done.');
}
