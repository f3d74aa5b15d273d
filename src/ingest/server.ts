/**
 * `perimeter ingest`: an HTTP endpoint for systems that already know what to block — WAF
 * alarms, AST/DAST scanners, SIEMs — and for virtual patches and their retirement (src/ingest/patches.ts). Each detection goes through the same client path as the
 * log detector (signal-with-start), so a target already under remediation returns its open
 * incident's ID instead of a second block. Unauthenticated, malformed, oversized or too-frequent
 * requests are refused with a reason and start nothing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import type { Config } from '../config';
import { PolicyError } from '../domain/policy';
import { startCampaign } from '../client/campaign';
import { startRemediation, type Detection } from '../client/remediation';
import { detectionBody, type DetectionBody } from './schema';
import { HttpError, parseWith } from './http';
import { handlePatchRoute, isPatchRoute } from './patches';

export interface IngestServer {
  url: string;
  close(): Promise<void>;
}

export interface IngestDeps {
  client: Client;
  config: Config;
  /** Overrides the configured host/port (tests bind port 0). */
  listen?: { host: string; port: number };
  log?: (line: string) => void;
}

/** A token bucket per client: `ratePerMinute` requests, refilled continuously. */
class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly ratePerMinute: number) {}

  take(client: string, now = Date.now()): number {
    const perMs = this.ratePerMinute / 60_000;
    const b = this.buckets.get(client) ?? { tokens: this.ratePerMinute, at: now };
    b.tokens = Math.min(this.ratePerMinute, b.tokens + (now - b.at) * perMs);
    b.at = now;
    this.buckets.set(client, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / perMs / 1000);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function authenticate(config: Config, header: string | undefined): string {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) throw new HttpError(401, 'missing bearer token', { 'www-authenticate': 'Bearer' });
  const offered = digest(match[1]);
  // Every token is compared, in constant time, so the answer's timing says nothing about which matched.
  let client: string | undefined;
  for (const c of config.ingest.clients) if (timingSafeEqual(offered, digest(c.token))) client = c.name;
  if (!client)
    throw new HttpError(401, 'unknown bearer token', { 'www-authenticate': 'Bearer error="invalid_token"' });
  return client;
}

async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new HttpError(415, 'expected Content-Type: application/json');
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new HttpError(413, `body larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, `body larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `body is not JSON: ${(err as Error).message}`);
  }
}

function toDetection(body: DetectionBody, client: string): Detection {
  const e = body.evidence;
  return {
    targets: body.targets ?? (body.target ? [body.target] : []),
    ...(body.action ? { action: body.action } : {}),
    ...(body.ttl !== undefined ? { ttlMs: body.ttl } : {}),
    ...(body.observe !== undefined ? { observeMs: body.observe } : {}),
    ...(body.approval ? { approval: body.approval } : {}),
    ...(body.identity ? { identity: stripUndefined(body.identity) } : {}),
    reason: `${body.kind}: ${body.reason}`,
    detector: `ingest.${client}`,
    requestedBy: `ingest client ${client}`,
    evidence: {
      classes: e?.classes ?? {},
      ...(e?.samples ? { samples: e.samples } : {}),
      ...(e?.authenticated !== undefined ? { authenticated: e.authenticated } : {}),
      ...(e?.lastSeen ? { at: e.lastSeen } : {}),
      ...(e?.firstSeen ? { firstAt: e.firstSeen } : {}),
    },
  };
}

async function accept(deps: IngestDeps, detection: Detection) {
  const clientDeps = { client: deps.client, config: deps.config };
  if (detection.targets.length === 1) {
    const [s] = await startRemediation(clientDeps, detection);
    if (!s) throw new HttpError(500, 'no incident started');
    return {
      workflowId: s.workflowId,
      joined: s.joined,
      incidents: [{ workflowId: s.workflowId, targets: s.targets, joined: s.joined }],
      refused: [],
    };
  }
  const result = await startCampaign(clientDeps, { ...detection, windowStart: Date.now() });
  const incidents = [
    ...(result.campaign
      ? [
          {
            workflowId: result.campaign.workflowId,
            targets: result.campaign.targets,
            joined: result.campaign.joined,
          },
        ]
      : []),
    ...result.joined.map((j) => ({ workflowId: j.workflowId, targets: [j.target], joined: true })),
  ];
  return {
    workflowId: incidents[0]?.workflowId,
    joined: !result.campaign,
    incidents,
    refused: result.refused,
  };
}

async function handle(deps: IngestDeps, limiter: RateLimiter, req: IncomingMessage, res: ServerResponse) {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (path === '/healthz' && req.method === 'GET') return reply(res, 200, { ok: true });
  if (path !== '/v1/detections' && !isPatchRoute(path)) {
    throw new HttpError(
      404,
      'not found: POST /v1/detections, /v1/virtual-patches or /v1/virtual-patches/<finding-id>/retire',
    );
  }
  if (req.method !== 'POST') throw new HttpError(405, 'use POST', { allow: 'POST' });
  const client = authenticate(deps.config, req.headers.authorization);
  const retryAfter = limiter.take(client);
  if (retryAfter > 0)
    throw new HttpError(
      429,
      `rate limit of ${deps.config.ingest.ratePerMinute} detections per minute exceeded`,
      { 'retry-after': String(retryAfter) },
    );
  const raw = await readJson(req, deps.config.ingest.maxBodyBytes);
  if (isPatchRoute(path)) {
    const answer = await handlePatchRoute(deps, path, client, raw);
    deps.log?.(answer.log);
    return reply(res, 202, answer.body);
  }
  const body = parseWith(detectionBody, raw);
  let result;
  try {
    result = await accept(deps, toDetection(body, client));
  } catch (err) {
    if (err instanceof PolicyError) throw new HttpError(400, `refused: ${err.problems.join('; ')}`);
    throw err;
  }
  deps.log?.(
    `${client}: ${result.joined ? 'joined' : 'started'} ${result.workflowId} (${body.kind}: ${body.reason.slice(0, 80)})`,
  );
  reply(res, 202, result);
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

export async function startIngestServer(deps: IngestDeps): Promise<IngestServer> {
  const { config } = deps;
  if (config.ingest.clients.length === 0)
    throw new Error('no ingest clients: set PERIMETER_INGEST_TOKENS=name=token[,name=token…]');
  const limiter = new RateLimiter(config.ingest.ratePerMinute);
  const server: Server = createServer((req, res) => {
    handle(deps, limiter, req, res).catch((err: unknown) => {
      if (err instanceof HttpError) {
        reply(
          res,
          err.status,
          { error: err.message },
          { ...err.headers, ...(err.status === 413 ? { connection: 'close' } : {}) },
        );
        if (err.status === 413 || err.status === 401) req.resume();
        return;
      }
      deps.log?.(`error: ${(err as Error).message}`);
      reply(res, 503, { error: `could not start the incident: ${(err as Error).message}` });
    });
  });
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  const listen = deps.listen ?? { host: config.ingest.host, port: config.ingest.port };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
