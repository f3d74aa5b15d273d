/**
 * A stand-in for AWS's write rate in front of the WAF emulator (which has none): write calls
 * (Create*, Update*, Delete*, Put*) beyond `writesPerSecond` get a ThrottlingException, as AWS
 * answers them. It also counts what passes: writes by operation, lock conflicts, throttled calls.
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
  close(): Promise<void>;
}

export async function startThrottleProxy(target: string, writesPerSecond: number): Promise<ThrottleProxy> {
  const upstream = new URL(target);
  const counts: ThrottleCounts = { calls: 0, writes: {}, lockConflicts: 0, throttled: 0 };
  const interval = 1000 / writesPerSecond;
  let lastWrite = -Infinity;
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
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
