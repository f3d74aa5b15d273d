/**
 * Attack classes as bits while a request is inspected (bit i is `ATTACK_CLASSES[i]`), turned
 * into `AttackClass[]` at the end, so the result's order is always ATTACK_CLASSES' order.
 */
import { ATTACK_CLASSES, type AttackClass } from '../types';

const bitOf = (c: AttackClass): number => 1 << ATTACK_CLASSES.indexOf(c);

export const SQLI = bitOf('sqli');
export const XSS = bitOf('xss');
export const TRAVERSAL = bitOf('traversal');
export const SCANNER = bitOf('scanner');

/** The classes set in `bits`, each once, in `ATTACK_CLASSES` order. */
export function classList(bits: number): AttackClass[] {
  const out: AttackClass[] = [];
  if (bits === 0) return out;
  ATTACK_CLASSES.forEach((c, i) => {
    if (bits & (1 << i)) out.push(c);
  });
  return out;
}
