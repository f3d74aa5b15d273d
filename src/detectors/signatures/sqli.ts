/**
 * SQL injection signatures, over normalised (decoded, lower-cased) text. Inline comments are
 * read as blanks (`1/**\/or/**\/1=1`), and MySQL's versioned comments as the SQL they hold.
 *
 * The rules look for SQL *structure*, not SQL words: a boolean operator that follows a closed
 * literal and is followed by a comparison, UNION followed by a column list, a statement after a
 * `;`, functions only an injection calls (sleep, extractvalue, load_file…), catalogue tables.
 * Searches like "O'Brien", "rock 'n' roll", "select a plan" or "union station" have the words
 * but never the structure.
 *
 * "Start" below means where an injected value begins: the text's start, or after `=`, `&` or
 * `/` (the whole query string and the path are inspected in one piece).
 */
import { anyOf } from './any-of';
import { stripSqlComments as stripComments } from './normalise';

/** Where an injected value starts, or a string / parenthesised literal ends. */
const BREAKOUT = String.raw`(?:^|[=&/'"\x60)])`;
/** A boolean operator followed by a blank, quote or paren (`'or'1'='1` has no blanks). */
const BOOL = String.raw`(?:\b(?:or|and|xor)|\|\||&&)(?=[\s('"\x60])`;
const COMPARISON = String.raw`(?:[<>!]?=|<>|[<>]|\b(?:r?like|regexp|between|sounds\s+like|is\s+(?:not\s+)?null)\b|\bin\s*\()`;

/** A rule family and the cheap test for what every rule in it needs. */
interface Family {
  needs: RegExp;
  rules: RegExp;
}

/**
 * UNION SELECT at a value's start or after a closed literal or a number, as `union all|distinct
 * select`, or followed by a column list ("a union select committee" is none of these). Also run
 * with comments removed: payloads split keywords as `uni/**\/on sel/**\/ect`.
 */
