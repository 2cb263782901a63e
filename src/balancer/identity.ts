/**
 * Binding an attachment to the identity in its TLS client certificate. With
 * mTLS on the control port, a replica may attach only as an address its
 * certificate names: an IP or DNS name in its subjectAltName, or an address
 * that `security.replicaIdentities` maps one of its identities (SAN DNS, IP,
 * URI, or the subject CN) to. So a replica holding a valid certificate and
 * the replica token still cannot attach as, report for, or drain another
 * replica.
 */
import { status as Status } from '@grpc/grpc-js';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { canonicalAddress, parseHostPort } from '../common/address';
import type { Refusal } from './validate';

/** Canonical form of a host for comparison (lower case, IPv6 compressed). */
function canonicalHost(host: string): string {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (isIP(h) === 6) return new URL(`http://[${h}]`).hostname.replace(/^\[|\]$/g, '');
  return h;
}

/** The identities a certificate names: SAN entries (DNS, IP, URI) and the subject CN. */
export function certificateIdentities(cert: Pick<PeerCertificate, 'subjectaltname' | 'subject'>): { hosts: Set<string>; names: string[] } {
  const hosts = new Set<string>();
  const names: string[] = [];
  for (const entry of (cert.subjectaltname ?? '').split(',')) {
    const match = /^\s*(DNS|IP Address|URI):(.+?)\s*$/.exec(entry);
    if (match === null) continue;
    const value = match[2]!;
    names.push(value);
    if (match[1] !== 'URI') hosts.add(canonicalHost(value));
  }
  const cn = cert.subject?.CN;
  if (typeof cn === 'string' && cn.length > 0) names.push(cn);
  return { hosts, names };
}

/**
 * Whether `cert` may attach as `address`; a refusal (PERMISSION_DENIED) says
 * why not. `map`: identity -> addresses (host:port, or host for any port).
 */
export function checkReplicaIdentity(cert: Pick<PeerCertificate, 'subjectaltname' | 'subject'> | undefined, address: string, map: Readonly<Record<string, readonly string[]>>): Refusal | null {
  const parsed = parseHostPort(address);
  if (typeof parsed === 'string') return { code: Status.INVALID_ARGUMENT, message: `hello.address: ${parsed}` };
  if (cert === undefined) {
    return { code: Status.PERMISSION_DENIED, message: 'the control port requires a client certificate, and this connection presented none', reason: 'identity_mismatch' };
  }
  const host = canonicalHost(parsed.host);
  const canonical = canonicalAddress(address);
  const { hosts, names } = certificateIdentities(cert);
  if (hosts.has(host)) return null;
  for (const name of names) {
    for (const allowed of map[name] ?? []) {
      if (canonicalAddress(allowed) === canonical || canonicalHost(allowed) === host) return null;
    }
  }
  return {
    code: Status.PERMISSION_DENIED,
    message: `hello.address ${address} is not an identity of the client certificate (subjectAltName: ${cert.subjectaltname || 'none'}; CN: ${cert.subject?.CN ?? 'none'}); put the address in the certificate or map an identity to it in security.replicaIdentities`,
    reason: 'identity_mismatch',
  };
}
