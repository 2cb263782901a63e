/**
 * rebind's wire conventions: the header, trailer and user-agent tokens that
 * the balancer, replicas and clients exchange on the data path. Everything a
 * non-rebind peer might see is listed here; the README's "Wire conventions"
 * section documents the same names.
 */
import { status as Status } from '@grpc/grpc-js';
import { canonicalAddress, parseHostPort } from './address';

/** Version of the wire conventions and of the control protocol. */
export const PROTOCOL_VERSION = 1;

/**
 * User-agent token a rebind-aware client adds (through the channel option
 * `grpc.secondary_user_agent`). A call whose user-agent lacks it comes from a
 * plain gRPC client, which cannot follow a forward: the balancer proxies it.
 */
export const CLIENT_UA_TOKEN = 'rebind/1';
/** User-agent token carrying the client's id: `rebind-cid/<id>`. */
export const CLIENT_ID_UA_PREFIX = 'rebind-cid/';
/** A client id: 8 to 64 characters of base64url. */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/**
 * Trailer of a forward: where the client should re-issue the call. Either a
 * `host:port` of a replica or the literal {@link FORWARD_TO_BALANCER}.
 */
export const FORWARD_TRAILER = 'rebind-forward';
/** Value of {@link FORWARD_TRAILER} meaning "go back to the balancer". */
export const FORWARD_TO_BALANCER = 'balancer';
/** Trailer saying why the forward was sent (bind, advisory, recall, drain). */
export const FORWARD_REASON_TRAILER = 'rebind-forward-reason';
/**
 * Status code of a forward. A forward is decided before any handler runs,
 * so the call was not processed and can always be re-sent. rebind uses
 * ABORTED rather than UNAVAILABLE because grpc-js never produces ABORTED
 * itself: transport failures are UNAVAILABLE. The client's retry policy can
 * then re-send every forward while re-sending a call that failed in transit
 * (and may have run) only for methods declared idempotent. A replica's
 * interceptor marks an application's own ABORTED status with pushback -1 so
 * that the client never retries it.
 */
export const FORWARD_STATUS = Status.ABORTED;
/** gRPC retry pushback trailer (gRFC A6). 0 means "retry now". */
export const RETRY_PUSHBACK_TRAILER = 'grpc-retry-pushback-ms';

/**
 * Request header the balancer adds to calls it proxies. A replica never
 * forwards a proxied call: the balancer already chose it for this call.
 */
export const PROXIED_HEADER = 'rebind-proxied';

/**
 * Request header pinning a call to the replica that owns its state (a
 * trading session lives on the replica that created it). Its value is the
 * owner's affinity token, `host:port/replicaId` (see {@link affinityToken}).
 * The balancer routes such a call to its owner or refuses it with
 * FAILED_PRECONDITION if the owner is gone; a replica never forwards it and
 * refuses one pinned to another replica.
 */
export const AFFINITY_HEADER = 'rebind-affinity';

/** The affinity token of a replica: where it is, and which incarnation. */
export function affinityToken(address: string, replicaId: string): string {
  return `${address}/${replicaId}`;
}

const REPLICA_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** Splits an affinity token; returns an error message for a malformed one. */
export function parseAffinityToken(token: string): { address: string; replicaId: string } | string {
  if (token.length === 0 || token.length > 400) return 'affinity token is empty or too long';
  const slash = token.lastIndexOf('/');
  if (slash <= 0) return `affinity token "${token.slice(0, 100)}" is not of the form host:port/replicaId`;
  const address = token.slice(0, slash);
  const replicaId = token.slice(slash + 1);
  if (!REPLICA_ID.test(replicaId)) return `affinity token "${token.slice(0, 100)}" has an invalid replica id`;
  return { address, replicaId };
}

/**
 * Trailer carrying the balancer's voucher for a forward's target:
 * `<notAfterUnixMs>.<base64url(group)>.<base64url Ed25519 signature>` over
 * `rebind-vouch-v2|<group>|<target>|<notAfterUnixMs>`. A client follows a
 * replica's forward to another replica only with a valid voucher for its own
 * group (pinned from the balancer's forwards); otherwise it goes back to the
 * balancer. Forwards back to the balancer need none.
 */
export const VOUCH_TRAILER = 'rebind-vouch';
/**
 * Trailer of the balancer's own forwards: the Ed25519 public key (SPKI DER,
 * base64url) it signs vouchers with now (the newest of its key ring).
 */
