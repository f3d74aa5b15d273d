/**
 * docker-compose.yml cannot be run here (no Docker engine), so it is checked by reading: the
 * services a production user needs, pinned images, loopback-only ports, and only variables
 * the project's config schema knows.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { CONFIG_VARIABLES } from '../../src/config';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/definitions';

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  profiles?: string[];
}

const compose = parse(fs.readFileSync(path.resolve(__dirname, '../../docker-compose.yml'), 'utf8'), {
  merge: true,
}) as { services: Record<string, Service> };

describe('docker-compose.yml', () => {
  const services = compose.services;

  it('has Temporal on PostgreSQL with its UI, the worker, WAF set-up and an optional emulator', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'postgresql',
        'detector',
        'ingest',
        'slack',
        'temporal',
        'temporal-setup',
        'temporal-ui',
        'waf-emulator',
        'waf-init',
        'worker',
      ].sort(),
    );
    expect(services.temporal?.environment?.DB).toBe('postgres12');
    expect(services.worker?.command).toEqual(['worker', '--with-schedules']);
    expect(services['waf-init']?.command).toEqual(['waf', 'init']);
    expect(services['waf-emulator']?.profiles).toEqual(['local-waf']);
    expect(services.ingest?.command).toEqual(['ingest']);
    expect(services.detector?.command?.slice(0, 3)).toEqual(['detect', '/logs/access.log', '--follow']);
  });

  it('pins every image and publishes ports on loopback only', () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.image) expect(`${name}: ${s.image}`).toMatch(/:\$\{[A-Z_]+:-\d[\w.-]*\}$/);
      for (const p of s.ports ?? []) expect(`${name}: ${p}`).toMatch(/: 127\.0\.0\.1:/);
    }
  });

  it('passes the perimeter only variables its config schema reads', () => {
    for (const name of ['worker', 'waf-init', 'slack', 'ingest', 'detector']) {
      for (const key of Object.keys(services[name]?.environment ?? {}))
        expect(CONFIG_VARIABLES).toContain(key);
    }
  });

  it('registers exactly the search attributes the workflows use', () => {
    const script = (services['temporal-setup']?.command ?? []).join(' ');
    for (const [key, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES))
      expect(script).toContain(`${key}=${type}`);
  });
});
