/**
 * Ordinary traffic for the detector benchmark: what a shop / docs / blog site sees all day, with
 * the awkward cases that trip naive signatures — searches with quotes and apostrophes, SQL and
 * HTML words in prose, JSON and GraphQL in query strings, long tracking parameters, base64
 * states and JWTs, encoded slashes, allowed crawlers and monitors. Deterministic for a seed.
 */
import { ASSETS, SEARCHES, SLUGS, WORDS } from './benign-phrases';
import { formEncode, type Rng } from './rng';

export interface BenchRequest {
  method: string;
  uri: string;
  userAgent: string;
  referer?: string;
}

export const BROWSER_UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67',
  'Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/123.0.6312.52 Mobile/15E148 Safari/604.1',
] as const;

/** Crawlers, monitors and HTTP clients a site normally lets in: never attacks by themselves. */
export const ALLOWED_BOTS = [
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
  'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36',
  'curl/8.5.0',
  'python-requests/2.31.0',
  'Go-http-client/1.1',
  'Go-http-client/2.0',
  'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)',
  'Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)',
  'Datadog/Synthetics',
  'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)',
  'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
  'Twitterbot/1.0',
  'Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)',
  'Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)',
  'Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1)',
  'Wget/1.21.4',
  'okhttp/4.12.0',
  'axios/1.6.8',
  'node-fetch/1.0 (+https://github.com/bitinn/node-fetch)',
  'Prometheus/2.51.0',
  'ELB-HealthChecker/2.0',
  'kube-probe/1.29',
] as const;

function token(rng: Rng, length: number, alphabet: string): string {
  let s = '';
  for (let i = 0; i < length; i++) s += alphabet.charAt(rng.int(alphabet.length));
  return s;
}
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function searchText(rng: Rng): string {
  const base = rng.pick(SEARCHES);
  if (rng.chance(0.4)) return base;
  return rng.chance(0.5) ? `${base} ${rng.pick(WORDS)}` : `${rng.pick(WORDS)} ${base}`;
}

function tracking(rng: Rng): string {
  const parts = [
    `utm_source=${rng.pick(['google', 'newsletter', 'facebook', 'twitter', 'bing'])}`,
    `utm_medium=${rng.pick(['cpc', 'email', 'social', 'organic'])}`,
    `utm_campaign=${rng.pick(['summer_sale_2024', 'spring-launch', 'retarget%20q2', 'brand+search'])}`,
  ];
  if (rng.chance(0.5)) parts.push(`gclid=${token(rng, 40 + rng.int(50), B64URL)}`);
  if (rng.chance(0.3)) parts.push(`fbclid=IwAR${token(rng, 50, B64URL)}`);
  if (rng.chance(0.2)) parts.push(`msclkid=${token(rng, 32, '0123456789abcdef')}`);
  if (rng.chance(0.3)) parts.push(`_ga=2.${rng.int(1e9)}.${rng.int(1e9)}-${rng.int(1e9)}.${rng.int(1e9)}`);
  if (rng.chance(0.2)) parts.push(`mc_eid=${token(rng, 10, '0123456789abcdef')}`);
  return parts.join('&');
}

function jwt(rng: Rng): string {
  const header = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9';
  return `${header}.${token(rng, 60 + rng.int(40), B64URL)}.${token(rng, 43, B64URL)}`;
}

function apiRequest(rng: Rng): string {
  switch (rng.int(8)) {
    case 0:
      return `/api/v1/items?filter=${formEncode(`{"a":${rng.int(100)},"tags":["${rng.pick(WORDS)}"]}`)}`;
    case 1:
      return `/api/v1/items?filter={"a":1}&limit=${rng.int(100)}`;
    case 2:
      return `/graphql?query=${formEncode(`query { product(id: "${rng.int(9999)}") { name price(currency: "EUR") } }`)}`;
    case 3:
      return `/api/v2/orders?from=2024-0${1 + rng.int(9)}-01T00:00:00Z&to=2024-12-31T23:59:59.999Z&status=open,shipped`;
    case 4:
      return `/api/v1/repos/${rng.pick(WORDS)}%2F${rng.pick(WORDS)}/files/src%2Findex.ts?ref=main`;
    case 5:
      return `/api/maps/tiles?bbox=-74.1,40.6,-73.9,40.8&ll=40.7128,-74.0060&zoom=${rng.int(18)}`;
    case 6:
      return `/api/v1/search?fields=id,name;email&ids=1;2;3&sort=-created_at`;
    default:
      return `/api/v1/me?access_token=${jwt(rng)}`;
  }
}

