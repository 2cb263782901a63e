/**
 * identifyCaller: the in-place scanner (rebind user-agents, parsed on every
 * bind without the cache) gives the same identity as the split-based parser
 * it replaced, for random and hostile user-agents; the cache serves only
 * user-agents without a client id, and stays bounded.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CLIENT_ID_PATTERN, CLIENT_ID_UA_PREFIX, CLIENT_UA_TOKEN, SETS_UA_TOKEN, callerCacheStats, identifyCaller, type CallerIdentity } from '../../src/common/wire';

/** The parser before the change (src/common/wire.ts parseUserAgent, commit 26a7c43), kept as the reference. */
function referenceIdentify(userAgent: string | undefined): CallerIdentity {
  const PLAIN = { rebindAware: false, clientId: null, sets: false };
  if (userAgent === undefined || userAgent.length === 0) return PLAIN;
  if (userAgent.length > 1024) return PLAIN;
  const tokens = userAgent.split(' ');
  if (!tokens.includes(CLIENT_UA_TOKEN)) return PLAIN;
  let clientId: string | null = null;
  for (const token of tokens) {
    if (token.startsWith(CLIENT_ID_UA_PREFIX)) {
      const candidate = token.slice(CLIENT_ID_UA_PREFIX.length);
      if (CLIENT_ID_PATTERN.test(candidate)) clientId = Buffer.from(candidate, 'latin1').toString('latin1');
    }
  }
  return { rebindAware: true, clientId, sets: tokens.includes(SETS_UA_TOKEN) };
}

const RUNS = Number(process.env['REBIND_PROPERTY_RUNS'] ?? 60) * 50;