export const BALANCER_KEY_TRAILER = 'rebind-balancer-key';
/**
 * Trailer of the balancer's own forwards: every public key of its vouching
 * key ring, oldest first, comma-joined. A client pins them all (a voucher
 * is valid under any); {@link BALANCER_KEY_TRAILER} stays for clients that
 * only know one key.
 */
export const BALANCER_KEYS_TRAILER = 'rebind-balancer-keys';
/**
 * Trailer a replica adds beside every voucher it sends (forward, piggy-backed
 * binding, offer): the balancer's key chain (see {@link parseKeyChain}), so a
 * client bound before a key rotation can extend its pinned keys by the
 * endorsements of keys it already trusts.
 */
export const KEY_CHAIN_TRAILER = 'rebind-key-chain';
/** Entries a key chain has at most: one endorsement per key of a ring (MAX_RING_KEYS in balancer/keyring.ts). */
export const MAX_KEY_CHAIN_ENTRIES = 4;
/** Longest key chain accepted: an entry is a 59-character key, a dot and an 86-character signature. */
export const MAX_KEY_CHAIN_CHARS = MAX_KEY_CHAIN_ENTRIES * 160;

/** The bytes a voucher signs. */
export function vouchPayload(group: string, target: string, notAfterMs: number): Buffer {
  return Buffer.from(`rebind-vouch-v2|${group}|${target}|${notAfterMs}`);
}

/** The bytes an endorsement signs: the previous key of a ring vouching for `publicKey` (SPKI DER, base64url). */
export function endorsePayload(publicKey: string): Buffer {
  return Buffer.from(`rebind-key-endorse\0${publicKey}`);
}

/** One entry of a key chain: a public key and the endorsement of it by the key before it in the ring. */
export interface KeyChainEntry {
  /** SPKI DER, base64url. */
  publicKey: string;
  /** Ed25519 signature over {@link endorsePayload}(publicKey), base64url. */
  signature: string;
}

const B64URL = /^[A-Za-z0-9_-]+$/;
/** An Ed25519 SPKI DER public key is 44 bytes: 59 characters of base64url. */
const PUBLIC_KEY_CHARS = 59;
/** An Ed25519 signature is 64 bytes: 86 characters of base64url. */
const SIGNATURE_CHARS = 86;

/**
 * Parses a key chain strictly: '' (no entries) or up to
 * {@link MAX_KEY_CHAIN_ENTRIES} entries `<publicKey>.<signature>` joined by
 * `,`, each field base64url of an Ed25519 key's / signature's length, no key
 * twice. Says nothing about whether the signatures verify (the client checks
 * them against the keys it pinned). Returns the entries, or why it is malformed.
 */
export function parseKeyChain(text: string): KeyChainEntry[] | string {
  if (typeof text !== 'string') return 'key chain is not a string';
  if (text.length === 0) return [];
  if (text.length > MAX_KEY_CHAIN_CHARS) return `key chain is ${text.length} characters long (limit ${MAX_KEY_CHAIN_CHARS})`;
  const parts = text.split(',');
  if (parts.length > MAX_KEY_CHAIN_ENTRIES) return `key chain has ${parts.length} entries (limit ${MAX_KEY_CHAIN_ENTRIES})`;
  const out: KeyChainEntry[] = [];
  const seen = new Set<string>();
  for (const [i, part] of parts.entries()) {
    const [publicKey, signature, extra] = part.split('.');
    if (publicKey === undefined || signature === undefined || extra !== undefined) return `key chain entry ${i} is not of the form publicKey.signature`;
    if (publicKey.length !== PUBLIC_KEY_CHARS || !B64URL.test(publicKey)) return `key chain entry ${i}: the key is not ${PUBLIC_KEY_CHARS} characters of base64url`;
    if (signature.length !== SIGNATURE_CHARS || !B64URL.test(signature)) return `key chain entry ${i}: the signature is not ${SIGNATURE_CHARS} characters of base64url`;
    if (seen.has(publicKey)) return `key chain entry ${i} names a key twice`;
    seen.add(publicKey);
    out.push({ publicKey, signature });
  }
  return out;
}

/** Formats key chain entries as the trailer's text (the inverse of {@link parseKeyChain}). */
export function formatKeyChain(entries: readonly KeyChainEntry[]): string {
  return entries.map((e) => `${e.publicKey}.${e.signature}`).join(',');
}

