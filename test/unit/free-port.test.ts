import fs from 'node:fs';
import net from 'node:net';
import { freePort } from '../../src/dev/services';

describe('freePort', () => {
  it('hands out distinct loopback ports below the kernel ephemeral range, each one bindable', async () => {
    const [low] = fs
      .readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    const ports: number[] = [];
    for (let i = 0; i < 20; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(20);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(1024);
      expect(port).toBeLessThan(low!);
    }
    // Each really is free: a server can take it.
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(ports[0], '127.0.0.1', () => resolve());
    });
    server.close();
  });
});