const idChars = fc.constantFrom(...'abcXYZ019_-'.split(''));
const badChar = fc.constantFrom('$', '!', '/', '.', ',', ':', '@', '[', '^', '`', '{', ' ', '\n', '\t', '\u00e9', '\u{1F600}', '\0', '=', '+');
/** Client ids around the pattern's edges: 7/8/64/65 characters, a bad character somewhere. */
const clientId = fc.oneof(
  fc.string({ unit: idChars, minLength: 8, maxLength: 64 }),
  fc.string({ unit: idChars, minLength: 0, maxLength: 8 }),
  fc.string({ unit: idChars, minLength: 63, maxLength: 70 }),
  fc.tuple(fc.string({ unit: idChars, minLength: 4, maxLength: 40 }), badChar, fc.string({ unit: idChars, maxLength: 40 })).map(([a, b, c]) => a + b + c),
);
const token = fc.oneof(
  fc.constantFrom(CLIENT_UA_TOKEN, SETS_UA_TOKEN, 'grpc-node-js/1.14.7', 'grpc-go/1.60', 'rebind/1x', 'rebind/', 'xrebind/1', 'rebind-sets/1x', 'rebind-sets/', CLIENT_ID_UA_PREFIX, 'rebind-cid', 'rebind-c', 'id/abcdefgh', ''),
  clientId.map((id) => CLIENT_ID_UA_PREFIX + id),
  clientId.map((id) => `x${CLIENT_ID_UA_PREFIX}${id}`),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const separator = fc.constantFrom(' ', ' ', ' ', '  ', '\t', '', ',');
/** Tokens joined by mostly spaces, sometimes something else; padded to around the 1,024-character limit now and then. */
const userAgent = fc.oneof(
  fc.tuple(fc.array(fc.tuple(token, separator), { maxLength: 8 }), fc.constantFrom(0, 0, 0, 1, 2)).chain(([parts, pad]) => {
    const text = parts.map(([t, s]) => t + s).join('');
    if (pad === 0) return fc.constant(text);
    // Padding that lands the whole string just under, at and just over 1,024 characters.
    return fc.integer({ min: -3, max: 3 }).map((d) => {
      const fill = Math.max(0, 1024 + d - text.length - 1);
      return pad === 1 ? `${'p'.repeat(fill)} ${text}` : `${text} ${'q'.repeat(fill)}`;
    });
  }),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
);
/** A rebind client's shape, hostile variants included: CLIENT_UA_TOKEN somewhere, one to three client-id tokens, other tokens around them. */
const rebindUserAgent = fc
  .tuple(fc.array(token, { maxLength: 4 }), fc.array(clientId.map((id) => CLIENT_ID_UA_PREFIX + id), { minLength: 1, maxLength: 3 }), fc.boolean())
  .chain(([others, ids, sets]) => fc.shuffledSubarray([...others, ...ids, CLIENT_UA_TOKEN, ...(sets ? [SETS_UA_TOKEN] : [])], { minLength: others.length + ids.length + (sets ? 2 : 1) }))
  .map((tokens) => tokens.join(' '));

function check(ua: string): void {
  const expected = referenceIdentify(ua);
  for (let i = 0; i < 2; i++) {
    // Twice: the first call may fill the cache, the second may read it.
    const got = identifyCaller(ua);
    expect(got).toEqual(expected);
    expect(Object.isFrozen(got)).toBe(true);
  }
}

describe('identifyCaller parses as the split-based parser did', () => {
  it('random and hostile user-agents', () => {
    fc.assert(fc.property(fc.oneof(userAgent, rebindUserAgent), check), { numRuns: RUNS });
  });

  it('edge cases', () => {
    const id8 = 'abcdEFG_';
    const id64 = 'a'.repeat(64);
    for (const ua of [
      '',
      ' ',
      CLIENT_UA_TOKEN,
      `${CLIENT_UA_TOKEN} `,
      ` ${CLIENT_UA_TOKEN}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8}`,
      `${CLIENT_ID_UA_PREFIX}${id8} ${CLIENT_UA_TOKEN}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8.slice(1)}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id64}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id64}b`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8} ${CLIENT_ID_UA_PREFIX}bad$bad$bad`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8} ${CLIENT_ID_UA_PREFIX}${id64}`,
      `${CLIENT_UA_TOKEN}\t${CLIENT_ID_UA_PREFIX}${id8}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8}\n`,
      `${CLIENT_UA_TOKEN}  ${SETS_UA_TOKEN}  ${CLIENT_ID_UA_PREFIX}${id8}`,
      `${SETS_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8}`,
      `${CLIENT_ID_UA_PREFIX}${id8}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}`,
      `${'x'.repeat(1024 - CLIENT_UA_TOKEN.length - 1)} ${CLIENT_UA_TOKEN}`,
      `${'x'.repeat(1024 - CLIENT_UA_TOKEN.length)} ${CLIENT_UA_TOKEN}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8} ${'y'.repeat(1024 - 29)}`,
      `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${id8} ${'y'.repeat(1024 - 28)}`,
    ])
      check(ua);
    expect(identifyCaller(undefined)).toEqual(referenceIdentify(undefined));
  });
});

describe('the user-agent cache', () => {
  it('is not used for user-agents carrying a client id, and counts hits and misses of the others', () => {
    const before = callerCacheStats();
    for (let i = 0; i < 100; i++) identifyCaller(`grpc-node-js/1.14.7 ${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}client-${String(i).padStart(6, '0')}`);
    const afterBinds = callerCacheStats();
    expect(afterBinds.hits + afterBinds.misses).toBe(before.hits + before.misses);
    const plain = `grpc-go/1.60 test-${Date.now()}`;
    identifyCaller(plain);
    identifyCaller(plain);
    const afterPlain = callerCacheStats();
    expect(afterPlain.misses - afterBinds.misses).toBe(1);
    expect(afterPlain.hits - afterBinds.hits).toBe(1);
  });

  it('stays within its limit, clearing itself (and counting it) under ever new user-agents', () => {
    const before = callerCacheStats();
    for (let i = 0; i < before.limit + 10; i++) identifyCaller(`hostile/${i}`);
    const after = callerCacheStats();
    expect(after.size).toBeLessThanOrEqual(after.limit);
    expect(after.clears).toBeGreaterThan(before.clears);
  });
});
