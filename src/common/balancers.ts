/**
 * Several balancers (issue 14): a replica attaches to each, a rebind client
 * fails over between them, an xDS client lists each in its bootstrap. What
 * they share: the bound on how many one list may name, and its check.
 */
import { isIP } from 'node:net';
import { parseHostPort } from './address';

/**
 * Most balancer addresses one replica attaches to, or one bootstrap lists:
 * 16. A replica keeps a control stream (a connection, a report per
 * interval) per balancer, so a DNS name that answers with hundreds of
 * addresses must not make it open hundreds; an HA set is 3 or 5 balancers.
 */
export const MAX_BALANCERS = 16;

/**
 * Checks a list of balancer addresses: 1..MAX_BALANCERS entries, no
 * duplicates. Returns the problem (naming `field`), or null when it is fine.
 */
export function balancerListProblem(field: string, addresses: readonly string[]): string | null {
  if (addresses.length === 0) return `${field} lists no balancer; give 1..${MAX_BALANCERS} addresses`;
  if (addresses.length > MAX_BALANCERS) return `${field} lists ${addresses.length} balancers; at most ${MAX_BALANCERS} (MAX_BALANCERS) are accepted`;
  const seen = new Set<string>();
  for (const a of addresses) {
    if (seen.has(a)) return `${field} lists ${a} twice`;
    seen.add(a);
  }
  return null;
}

/**
 * The gRPC target for a rebind client of several balancers given by IP
 * address: `ipv4:a:p,b:q` (or `ipv6:[a]:p,...`). The client's channel keeps
 * one connection to the first balancer it reaches and fails over to another
 * when that one goes away. One address is returned as is (a name too).
 * Several names cannot share a static target: give one DNS name that
 * resolves to every balancer instead (an Error says so).
 */
export function balancerTarget(addresses: readonly string[]): string {
  const problem = balancerListProblem('balancer list', addresses);
  if (problem !== null) throw new Error(problem);
  if (addresses.length === 1) return addresses[0]!;
  const families = new Set<number>();
  for (const a of addresses) {
    const parsed = parseHostPort(a);
    if (typeof parsed === 'string') throw new Error(`balancer ${JSON.stringify(a)}: ${parsed}`);
    const family = isIP(parsed.host);
    if (family === 0) throw new Error(`balancer ${a} is a name: several balancers in one target must be IP addresses (or give one DNS name that resolves to all of them)`);
    families.add(family);
  }
  if (families.size > 1) throw new Error('several balancers in one target must be all IPv4 or all IPv6 addresses (or give one DNS name that resolves to all of them)');
  return `${families.has(6) ? 'ipv6' : 'ipv4'}:${addresses.join(',')}`;
}
