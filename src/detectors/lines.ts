/**
 * Splits a byte stream into lines without ever holding more than one line's worth of a huge
 * one: a line past the limit is reported as too long and skipped up to its newline.
 */
import { StringDecoder } from 'node:string_decoder';

export type LineHandler = (line: string | undefined) => void;

export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private discarding = false;

  /** `onLine(undefined)` reports a line longer than `maxLength` (its content is dropped). */
  constructor(
    private readonly maxLength: number,
    private readonly onLine: LineHandler,
  ) {}

  push(chunk: Buffer): void {
    const text = this.decoder.write(chunk);
    let start = 0;
    for (;;) {
      const nl = text.indexOf('\n', start);
      if (nl < 0) break;
      this.finish(text.slice(start, nl));
      start = nl + 1;
    }
    this.keep(text.slice(start));
  }

  end(): void {
    this.keep(this.decoder.end());
    if (this.partial.length > 0 || this.discarding) this.finish('');
  }

  private keep(rest: string): void {
    if (this.discarding) return;
    this.partial += rest;
    if (this.partial.length > this.maxLength) {
      this.partial = '';
      this.discarding = true;
    }
  }

  private finish(tail: string): void {
    if (this.discarding) {
      this.discarding = false;
      this.onLine(undefined);
      return;
    }
    let line = this.partial.length > 0 ? this.partial + tail : tail;
    this.partial = '';
    if (line.length > this.maxLength) return this.onLine(undefined);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    this.onLine(line);
  }
}
