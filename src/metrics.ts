/**
 * The worker's own metrics in Prometheus' text format: window of exposure, active remediations
 * by action, WAF calls and lock conflicts by operation, reconciler repairs. Served on
 * `/metrics` next to the Temporal SDK runtime's metrics, when the SDK exports them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Labels = Record<string, string>;

const key = (labels: Labels) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, '_')}"`)
    .join(',');

class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, n = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + n);
  }
  get(labels: Labels = {}): number {
    return this.values.get(key(labels)) ?? 0;
  }
  render(type = 'counter'): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${type}`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`);
    return lines;
  }
}

class Gauge extends Counter {
  set(labels: Labels, value: number): void {
    this.inc(labels, value - this.get(labels));
  }
  override render(): string[] {
    return super.render('gauge');
  }
}

/** Seconds; the window of exposure runs from well under a second to minutes behind a throttle. */
const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  observe(labels: Labels, value: number): void {
    const k = key(labels);
    const s = this.series.get(k) ?? { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
    BUCKETS.forEach((b, i) => {
      if (value <= b) s.counts[i] = (s.counts[i] ?? 0) + 1;
    });
    s.sum += value;
    s.count++;
    this.series.set(k, s);
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : '';
      BUCKETS.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`));
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`);
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`);
    }
    return lines;
  }
}

export class PerimeterMetrics {
  readonly windowOfExposure = new Histogram(
    'perimeter_window_of_exposure_seconds',
    'From the incident starting to its remediation being in the WAF, by action.',
  );
  readonly active = new Gauge(
    'perimeter_active_remediations',
    'Open incidents holding a remediation, by action.',
  );
  readonly wafCalls = new Counter('perimeter_waf_calls_total', 'WAF API calls, by operation.');
  readonly lockConflicts = new Counter(
    'perimeter_waf_lock_conflicts_total',
    'WAF writes refused for a stale lock token, by operation.',
  );
  readonly repairs = new Counter(
    'perimeter_reconciler_repairs_total',
    'Addresses the reconciler healed, by kind and action.',
  );

  render(): string {
    return [
      ...this.windowOfExposure.render(),
      ...this.active.render(),
      ...this.wafCalls.render(),
      ...this.lockConflicts.render(),
      ...this.repairs.render(),
      '',
    ].join('\n');
  }
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `/metrics`: ours, after the SDK runtime's (fetched from its exporter on loopback when there is
 * one). `refresh` runs before each scrape (gauges read from Temporal's visibility).
 */
export async function startMetricsServer(options: {
  metrics: PerimeterMetrics;
  host: string;
  port: number;
  sdkExporter?: string;
  refresh?: () => Promise<void>;
}): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end('not found: GET /metrics\n');
      return;
    }
    void (async () => {
      await options.refresh?.().catch(() => undefined);
      const sdk = options.sdkExporter
        ? await fetch(options.sdkExporter)
            .then((r) => r.text())
            .catch(() => '')
        : '';
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`${sdk}${sdk && !sdk.endsWith('\n') ? '\n' : ''}${options.metrics.render()}`);
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
