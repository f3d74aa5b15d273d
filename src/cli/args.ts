/** Option parsers and output shared by the CLI's commands. */
import { InvalidArgumentError } from 'commander';
import { parseDuration } from '../domain/durations';

export function duration(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export const print = (value: unknown) =>
  console.log(typeof value === 'string' ? value : JSON.stringify(value, null, 2));
