/**
 * Reads a YAML or JSON file and validates it with a zod schema. Every problem is reported as
 * `file:line: field: reason`, so a person can fix the file without guessing.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import type { z } from 'zod';

export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

export function readConfigFile<S extends z.ZodType>(path: string, schema: S, what: string): z.output<S> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigFileError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const syntax = doc.errors[0];
  if (syntax) {
    const kind = extname(path) === '.json' ? 'JSON' : 'YAML';
    const at = lines.linePos(syntax.pos[0]);
    throw new ConfigFileError(`${path}:${at.line}: not valid ${kind}: ${syntax.message.split('\n')[0]}`);
  }
  const parsed = schema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const node = nodeAt(doc.contents, issue.path);
      const line = node?.range ? `:${lines.linePos(node.range[0]).line}` : '';
      return `${path}${line}: ${fieldPath(issue.path)}: ${issue.message}`;
    });
    throw new ConfigFileError(problems.join('\n'));
  }
  return parsed.data;
}

/** The deepest node on `path` that exists: a missing field is reported at its parent. */
function nodeAt(root: unknown, path: readonly PropertyKey[]): Node | undefined {
  let node = root as Node | undefined;
  for (const key of path) {
    let next: unknown;
    if (isMap(node)) next = node.get(String(key), true);
    else if (isSeq(node)) next = node.get(Number(key), true);
    if (next === undefined || next === null) break;
    node = next as Node;
  }
  return node;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}