/** Trailers only the balancer or a replica's interceptor may produce; stripped from relayed responses. */
export const REBIND_TRAILERS = new Set([
  FORWARD_TRAILER,
  FORWARD_REASON_TRAILER,
  VOUCH_TRAILER,
  BALANCER_KEY_TRAILER,
  BALANCER_KEYS_TRAILER,
  KEY_CHAIN_TRAILER,
  'rebind-binding' /* BINDING_TRAILER */,
]);

/**
 * Request header a client sends to the balancer when it comes back after a
 * replica failed it (unreachable, or a forward it would not follow): the
 * replicas, comma-separated host:port, not to bind it to again if another
 * member can take it. A hint: malformed entries are ignored.
 */
export const AVOID_HEADER = 'rebind-avoid';
/** Entries of {@link AVOID_HEADER} the balancer reads at most. */
export const MAX_AVOID = 16;

/** Parses an avoid header into canonical addresses (malformed entries dropped). */
export function parseAvoid(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (value === undefined) return out;
  for (const entry of String(value).split(',').slice(0, MAX_AVOID)) {
    const canonical = canonicalAddress(entry.trim());
    if (canonical !== null) out.add(canonical);
  }
  return out;
}

/** Why a forward was sent. */
export type ForwardReason = 'bind' | 'advisory' | 'recall' | 'drain';
export const FORWARD_REASONS: readonly ForwardReason[] = ['bind', 'advisory', 'recall', 'drain'];

/**
 * Identity of the caller of one call, as seen by a server: whether it runs
 * rebind's client plumbing, and its client id if so.
 */
export interface CallerIdentity {
  rebindAware: boolean;
  clientId: string | null;
  /** The client understands weighted bindings ({@link SETS_UA_TOKEN}). */
  sets: boolean;
}

const PLAIN: CallerIdentity = Object.freeze({ rebindAware: false, clientId: null, sets: false });
/** Longest user-agent read (chars): a longer one is a plain caller's. */
const MAX_USER_AGENT_CHARS = 1024;
/**
 * Identities of user-agents without a client id (plain gRPC clients): few
 * distinct strings, each sent on every call, so a lookup saves the parse.
 * Bounded by UA_CACHE_LIMIT entries, cleared whole when full (a remote party
 * sending ever new user-agents only makes us parse them).
 */
const uaCache = new Map<string, CallerIdentity>();
const UA_CACHE_LIMIT = 4096;
/** Counters of the user-agent cache (see {@link callerCacheStats}). */
const uaCacheCounters = { hits: 0, misses: 0, clears: 0 };

/**
 * The user-agent cache's counters since the process started: lookups that
 * hit and missed, and times it was cleared because it held UA_CACHE_LIMIT
 * entries (many distinct user-agents without a client id), and its size.
 */
export function callerCacheStats(): { hits: number; misses: number; clears: number; size: number; limit: number } {
  return { ...uaCacheCounters, size: uaCache.size, limit: UA_CACHE_LIMIT };
}

/**
 * Reads a caller's identity from its user-agent. A rebind client's carries
 * its client id, distinct per client: such a user-agent is parsed directly
 * (one scan, no allocation but the identity and the id), since caching it
 * would only add an insert per bind. Other user-agents (plain gRPC clients,
 * the same string on every call) are cached, so their hot path is one Map
 * lookup.
 */
export function identifyCaller(userAgent: string | undefined): CallerIdentity {
  if (userAgent === undefined || userAgent.length === 0) return PLAIN;
  if (userAgent.length <= MAX_USER_AGENT_CHARS && userAgent.includes(CLIENT_ID_UA_PREFIX)) return parseUserAgent(userAgent);
  const cached = uaCache.get(userAgent);
  if (cached !== undefined) {
    uaCacheCounters.hits++;
    return cached;
  }
  uaCacheCounters.misses++;
  const identity = parseUserAgent(userAgent);
  if (uaCache.size >= UA_CACHE_LIMIT) {
    uaCache.clear();
    uaCacheCounters.clears++;
  }
  uaCache.set(userAgent, identity);
  return identity;
}

/** Whether `ua[from, to)` matches CLIENT_ID_PATTERN (8-64 of A-Z a-z 0-9 _ -), without a substring. */
function isClientIdAt(ua: string, from: number, to: number): boolean {
  const length = to - from;
  if (length < 8 || length > 64) return false;
  for (let i = from; i < to; i++) {
    const c = ua.charCodeAt(i);
    // 0-9, A-Z, a-z, '_', '-'
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45)) return false;
  }
  return true;
}

