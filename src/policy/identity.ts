/**
 * Who a target is: a static list in the policy file, or an HTTP endpoint that answers with a
 * principal, whether it is authenticated, and a reputation 0–100. An unreachable service falls
 * back to the configured default — never to "block everyone" — and the incident says so.
 */
import { z } from 'zod';
import type { IdentityContext, IdentityHints } from './context';
import type { Policy } from './policy';

const answer = z.object({
  principal: z.string().max(200).optional(),
  authenticated: z.boolean(),
  reputation: z.number().min(0).max(100),
});

export async function lookupIdentity(
  identity: NonNullable<Policy['identity']>,
  hints: IdentityHints & { ip: string },
): Promise<IdentityContext> {
  if (identity.source === 'static') {
    const hit = identity.entries.find(
      (e) =>
        (e.match.user !== undefined && e.match.user === hints.user) ||
        (e.match.session !== undefined && e.match.session === hints.session) ||
        (e.match.apiKey !== undefined && e.match.apiKey === hints.apiKey) ||
        (e.match.ip !== undefined && e.match.ip === hints.ip),
    );
    if (!hit) return { authenticated: false, reputation: 0, source: 'static' };
    const { match: _match, ...context } = hit;
    return { ...context, source: 'static' };
  }
  try {
    const res = await fetch(identity.url ?? '', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(hints),
      signal: AbortSignal.timeout(identity.timeout),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const parsed = answer.parse(await res.json());
    return {
      authenticated: parsed.authenticated,
      reputation: Math.round(parsed.reputation),
      ...(parsed.principal ? { principal: parsed.principal } : {}),
      source: 'http',
    };
  } catch (err) {
    const { fallback } = identity;
    const why = err instanceof z.ZodError ? 'answer not understood' : (err as Error).message;
    return {
      ...fallback,
      source: 'fallback',
      note: `identity service unreachable (${why}): using the configured fallback (${fallback.authenticated ? 'authenticated' : 'anonymous'}, reputation ${fallback.reputation})`,
    };
  }
}
