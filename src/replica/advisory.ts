/**
 * Validation of advisories on the replica side: the balancer is trusted
 * only as far as the stream is authenticated, and a malformed advisory must
 * not turn into forwards to nowhere.
 */
import { parseHostPort } from '../common/address';
import { CLIENT_ID_PATTERN, parseBinding, parseKeyChain } from '../common/wire';
import type { Advisory__Output } from '../generated/rebind/v1/Advisory';
import type { AdvisoryInput } from './forward-table';

export const MAX_ADVISORY_MOVES = 10_000;
export const MAX_ADVISORY_EXPIRE_MS = 86_400_000;

/** Returns the advisory with only its valid moves (and a well-formed key chain or none), plus the problems found. */
export function sanitizeAdvisory(advisory: AdvisoryInput): { advisory: Advisory__Output; problems: string[] } {
  const problems: string[] = [];
  let moves = advisory.moves;
  if (moves.length > MAX_ADVISORY_MOVES) {
    problems.push(`advisory lists ${moves.length} moves (limit ${MAX_ADVISORY_MOVES}); extra moves ignored`);
    moves = moves.slice(0, MAX_ADVISORY_MOVES);
  }
  const valid = moves.filter((move, i) => {
    if (!CLIENT_ID_PATTERN.test(move.clientId)) {
      problems.push(`advisory move ${i}: client_id is not 8-64 characters of base64url`);
      return false;
    }
    if (move.target !== '') {
      const parsed = parseHostPort(move.target);
      if (typeof parsed === 'string') {
        problems.push(`advisory move ${i}: target ${parsed}`);
        return false;
      }
    }
    if (move.binding !== '') {
      const parsed = parseBinding(move.binding);
      if (typeof parsed === 'string') {
        problems.push(`advisory move ${i}: ${parsed}`);
        return false;
      }
    }
    return true;
  });
  let offerBinding = advisory.offerBinding;
  let offerExpireMs = advisory.offerExpireMs;
  if (offerBinding !== '') {
    const parsed = parseBinding(offerBinding);
    if (typeof parsed === 'string') {
      problems.push(`advisory offer: ${parsed}; no offer made`);
      offerBinding = '';
    } else if (!(offerExpireMs >= 1 && offerExpireMs <= MAX_ADVISORY_EXPIRE_MS)) {
      problems.push(`advisory offer_expire_ms ${offerExpireMs} outside 1..${MAX_ADVISORY_EXPIRE_MS}; no offer made`);
      offerBinding = '';
    }
  }
  if (offerBinding === '') offerExpireMs = 0;
  let expireMs = advisory.expireMs;
  if (!(expireMs >= 1 && expireMs <= MAX_ADVISORY_EXPIRE_MS)) {
    problems.push(`advisory expire_ms ${expireMs} outside 1..${MAX_ADVISORY_EXPIRE_MS}; using 5000`);
    expireMs = 5000;
  }
  // Bounded and well-formed (parseKeyChain); whether its endorsements verify is each client's to check.
  let keyChain = advisory.keyChain ?? '';
  const chain = parseKeyChain(keyChain);
  if (typeof chain === 'string') {
    problems.push(`advisory key_chain: ${chain}; no key chain sent with vouchers`);
    keyChain = '';
  }
  return { advisory: { ...advisory, moves: valid, expireMs, offerBinding, offerExpireMs, keyChain }, problems };
}
