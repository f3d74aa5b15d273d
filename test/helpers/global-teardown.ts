import fs from 'node:fs';
import type { Service } from '../../src/dev/services';

export default async function globalTeardown(): Promise<void> {
  const services = ((globalThis as Record<string, unknown>).__perimeterServices ?? []) as Service[];
  await Promise.all(services.map((s) => s.stop()));
  const dir = process.env.PERIMETER_TEST_DIR;
  if (dir && !process.env.PERIMETER_KEEP_TEST_LOGS) fs.rmSync(dir, { recursive: true, force: true });
}
