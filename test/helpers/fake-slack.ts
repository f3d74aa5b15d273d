/**
 * A local stand-in for Slack's servers: the Web API methods the perimeter calls, and
 * `response_url` endpoints. Records every call so tests can assert on what Slack would show.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackCall {
  path: string;
  body: Record<string, unknown>;
}

export interface FakeSlack {
  apiUrl: string;
  responseUrl(id: string): string;
  calls: SlackCall[];
  /** Members returned by usergroups.users.list. */
  groupMembers: string[];
  /** While true, chat.postMessage fails as if Slack were down (HTTP 503). */
  down: boolean;
  close(): Promise<void>;
}

function parse(raw: string, type: string | undefined): Record<string, unknown> {
  if (type?.includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
  return Object.fromEntries(new URLSearchParams(raw));
}

export async function startFakeSlack(): Promise<FakeSlack> {
  const calls: SlackCall[] = [];
  const fake = { groupMembers: [] as string[], down: false };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      calls.push({ path, body: parse(raw, req.headers['content-type']) });
      res.setHeader('content-type', 'application/json');
      if (path.startsWith('/api/usergroups.users.list')) {
        res.end(JSON.stringify({ ok: true, users: fake.groupMembers }));
      } else if (path.startsWith('/api/chat.postMessage') && fake.down) {
        res.statusCode = 503;
        res.end(JSON.stringify({ ok: false, error: 'service_unavailable' }));
      } else if (path.startsWith('/api/chat.postMessage')) {
        res.end(JSON.stringify({ ok: true, channel: 'C_SEC', ts: `${Date.now() / 1000}` }));
      } else {
        res.end(JSON.stringify({ ok: true }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(fake, {
    apiUrl: `${base}/api/`,
    responseUrl: (id: string) => `${base}/respond/${id}`,
    calls,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}
