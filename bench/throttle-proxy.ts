/**
 * A stand-in for AWS's write rate in front of the WAF emulator (which has none): write calls
 * (Create*, Update*, Delete*, Put*) beyond `writesPerSecond` get a ThrottlingException, as AWS
 * answers them. It also counts what passes: writes by operation, lock conflicts, throttled calls;
 * and it tells when an address first entered a set: the moment the emulator answered the
 * UpdateIPSet that carried it (no polling, which would load the emulator it measures).
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ThrottleCounts {
  calls: number;
  writes: Record<string, number>;
  lockConflicts: number;
  throttled: number;
}

export interface ThrottleProxy {
  endpoint: string;
  counts: ThrottleCounts;
  /** Writes of one operation (e.g. UpdateIPSet) so far. */
  writes(op: string): number;
  /** When (performance.now()) an UpdateIPSet that added `cidr` to a set succeeded; waits for it. */
  added(cidr: string, timeoutMs: number): Promise<number>;
  close(): Promise<void>;
}

export interface ThrottleProxyOptions {
  /**
   * For fault tests: an UpdateIPSet whose body this matches is written, and its answer withheld
   * for good — the writer never learns that its write landed.
   */
  withholdAnswer?: (body: Buffer) => boolean;
}

export async function startThrottleProxy(
  target: string,
  writesPerSecond: number,
  options: ThrottleProxyOptions = {},
): Promise<ThrottleProxy> {
  const upstream = new URL(target);
  const counts: ThrottleCounts = { calls: 0, writes: {}, lockConflicts: 0, throttled: 0 };
  const interval = 1000 / writesPerSecond;
  let lastWrite = -Infinity;
  const addedAt = new Map<string, number>();
  const waiting = new Map<string, (at: number) => void>();
  const sawWrite = (body: Buffer) => {
    const at = performance.now();
    let addresses: unknown;
    try {
      addresses = (JSON.parse(body.toString()) as { Addresses?: unknown }).Addresses;
    } catch {
      return;
    }
    if (!Array.isArray(addresses)) return;
    for (const a of addresses) {
      if (typeof a !== 'string' || addedAt.has(a)) continue;
      addedAt.set(a, at);
      waiting.get(a)?.(at);
      waiting.delete(a);
    }
  };
  const server: Server = createServer((req, res) => {
    const op = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
    counts.calls++;
    if (/^(Create|Update|Delete|Put)/.test(op)) {
      const now = performance.now();
      // A little slack for timer jitter on both sides; a real burst is refused.
      if (now - lastWrite < interval * 0.95) {
        counts.throttled++;
        req.resume();
        res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
        return;
      }
      lastWrite = now;
      counts.writes[op] = (counts.writes[op] ?? 0) + 1;
    }
    const sent: Buffer[] = [];
    if (op === 'UpdateIPSet') req.on('data', (c: Buffer) => sent.push(c));
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        path: req.url,
        method: req.method,
        headers: req.headers,
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => {
          const body = Buffer.concat(chunks);
          if (answer.statusCode === 400 && body.includes('WAFOptimisticLockException'))
            counts.lockConflicts++;
          if (answer.statusCode === 200 && op === 'UpdateIPSet') {
            const written = Buffer.concat(sent);
            sawWrite(written);
            if (options.withholdAnswer?.(written)) return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(body);
        });
      },
    );
    forward.on('error', (err) => {
      res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    writes: (op) => counts.writes[op] ?? 0,
    added: (cidr, timeoutMs) => {
      const at = addedAt.get(cidr);
      if (at !== undefined) return Promise.resolve(at);
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(cidr);
          reject(new Error(`bench: ${cidr} was not added within ${timeoutMs} ms`));
        }, timeoutMs);
        waiting.set(cidr, (t) => {
          clearTimeout(timer);
          resolve(t);
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
