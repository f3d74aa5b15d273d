/**
 * A virtual patch as an AWS WAFv2 rule: scope-down on path (and method), then the attack match
 * on one field — SQLi or XSS match statements, or a regex pattern set — after URL-decoding and
 * lower-casing. Also the rule's capacity estimate (WCU) for endpoints without CheckCapacity.
 */
import type {
  FieldToMatch,
  Rule,
  RuleAction,
  Statement,
  TextTransformation,
  TextTransformationType,
} from '@aws-sdk/client-wafv2';
import {
  parsePatchField,
  patchLabel,
  patchRuleName,
  type PatchField,
  type PatchSpec,
} from '../domain/virtual-patch';

/** What the rule does: count while observing, then the remediation. */
export type PatchRuleAction = 'count' | 'block' | 'challenge' | 'captcha';

export const PATCH_RULE_ACTIONS: Record<PatchRuleAction, RuleAction> = {
  count: { Count: {} },
  block: { Block: {} },
  challenge: { Challenge: {} },
  captcha: { Captcha: {} },
};

const encoder = new TextEncoder();

function transformations(...types: TextTransformationType[]): TextTransformation[] {
  return types.map((Type, Priority) => ({ Type, Priority }));
}

function fieldToMatch(field: PatchField): FieldToMatch {
  switch (field.type) {
    case 'uri':
      return { UriPath: {} };
    case 'query':
      return { QueryString: {} };
    case 'query-arg':
      return { SingleQueryArgument: { Name: field.name } };
    case 'header':
      return { SingleHeader: { Name: field.name } };
    case 'body':
      // A body past what the WAF inspects counts as a match: padding must not slip an exploit past the patch.
      return { Body: { OversizeHandling: 'MATCH' } };
  }
}

/**
 * The endpoint scope. Matched on the decoded path and, separately, on the normalised path:
 * normalising alone would let `/api/search/../x` escape a prefix scope, and not normalising
 * alone would let `//api/./search` escape it.
 */
function pathScope(spec: PatchSpec): Statement {
  const path = spec.path.toLowerCase();
  // Most servers route `/api/search/` to the same handler as `/api/search`.
  const paths = spec.match === 'exact' && !path.endsWith('/') ? [path, `${path}/`] : [path];
  const byteMatch = (searched: string, types: TextTransformationType[]): Statement => ({
    ByteMatchStatement: {
      FieldToMatch: { UriPath: {} },
      PositionalConstraint: spec.match === 'prefix' ? 'STARTS_WITH' : 'EXACTLY',
      SearchString: encoder.encode(searched),
      TextTransformations: transformations(...types),
    },
  });
  return {
    OrStatement: {
      Statements: paths.flatMap((p) => [
        byteMatch(p, ['URL_DECODE', 'LOWERCASE']),
        byteMatch(p, ['URL_DECODE', 'NORMALIZE_PATH', 'LOWERCASE']),
      ]),
    },
  };
}

/** The method scope; GET also covers HEAD, which servers answer from the GET handler. */
function methodScope(method: string): Statement {
  const methods = method === 'GET' ? ['GET', 'HEAD'] : [method];
  const matches: Statement[] = methods.map((m) => ({
    ByteMatchStatement: {
      FieldToMatch: { Method: {} },
      PositionalConstraint: 'EXACTLY',
      SearchString: encoder.encode(m),
      TextTransformations: transformations('NONE'),
    },
  }));
  return matches.length === 1 ? (matches[0] as Statement) : { OrStatement: { Statements: matches } };
}

