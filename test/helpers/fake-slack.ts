/**
 * A local stand-in for Slack's servers: the Web API methods the perimeter calls, and
 * `response_url` endpoints. Records every call so tests can assert on what Slack would show.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

export interface SlackCall {
  path: string;
  body: Record<string, unknown>;
}

export interface FakeSlack {
  apiUrl: string;
  /** Socket Mode: connections opened through apps.connections.open, and the acks they sent. */
  sockets: WebSocket[];
  acks: Array<{ envelope_id?: string }>;
  /** Sends an interactive envelope over the first Socket Mode connection; returns its ID. */
  deliver(payload: Record<string, unknown>): string;
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
  const sockets: WebSocket[] = [];
  const acks: Array<{ envelope_id?: string }> = [];
  let envelopes = 0;
  const server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => (raw += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      calls.push({ path, body: parse(raw, req.headers['content-type']) });
      res.setHeader('content-type', 'application/json');
      if (path.startsWith('/api/apps.connections.open')) {
        const { port } = server.address() as AddressInfo;
        res.end(JSON.stringify({ ok: true, url: `ws://127.0.0.1:${port}/link` }));
      } else if (path.startsWith('/api/usergroups.users.list')) {
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
  const wss = new WebSocketServer({ server, path: '/link' });
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('message', (data: Buffer) => acks.push(JSON.parse(data.toString()) as { envelope_id?: string }));
    ws.send(JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: 'A1' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(fake, {
    apiUrl: `${base}/api/`,
    responseUrl: (id: string) => `${base}/respond/${id}`,
    calls,
    sockets,
    acks,
    deliver(payload: Record<string, unknown>) {
      const envelopeId = `env-${++envelopes}`;
      const socket = sockets.find((s) => s.readyState === WebSocket.OPEN);
      if (!socket) throw new Error('no Socket Mode connection');
      socket.send(
        JSON.stringify({
          envelope_id: envelopeId,
          type: 'interactive',
          accepts_response_payload: false,
          payload,
        }),
      );
      return envelopeId;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.terminate();
        wss.close();
        server.close(() => resolve());
      }),
  });
}