const UNION: Family = {
  needs: /union/,
  rules: anyOf([
    /(?:^|[=&'"`)\d]|\bnull)\s*union(?:\s+(?:all|distinct))?[\s(]+select\b/,
    /\bunion\s+(?:all|distinct)[\s(]+select\b/,
    /\bunion[\s(]+select[\s(]+(?:\d|null\b|\*|@|['"`]|(?:char|concat|version|database|user|load_file|group_concat)\s*\(|from\b|top\b|case\b|if\s*\(|[\w.]+\s*,|[\w.]+\s+from\b)/,
  ]),
};

const FAMILIES: readonly Family[] = [
  {
    needs: /(?:or|and|xor)(?:[\s('"`&]|$)|\|\||&&/,
    rules: anyOf([
      // Tautology: `or 1=1`, `' or 'a'='a`, `or x = x`, `') or ('x'='x`, `|| 1=1`, `or 'a' like 'a'`.
      new RegExp(
        String.raw`${BOOL}[\s('"\x60]*(?:not[\s(]+)?(?<operand>[\w.]{1,64})['"\x60)\s]*(?:=|<=>|\blike\b)[\s('"\x60]*n?['"\x60]?\k<operand>(?![\w.])`,
      ),
      // A closed literal, then a boolean operator and any comparison: `x' and email is null`,
      // `' or username like '%`, `") or 2 > 1`, and at a value's start `or 'text' > 't'`.
      new RegExp(String.raw`${BREAKOUT}\s*${BOOL}[\s(]*(?:not[\s(]+)?[\w.'"\x60@$]{1,64}[)\s]*${COMPARISON}`),
      // A number injected as a value: `1 and 1=2`, `42 or 3>1` (the operand is a number or literal).
      new RegExp(
        String.raw`(?:^|[=&/])\s*\d+\s*${BOOL}[\s(]*(?:not[\s(]+)?(?:\d+|'[^']{0,32}'|"[^"]{0,32}")[)\s]*${COMPARISON}`,
      ),
      // Empty-string tautology: `' or ''='`, `or ""=`.
      /\b(?:or|and)\s*(?<quote>['"])\k<quote>\s*=/,
      // Boolean then a comment that drops the rest of the query: `' or 1 --`, `or 1/*`, `or true#`.
      new RegExp(String.raw`${BREAKOUT}\s*${BOOL}[\s(]*[\w'"\x60()]{1,64}\s*(?:--|#|/\*)`),
      // A closed literal followed by a dangling operator: `admin' or '`, `' or` (login bypass stubs).
      /(?:^|[\w=&])['"`]\s+(?:or|and)(?:\s+['"`])?\s*(?:$|&)/,
      /\b(?:or|and)\s+(?:not\s+)?(?:\(\s*)?exists\s*[()]/,
    ]),
  },
  {
    needs: /['"`]/,
    rules: anyOf([
      // A literal closed, then the rest of the query commented out: `admin'--`, `')#`, `'/*`.
      /(?:^|[\w)=&])['"`](?:\s|\))*(?:--|#|;\s*(?:--|#))[\s+-]*(?:$|&)/,
      /['"`](?:\s|\))*\/\*/,
      // String concatenation right after a closed literal: `'sel' || 'ect'`, `'x'||(select …)`.
      /['"]\s*\|\|\s*['"(]/,
      // Column-count probing after a closed literal: `1' order by 3--`.
      /['"`]\s*(?:order|group)\s+by\s+[\w.]+(?:\s*,\s*[\w.]+)*\s*(?:--|#|\/\*)|['"`]\s*order\s+by\s+\d/,
    ]),
  },
  UNION,
  {
    needs: /;/,
    rules: anyOf([
      // A second statement: `; drop table`, `; exec xp_cmdshell`, `; waitfor delay`, `;select *`.
      /;\s*(?:drop\s+(?:table|database|schema|user|view|index|procedure|function|trigger)\b|delete\s+from\b|insert\s+into\b|update\s+[\w.`"[\]]+\s+set\b|truncate\s+(?:table\b|[\w.]+\s*(?:;|--|#|$))|alter\s+(?:table|user|database|login)\b|create\s+(?:table|user|database|procedure|function|login|trigger)\b|shutdown\b|waitfor\s+(?:delay|time)\b|exec(?:ute)?\s*[(@'"]|exec(?:ute)?\s+(?:master\.|xp_|sp_|immediate\b)|declare\s+@|begin\s+(?:declare|exec)\b|select\s+(?:\*|@|\d|count\s*\(|[\w.]+\s*,|[\w.]+\s+from\s+[\w.]+)|set\s+@|load_file\b)/,
    ]),
  },
  {
    needs: /[()]/,
    rules: anyOf([
      // Time-based blind: sleep() where SQL puts an expression, pg_sleep, benchmark.
      /(?:^|[=&/'"`(),;|+*-]|\b(?:or|and|xor|select|if|then|else|when|not|waitfor))\s*sleep\s*\(\s*[\d.]+\s*\)/,
      /\bpg_sleep\s*\(|\bbenchmark\s*\(\s*\d+\s*,|\brandomblob\s*\(\s*\d/,
      // Functions and packages that only error-based, out-of-band or file-reading injections call.
      /\b(?:extractvalue|updatexml|xmltype|gtid_subset|json_keys|make_set|name_const|load_file|sys_eval|sys_exec|openrowset|opendatasource|raise_error|isnull|utl_inaddr\.\w+|utl_http\.\w+|ctxsys\.\w+(?:\.\w+)?|dbms_\w+\.\w+)\s*\(|\bexp\s*\(\s*~|\belt\s*\(\s*[-\d]/,
      /\bconvert\s*\(\s*(?:int|char|varchar|nvarchar)\b|\bcast\s*\([^)]{0,100}?\bas\s+(?:numeric|int|integer|n?char|n?varchar|signed|unsigned|bigint|decimal|text)\b/,
      /\b(?:database|schema|version|user|system_user)\s*\(\s*\)|\bascii\s*\(\s*(?:substr(?:ing)?|mid)\s*\(/,
      /\b(?:group_)?concat(?:_ws)?\s*\([^)]{0,40}?(?:0x[0-9a-f]|@@|\bselect\b|char\s*\()|\bunhex\s*\(/,
      /\bchar\s*\(\s*\d+\s*(?:,\s*\d+\s*)+\)|\bchr\s*\(\s*\d+\s*\)\s*(?:\|\||\+)/,
      // Subqueries no prose has: `(select count(*)`, `(select 1,2`, `(case when`.
      /\(\s*select\s+(?:\d|null\b|\*|@|count\s*\(|concat|char\s*\(|top\s+\d|distinct\b|case\b|if\s*\(|\(|['"`]|sleep\b|[\w.]+\s*(?:,|from\b))|\(\s*case\s+when\b/,
      // Column-count probing after a closed parenthesis: `1) order by 3--`.
      /\)\s*(?:order|group)\s+by\s+[\w.]+(?:\s*,\s*[\w.]+)*\s*(?:--|#|\/\*)|\)\s*order\s+by\s+\d/,
    ]),
  },
  {
    // Keywords follow a blank, a quote, a parenthesis or an operator; catalogue names also a dot.
    needs:
      /[\s('"`=.|-](?:select|having|group|case|into|exec|declare|waitfor|information_schema|sys|mysql|pg_|xp_|sp_|utl_|dbms_|sqlite_master|dba_users|msys)|^(?:select|exec|declare|information_schema|sys|xp_|sp_)|@@|rdb\$|v\$version/,
    rules: anyOf([
      // Server variables and catalogues: `@@version`, information_schema, sysobjects, pg_catalog…
      /@@[a-z_]{3,}|\binformation_schema\b|\bsys(?:objects|columns|users|tables|databases|logins|processes|comments)\b|\bmysql\.(?:user|db)\b|\bpg_(?:catalog|shadow|user|database|tables|class|namespace)\b|\bsysibm\.\w|\brdb\$\w|\bsysmaster:|\bmsys(?:access)?objects\b|\bsqlite_master\b|\bdba_users\b|\bv\$version\b/,
      // Writing files and running commands through the database.
      /\binto\s+(?:out|dump)file\b|\bxp_(?:cmdshell|regread|regwrite|dirtree|fileexist|servicecontrol|availablemedia|loginconfig|makecab|subdirs|enumdsn)\b|\bsp_(?:password|executesql|makewebtask|oacreate|oamethod|addlogin|addsrvrolemember|configure|msforeachtable|adduser)\b/,
      /\bdeclare\s+@\w+|\bexec(?:ute)?\s*\(\s*['"@]|\bexec(?:ute)?\s+(?:master\.|xp_|sp_|immediate\b)|\bselect\s+@\w+\s*=|\butl_http\b|\bdbms_pipe\b|\bwaitfor\s+(?:delay|time)\s*['"]/,
      // SELECT shapes no prose has: `select * from`, `select a, b from`, `select x from t where`.
      /\bselect\s+(?:\*\s*from\b|@@?\w|count\s*\(\s*\*|top\s+\d+\s|(?:distinct\s+)?[\w.]+(?:\s*,\s*[\w.'"()]+)+\s+from\s|[\w.]+\s+from\s+[\w.$[\]]+\s+where\s)/,
      // Grouping tricks: `having 1=1`, `group by x having`; a CASE used as a boolean.
      /\bhaving\s+\d+\s*[=<>]\s*\d+|\bgroup\s+by\s+[\w.]+(?:\s*,\s*[\w.]+)*\s+having\b/,
      /\bcase\s+when\s(?=[^;]{0,60}?[=<>])[^;]{0,80}?\bthen\s[^;]{0,80}?\b(?:else|end)\b/,
    ]),
  },
];

/**
 * Injected SQL needs syntax: a blank, a quote, a parenthesis, `;`, a comment, `@`, `|`… Text
 * without any (most tracking and ID parameters) is clean after this one cheap scan; a bare word
 * such as `information_schema` is not an injection by itself.
 */
const SYNTAX = /[\s'"`;()#@|*$]|--/;

function matches(text: string, families: readonly Family[]): boolean {
  for (const f of families) if (f.needs.test(text) && f.rules.test(text)) return true;
  return false;
}

/** Whether normalised text holds an SQL injection. */
export function isSqlInjection(text: string): boolean {
  if (!SYNTAX.test(text)) return false;
  const spaced = text.includes('/*') ? stripComments(text, false) : text;
  if (matches(spaced, FAMILIES)) return true;
  return spaced !== text && matches(stripComments(text, true), [UNION]);
}