/**
 * The identity a user-agent names: its space-separated tokens scanned in
 * place (no split). Rebind-aware if a token is CLIENT_UA_TOKEN; the client
 * id is the last `rebind-cid/<id>` token whose id matches CLIENT_ID_PATTERN;
 * sets if a token is SETS_UA_TOKEN. Over MAX_USER_AGENT_CHARS: plain.
 */
function parseUserAgent(userAgent: string): CallerIdentity {
  const n = userAgent.length;
  if (n > MAX_USER_AGENT_CHARS) return PLAIN;
  let aware = false;
  let sets = false;
  let idFrom = -1;
  let idTo = -1;
  let from = 0;
  for (;;) {
    let to = userAgent.indexOf(' ', from);
    if (to < 0) to = n;
    const length = to - from;
    // The tokens and the prefix have no space: a match at `from` lies within this token.
    if (length === CLIENT_UA_TOKEN.length && userAgent.startsWith(CLIENT_UA_TOKEN, from)) aware = true;
    else if (length === SETS_UA_TOKEN.length && userAgent.startsWith(SETS_UA_TOKEN, from)) sets = true;
    else if (userAgent.startsWith(CLIENT_ID_UA_PREFIX, from) && isClientIdAt(userAgent, from + CLIENT_ID_UA_PREFIX.length, to)) {
      idFrom = from + CLIENT_ID_UA_PREFIX.length;
      idTo = to;
    }
    if (to === n) break;
    from = to + 1;
  }
  if (!aware) return PLAIN;
  // A copy, not a slice: a slice would keep the whole user-agent (up to 1 KiB) alive in
  // every table keyed by client id.
  const clientId = idFrom < 0 ? null : Buffer.from(userAgent.slice(idFrom, idTo), 'latin1').toString('latin1');
  return Object.freeze({ rebindAware: true, clientId, sets });
}

/** The secondary user-agent a rebind client sends. */
export function clientUserAgent(clientId: string): string {
  return `${CLIENT_UA_TOKEN} ${CLIENT_ID_UA_PREFIX}${clientId}`;
}

/**
 * User-agent token of a client that understands weighted-set bindings
 * ({@link BINDING_TRAILER}). The balancer sends sets only to such clients;
 * others get the single `rebind-forward` they have always understood.
 */
export const SETS_UA_TOKEN = 'rebind-sets/1';

/** Whether a user-agent carries {@link SETS_UA_TOKEN} (and is a rebind client's). */
export function understandsSets(userAgent: string | undefined): boolean {
  if (userAgent === undefined || userAgent.length > 1024) return false;
  const tokens = userAgent.split(' ');
  return tokens.includes(CLIENT_UA_TOKEN) && tokens.includes(SETS_UA_TOKEN);
}

/**
 * Trailer carrying a client's whole binding: a weighted set of replicas,
 * `<host:port>=<permille>,...` (see {@link parseBinding}). Sent with
 * `rebind-forward` naming the heaviest member (for clients that only know
 * single forwards) and a `rebind-vouch` whose target is this exact string.
 * On a Trailers-Only forward it binds; on an OK response of a member of the
 * client's current binding it re-binds later calls ("piggy-backing").
 */
export const BINDING_TRAILER = 'rebind-binding';
/** Members a binding has at most. */
export const MAX_BINDING_MEMBERS = 16;
/** What a binding's weights add up to: weights are per-mille shares. */
export const BINDING_PERMILLE_TOTAL = 1000;
/** Longest binding string accepted (16 members of a 300-character address and a weight). */
export const MAX_BINDING_CHARS = MAX_BINDING_MEMBERS * 306;

/** One member of a binding: a replica and its share in per-mille (1..1000). */
export interface BindingMember {
  address: string;
  permille: number;
}

const PERMILLE = /^[1-9][0-9]{0,3}$/;

/**
 * Parses a binding string strictly: 1..16 entries `host:port=<permille>`,
 * addresses canonical (as {@link canonicalAddress} writes them, IPv6
 * bracketed), sorted by address (JavaScript string order) with no duplicates,
 * weights integers 1..1000 adding up to exactly 1000. The string must be the
 * canonical one, because the voucher signs its exact text. Returns the
 * members in order, or an error message naming what is wrong.
 */
