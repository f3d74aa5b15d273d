/** The WAFv2 emulator: moto's server mode on loopback, from the project-local tools. */
import { startService, toolPath, waitUntilReady, type Service } from './services';

export interface WafEmulator extends Service {
  endpoint: string;
  /** Clears every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
}

export async function startWafEmulator(options: { port: number; logFile: string }): Promise<WafEmulator> {
  const service = startService(
    'waf-emulator',
    toolPath('moto_server'),
    ['-H', '127.0.0.1', '-p', String(options.port)],
    {
      logFile: options.logFile,
    },
  );
  const endpoint = `http://127.0.0.1:${options.port}`;
  await waitUntilReady(
    service,
    async () => {
      const res = await fetch(`${endpoint}/moto-api/`);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
    },
    30_000,
  );
  return {
    ...service,
    endpoint,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`emulator reset failed: HTTP ${res.status}`);
    },
  };
}
