/**
 * The ingest endpoint's virtual-patch routes, for AST/DAST tools and CI/CD pipelines:
 * `POST /v1/virtual-patches` starts (or joins) a finding's patch, and
 * `POST /v1/virtual-patches/<finding-id>/retire` reports the fix deployed.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import {
  retireVirtualPatch,
  startVirtualPatch,
  type PatchFinding,
  type PatchRules,
} from '../client/virtual-patch';
import type { Config } from '../config';
import { configuredWaf } from '../waf/client';
import { PolicyError } from '../domain/policy';
import { HttpError, parseWith } from './http';
import type { IngestDeps } from './server';
import { patchBody, retireBody, type PatchBody } from './schema';

export const PATCHES_PATH = '/v1/virtual-patches';
const RETIRE = /^\/v1\/virtual-patches\/([^/]+)\/retire$/;

function toFinding(body: PatchBody, client: string): PatchFinding {
  return {
    findingId: body.findingId,
    path: body.path,
    ...(body.match ? { match: body.match } : {}),
    ...(body.method ? { method: body.method } : {}),
    ...(body.field ? { field: body.field } : {}),
    kind: body.kind,
    ...(body.pattern !== undefined ? { pattern: body.pattern } : {}),
    ...(body.ttl !== undefined ? { ttlMs: body.ttl } : {}),
    ...(body.observe !== undefined ? { observeMs: body.observe } : {}),
    ...(body.approval ? { approval: body.approval } : {}),
    reason: body.reason,
    detector: `ingest.${client}`,
    requestedBy: `ingest client ${client}`,
  };
}

const rulesByConfig = new WeakMap<Config, PatchRules>();

/** One WAF client per server configuration, for rules an ended patch left behind. */
function patchRules(config: Config): PatchRules {
  let rules = rulesByConfig.get(config);
  if (!rules) {
    rules = configuredWaf(config.waf).patches;
    rulesByConfig.set(config, rules);
  }
  return rules;
}

/** Whether `path` is one of these routes (for the server's 404). */
export function isPatchRoute(path: string): boolean {
  return path === PATCHES_PATH || RETIRE.test(path);
}

export async function handlePatchRoute(
  deps: IngestDeps,
  path: string,
  client: string,
  raw: unknown,
): Promise<{ body: unknown; log: string }> {
  const clientDeps = { client: deps.client, config: deps.config };
  const retire = RETIRE.exec(path);
  if (retire) {
    const findingId = decodeURIComponent(retire[1] ?? '');
    const { commit } = parseWith(retireBody, raw);
    try {
      const fix = { commit, by: `ingest client ${client}` };
      const result = await retireVirtualPatch(deps.client, findingId, fix, patchRules(deps.config));
      return { body: result, log: `${client}: fix deployed for ${findingId} (${commit}): ${result.state}` };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError)
        throw new HttpError(404, `no virtual patch for finding ${findingId}`);
      throw err;
    }
  }
  const body = parseWith(patchBody, raw);
  try {
    const started = await startVirtualPatch(clientDeps, toFinding(body, client));
    return {
      body: started,
      log: `${client}: ${started.joined ? 'joined' : 'started'} ${started.workflowId} (${started.summary})`,
    };
  } catch (err) {
    if (err instanceof PolicyError) throw new HttpError(400, `refused: ${err.problems.join('; ')}`);
    throw err;
  }
}