export function parseBinding(text: string): BindingMember[] | string {
  if (typeof text !== 'string' || text.length === 0) return 'binding is empty';
  if (text.length > MAX_BINDING_CHARS) return `binding is ${text.length} characters long (limit ${MAX_BINDING_CHARS})`;
  const entries = text.split(',');
  if (entries.length > MAX_BINDING_MEMBERS) return `binding has ${entries.length} members (limit ${MAX_BINDING_MEMBERS})`;
  const members: BindingMember[] = [];
  let total = 0;
  for (const entry of entries) {
    const shown = JSON.stringify(entry.slice(0, 100));
    const eq = entry.lastIndexOf('=');
    if (eq <= 0) return `binding entry ${shown} is not of the form host:port=permille`;
    const address = entry.slice(0, eq);
    const weight = entry.slice(eq + 1);
    const canonical = canonicalAddress(address);
    if (canonical === null) return `binding entry ${shown}: ${String(parseHostPort(address))}`;
    if (canonical !== address) return `binding entry ${shown}: address is not canonical (expected ${canonical})`;
    if (!PERMILLE.test(weight) || Number(weight) > BINDING_PERMILLE_TOTAL) return `binding entry ${shown}: weight must be an integer 1..${BINDING_PERMILLE_TOTAL}`;
    const previous = members[members.length - 1];
    if (previous !== undefined && previous.address === address) return `binding names ${address} twice`;
    if (previous !== undefined && !(previous.address < address)) return `binding is not sorted by address (${address} after ${previous.address})`;
    total += Number(weight);
    members.push({ address, permille: Number(weight) });
  }
  if (total !== BINDING_PERMILLE_TOTAL) return `binding weights add up to ${total}, not ${BINDING_PERMILLE_TOTAL}`;
  return members;
}

/**
 * Formats members as the canonical binding string (addresses canonicalized,
 * sorted); throws if the result would not parse (bad address, duplicate,
 * weight out of range, sum not 1000, 0 or more than 16 members).
 */
export function formatBinding(members: readonly BindingMember[]): string {
  const canonical = members.map((m) => ({ address: canonicalAddress(m.address) ?? m.address, permille: m.permille }));
  canonical.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  const text = canonical.map((m) => `${m.address}=${m.permille}`).join(',');
  const parsed = parseBinding(text);
  if (typeof parsed === 'string') throw new Error(`formatBinding: ${parsed}`);
  return text;
}

/** The member `rebind-forward` names beside a binding: the heaviest (the first in order among equals). */
export function heaviestMember(members: readonly BindingMember[]): string {
  let best = members[0]!;
  for (const m of members) if (m.permille > best.permille) best = m;
  return best.address;
}

/**
 * Turns each member's part of a load into per-mille weights that add up to
 * exactly 1000 (largest remainder), keeping at most {@link MAX_BINDING_MEMBERS}
 * (the largest parts) and dropping parts too small for one per-mille.
 * Returns [] when no part is positive.
 */
export function toPermille<T extends { address: string; load: number }>(parts: readonly T[]): (T & BindingMember)[] {
  let kept = parts.filter((p) => p.load > 0 && Number.isFinite(p.load));
  if (kept.length > MAX_BINDING_MEMBERS) kept = [...kept].sort((a, b) => b.load - a.load).slice(0, MAX_BINDING_MEMBERS);
  for (;;) {
    const total = kept.reduce((sum, p) => sum + p.load, 0);
    if (!(total > 0)) return [];
    const exact = kept.map((p) => (p.load / total) * BINDING_PERMILLE_TOTAL);
    // A part under half a per-mille would round to 0: drop the smallest and share again.
    const smallest = exact.indexOf(Math.min(...exact));
    if (exact[smallest]! < 0.5 && kept.length > 1) {
      kept = kept.filter((_, i) => i !== smallest);
      continue;
    }
    const weights = exact.map((x) => Math.max(1, Math.floor(x)));
    let left = BINDING_PERMILLE_TOTAL - weights.reduce((a, b) => a + b, 0);
    const order = exact.map((x, i) => ({ i, rest: x - Math.floor(x) })).sort((a, b) => b.rest - a.rest || a.i - b.i);
    for (let n = 0; left > 0; n++, left--) weights[order[n % order.length]!.i]!++;
    // Floors lifted to 1 can overshoot: take it back from the heaviest.
    while (left < 0) {
      const heaviest = weights.indexOf(Math.max(...weights));
      weights[heaviest]!--;
      left++;
    }
    return kept.map((p, i) => ({ ...p, permille: weights[i]! }));
  }
}
