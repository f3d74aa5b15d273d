import { WAFV2Client } from '@aws-sdk/client-wafv2';
import type { Config } from '../config';
import type { ProvisionOptions } from './provision';
import { Wafv2Gateway } from './wafv2-gateway';
import { Wafv2PatchGateway } from './patch-gateway';
import { WriteLimiter } from './write-limiter';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** True when the endpoint is a local emulator rather than AWS. */
export function isLocalEndpoint(endpoint: string | undefined): boolean {
  if (!endpoint) return false;
  return LOOPBACK.has(new URL(endpoint).hostname);
}

/**
 * The SDK client for the configured region and endpoint. Real AWS uses the SDK's default
 * credential chain; a loopback emulator gets dummy credentials so nothing real is ever needed.
 */
/** Told of every WAF call and every lock conflict, by operation (for the metrics). */
export interface WafCallHooks {
  onCall(operation: string): void;
  onLockConflict(operation: string): void;
}

export function createWafClient(waf: Config['waf'], hooks?: WafCallHooks): WAFV2Client {
  const client = new WAFV2Client({
    region: waf.region,
    ...(waf.endpoint ? { endpoint: waf.endpoint } : {}),
    ...(isLocalEndpoint(waf.endpoint)
      ? { credentials: { accessKeyId: 'perimeter-local', secretAccessKey: 'perimeter-local' } }
      : {}),
    // Lock conflicts and throttling are retried by the gateway and by Temporal, which know
    // what to re-read; the SDK's own retries would only resend a stale lock token.
    maxAttempts: 2,
    // Well inside the activities' 30 s start-to-close: a write must not land after its attempt
    // has been given up on (and possibly after the incident released the address).
    requestHandler: {
      requestTimeout: 10_000,
      throwOnRequestTimeout: true,
      socketTimeout: 10_000,
      connectionTimeout: 5_000,
    },
  });
  if (hooks) {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const operation = (context.commandName ?? '?').replace(/Command$/, '');
        hooks.onCall(operation);
        try {
          return await next(args);
        } catch (err) {
          if ((err as Error).name === 'WAFOptimisticLockException') hooks.onLockConflict(operation);
          throw err;
        }
      },
      { step: 'initialize', name: 'perimeterMetrics' },
    );
  }
  return client;
}

/** The WAF resources of one configuration: the SDK client, the gateway, provisioning options. */
export interface ConfiguredWaf {
  client: WAFV2Client;
  gateway: Wafv2Gateway;
  /** Virtual-patch rules in the managed web ACL. */
  patches: Wafv2PatchGateway;
  provision: ProvisionOptions;
}

/** Wires the gateway and provisioning for `waf` (optionally over a given SDK client). */
export function configuredWaf(waf: Config['waf'], client: WAFV2Client = createWafClient(waf)): ConfiguredWaf {
  // One write rate for everything this process writes to the account's WAF.
  const limiter = new WriteLimiter(waf.writesPerSecond);
  return {
    client,
    gateway: new Wafv2Gateway({
      client,
      scope: waf.scope,
      setPrefix: waf.setPrefix,
      lockRetries: waf.lockRetries,
      limiter,
      shardFill: waf.shardFill,
      webAcl: waf.webAcl,
    }),
    patches: new Wafv2PatchGateway({
      client,
      scope: waf.scope,
      setPrefix: waf.setPrefix,
      webAcl: waf.webAcl,
      lockRetries: waf.lockRetries,
      basePriority: waf.patchPriority,
      capacityLimit: waf.capacityLimit,
      limiter,
    }),
    provision: {
      client,
      scope: waf.scope,
      setPrefix: waf.setPrefix,
      webAcl: waf.webAcl,
      lockRetries: waf.lockRetries,
      limiter,
    },
  };
}