function formQuery(rng: Rng): string {
  const name = rng.pick(["John O'Brien", 'Zoë Smith-Jones', "Renée D'Amico", 'Li Wei']);
  const message = rng.pick([
    "Hello, I'd like to know whether the 5' 10\" frame fits.",
    'Order #12345 arrived damaged (box was open) - please advise.',
    'Can I select a different plan & update my card?',
    'I <3 your product; 10/10 would buy again!',
    'Is "express" shipping available to the UK? Thanks :)',
    'My login fails with error 500 -- what should I do?',
  ]);
  return `/contact?name=${formEncode(name)}&email=${formEncode(`user${rng.int(999)}+tag@example.com`)}&subject=${formEncode(`Order #${rng.int(99999)}`)}&message=${formEncode(message)}`;
}

function pagePath(rng: Rng): string {
  switch (rng.int(9)) {
    case 0:
      return '/';
    case 1:
      return `/products/${rng.pick(WORDS)}-${rng.pick(WORDS)}-${rng.int(9999)}`;
    case 2:
      return `/blog/2024/0${1 + rng.int(9)}/${rng.pick(SLUGS)}`;
    case 3:
      return `/category/${rng.pick(WORDS)}?page=${1 + rng.int(20)}&sort=${rng.pick(['price_asc', 'price_desc', 'newest', 'rating'])}`;
    case 4:
      return `/docs/${rng.pick(SLUGS)}#install`;
    case 5:
      return rng.pick([
        "/wiki/Rock_'n'_roll",
        "/wiki/O'Brien_(surname)",
        '/wiki/C_(programming_language)',
        '/wiki/Union_Station_(Chicago)',
        '/wiki/SELECT_(SQL)',
        '/wiki/%3CBR%3E_tag',
      ]);
    case 6:
      return `/account/orders;sid=${token(rng, 32, '0123456789ABCDEF')}?tab=recent`;
    case 7:
      return `/files/${rng.pick(WORDS)}%2F${rng.pick(WORDS)}.pdf?download=1&v=1.2.${rng.int(20)}`;
    default:
      return rng.pick(['/docs/../guide', '/a/./b/c', '/products//featured', '/search/']);
  }
}

function redirectQuery(rng: Rng): string {
  const state = Buffer.from(
    JSON.stringify({ returnTo: `/${rng.pick(SLUGS)}`, nonce: rng.int(1e9) }),
  ).toString('base64');
  switch (rng.int(4)) {
    case 0:
      return `/oauth/callback?code=${token(rng, 40, B64URL)}&state=${encodeURIComponent(state)}`;
    case 1:
      return `/login?next=/home&redirect_uri=${encodeURIComponent('https://app.example.com/callback?x=1')}`;
    case 2:
      return `/logout?return_to=%2Faccount%2Fsettings&token=${token(rng, 44, B64)}`;
    default:
      return `/share?url=${encodeURIComponent(`https://example.com/products/${rng.int(999)}?ref=share`)}&t=${formEncode("Look at this: it's great!")}`;
  }
}

/** One benign request. */
export function benignRequest(rng: Rng): BenchRequest {
  const bot = rng.chance(0.15);
  const userAgent = bot ? rng.pick(ALLOWED_BOTS) : rng.pick(BROWSER_UAS);
  let uri: string;
  const kind = rng.next();
  if (kind < 0.3) uri = rng.pick(ASSETS) + (rng.chance(0.3) ? `?v=${token(rng, 8, '0123456789abcdef')}` : '');
  else if (kind < 0.5) uri = pagePath(rng);
  else if (kind < 0.65) uri = `/search?q=${formEncode(searchText(rng))}&page=${1 + rng.int(5)}`;
  else if (kind < 0.75) uri = apiRequest(rng);
  else if (kind < 0.85) uri = `${pagePath(rng).split('?')[0] ?? '/'}?${tracking(rng)}`;
  else if (kind < 0.92) uri = formQuery(rng);
  else uri = redirectQuery(rng);
  const method = uri.startsWith('/api/') && rng.chance(0.3) ? 'POST' : 'GET';
  const request: BenchRequest = { method, uri, userAgent };
  const r = rng.next();
  if (r < 0.4) request.referer = `https://www.example.com${pagePath(rng)}`;
  else if (r < 0.6) request.referer = `https://www.google.com/search?q=${formEncode(searchText(rng))}`;
  return request;
}
