/**
 * `perimeter patch <finding-id> …` puts a virtual patch in front of a vulnerable endpoint;
 * `perimeter patch retire <finding-id> --commit <sha>` is the CI/CD step that takes it away once
 * the fix is deployed.
 */
import { Command, Option } from 'commander';
import { WorkflowNotFoundError } from '@temporalio/client';
import { waitUntilSettled } from '../client/remediation';
import {
  checkFinding,
  retireVirtualPatch,
  startVirtualPatch,
  waitForPatchEnd,
  type PatchFinding,
} from '../client/virtual-patch';
import { configuredWaf } from '../waf/client';
import { formatDuration } from '../domain/durations';
import { HTTP_METHODS, PATCH_KINDS, PATH_MATCHES } from '../domain/virtual-patch';
import type { ApprovalMode } from '../../workflows/definitions';
import { duration, print } from './args';
import { cliConfig, incidentUrl, whoAmI, withTemporal } from './context';

interface PatchOptions {
  path?: string;
  match: string;
  method?: string;
  field: string;
  kind?: string;
  pattern?: string;
  ttl?: number;
  observe?: number;
  approval: string;
  reason?: string;
  json?: boolean;
}

/** A retire that names a finding without any patch, ever: a typo in a pipeline must not pass silently. */
export class PatchUsageError extends Error {
  override name = 'PatchUsageError';
}

export class NoSuchPatchError extends Error {
  override name = 'NoSuchPatchError';
}

export function patchCommand(): Command {
  const patch = new Command('patch')
    .description('put a virtual patch (a temporary WAF rule) in front of a vulnerable endpoint')
    .argument(
      '<finding-id>',
      'the scanner finding, e.g. CVE-2026-1234 or ZAP-40018 (letters, digits, - and _)',
    )
    // Checked in the action, not by commander: a mandatory option here would also be demanded of `patch retire`.
    .option('--path <path>', 'the vulnerable endpoint, e.g. /api/search (required)')
    .addOption(new Option('--match <how>', 'how the path matches').choices(PATH_MATCHES).default('exact'))
    .option('--method <method>', `only this HTTP method: ${HTTP_METHODS.join(', ')} (default: any)`)
    .option('--field <field>', 'what to inspect: uri, query, query:<name>, body, header:<name>', 'query')
    .addOption(new Option('--kind <kind>', 'what the rule looks for (required)').choices(PATCH_KINDS))
    .option('--pattern <regex>', 'for --kind regex: the pattern (lower case; the field is lower-cased)')
    .option(
      '--ttl <duration>',
      'longest the patch holds if no fix is reported (default PERIMETER_VPATCH_DEFAULT_TTL)',
      duration,
    )
    .option(
      '--observe <duration>',
      'Count mode first, for this long (default PERIMETER_DEFAULT_OBSERVE)',
      duration,
    )
    .addOption(
      new Option('--approval <mode>', 'slack: a person approves before the rule blocks')
        .choices(['none', 'slack'])
        .default('none'),
    )
    .option('--reason <text>', 'why, for the timeline')
    .option('--json', 'wait until the rule is in place (or waits for approval), then print the patch as JSON')
    .action(async (findingId: string, o: PatchOptions) => {
      if (!o.path || !o.kind) {
        throw new PatchUsageError(`patch ${findingId} needs --path and --kind (see perimeter patch --help)`);
      }
      const { path, kind } = o;
      const config = cliConfig();
      const finding: PatchFinding = {
        findingId,
        path,
        match: o.match,
        ...(o.method ? { method: o.method } : {}),
        field: o.field,
        kind,
        ...(o.pattern !== undefined ? { pattern: o.pattern } : {}),
        ...(o.ttl !== undefined ? { ttlMs: o.ttl } : {}),
        ...(o.observe !== undefined ? { observeMs: o.observe } : {}),
        approval: o.approval as ApprovalMode,
        reason: o.reason ?? `virtual patch for ${findingId}`,
        detector: 'cli',
        requestedBy: whoAmI(),
      };
      checkFinding(config, finding); // refused before connecting: bad input says so even with Temporal down
      await withTemporal(config, async (client) => {
        const started = await startVirtualPatch({ client, config }, finding);
        if (o.json) {
          const wait = (o.observe ?? config.policy.defaultObserveMs) + 60_000;
          const status = await waitUntilSettled(client, started.workflowId, wait);
          print({
            workflowId: started.workflowId,
            joined: started.joined,
            state: status.state,
            ...status.patch,
          });
          return;
        }
        if (started.joined) {
          print(
            `${findingId}: joined the open patch ${started.workflowId} (${started.state}); its rule stands`,
          );
        } else {
          print(
            `${findingId}: ${started.summary}, for up to ${formatDuration(started.ttlMs)} → ${started.workflowId}`,
          );
        }
        print(`  retire it when the fix ships: perimeter patch retire ${findingId} --commit <sha>`);
        print(`  ${incidentUrl(config, started.workflowId)}`);
      });
    });

  patch
    .command('retire')
    .description('the fix is deployed: remove the finding’s virtual patch (a CI/CD pipeline step)')
    .argument('<finding-id>')
    .requiredOption('--commit <sha>', 'the commit or release that fixed it, for the record')
    .option('--by <who>', 'who reports it (default: user@host)')
    .option('--no-wait', 'return once the patch has been told, without waiting for the rule to go')
    .option('--timeout <duration>', 'how long to wait for the rule to go', duration, 120_000)
    .action(async (findingId: string, o: { commit: string; by?: string; wait: boolean; timeout: number }) => {
      if (!o.commit.trim())
        throw new PatchUsageError('--commit must name the commit or release that fixed it');
      const config = cliConfig();
      const { patches } = configuredWaf(config.waf);
      await withTemporal(config, async (client) => {
        let retired;
        try {
          const fix = { commit: o.commit, by: o.by ?? whoAmI() };
          retired = await retireVirtualPatch(client, findingId, fix, patches);
        } catch (err) {
          if (err instanceof WorkflowNotFoundError)
            throw new NoSuchPatchError(`no virtual patch for finding ${findingId}`);
          throw err;
        }
        if (!retired.accepted) {
          print(
            retired.removedLeftover
              ? `${findingId}: the patch had ended (${retired.state}) but left its rule in the web ACL; rule removed`
              : `${findingId}: nothing to retire, the patch has already ended (${retired.state})`,
          );
          return;
        }
        if (!o.wait) {
          print(`${findingId}: told the patch the fix is deployed (${o.commit}); it removes its rule now`);
          return;
        }
        const final = await waitForPatchEnd(client, findingId, o.timeout);
        print(
          final.state === 'released'
            ? `${findingId}: rule removed (fix ${o.commit}) — ${retired.workflowId}`
            : `${findingId}: patch ended ${final.state}; nothing is left in the web ACL — ${retired.workflowId}`,
        );
      });
    });
  return patch;
}