function attackMatch(spec: PatchSpec, regexSetArn: string | undefined): Statement {
  const FieldToMatch = fieldToMatch(parsePatchField(spec.field));
  switch (spec.kind) {
    case 'sqli':
      return {
        SqliMatchStatement: {
          FieldToMatch,
          // The endpoint is known to be injectable: the stricter detector is worth its false positives here.
          SensitivityLevel: 'HIGH',
          TextTransformations: transformations('URL_DECODE', 'LOWERCASE'),
        },
      };
    case 'xss':
      return {
        XssMatchStatement: {
          FieldToMatch,
          TextTransformations: transformations('URL_DECODE', 'HTML_ENTITY_DECODE', 'LOWERCASE'),
        },
      };
    case 'traversal':
    case 'regex':
      if (!regexSetArn) throw new Error(`a ${spec.kind} patch needs its regex pattern set`);
      return {
        RegexPatternSetReferenceStatement: {
          ARN: regexSetArn,
          FieldToMatch,
          TextTransformations: transformations('URL_DECODE', 'LOWERCASE'),
        },
      };
  }
}

/** Whether the patch keeps its regexes in a pattern set of its own. */
export function needsPatternSet(spec: PatchSpec): boolean {
  return spec.kind === 'regex' || spec.kind === 'traversal';
}

export function buildPatchRule(
  prefix: string,
  spec: PatchSpec,
  action: PatchRuleAction,
  priority: number,
  regexSetArn?: string,
): Rule {
  const name = patchRuleName(prefix, spec.findingId);
  const scope: Statement[] = [pathScope(spec)];
  if (spec.method) scope.push(methodScope(spec.method));
  return {
    Name: name,
    Priority: priority,
    Action: PATCH_RULE_ACTIONS[action],
    Statement: { AndStatement: { Statements: [...scope, attackMatch(spec, regexSetArn)] } },
    RuleLabels: [{ Name: patchLabel(prefix, spec.findingId) }],
    VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: name },
  };
}

/** The action a stored rule has, in our words; undefined when it is none of ours. */
export function ruleActionName(rule: Rule): PatchRuleAction | undefined {
  const action = rule.Action ?? {};
  if (action.Count) return 'count';
  if (action.Block) return 'block';
  if (action.Challenge) return 'challenge';
  if (action.Captcha) return 'captcha';
  return undefined;
}

/**
 * The rule's WCU by AWS's published costs (byte match 2, SQLi 30 at high sensitivity, XSS 40,
 * regex pattern set 25; each text transformation other than NONE 10). An upper bound: AWS
 * counts a transformation of one field once per web ACL.
 */
export function estimateCapacity(statement: Statement | undefined): number {
  if (!statement) return 0;
  const tt = (list: TextTransformation[] | undefined) =>
    10 * (list ?? []).filter((t) => t.Type && t.Type !== 'NONE').length;
  if (statement.AndStatement) {
    return statement.AndStatement.Statements?.reduce((n, s) => n + estimateCapacity(s), 0) ?? 0;
  }
  if (statement.OrStatement) {
    return statement.OrStatement.Statements?.reduce((n, s) => n + estimateCapacity(s), 0) ?? 0;
  }
  if (statement.NotStatement) return estimateCapacity(statement.NotStatement.Statement);
  if (statement.ByteMatchStatement) {
    const s = statement.ByteMatchStatement;
    const base = s.PositionalConstraint === 'CONTAINS' || s.PositionalConstraint === 'CONTAINS_WORD' ? 10 : 2;
    return base + tt(s.TextTransformations);
  }
  if (statement.SqliMatchStatement) {
    const s = statement.SqliMatchStatement;
    return (s.SensitivityLevel === 'HIGH' ? 30 : 20) + tt(s.TextTransformations);
  }
  if (statement.XssMatchStatement) return 40 + tt(statement.XssMatchStatement.TextTransformations);
  if (statement.RegexPatternSetReferenceStatement) {
    return 25 + tt(statement.RegexPatternSetReferenceStatement.TextTransformations);
  }
  if (statement.RegexMatchStatement) return 3 + tt(statement.RegexMatchStatement.TextTransformations);
  if (statement.IPSetReferenceStatement) return 1;
  return 0;
}
