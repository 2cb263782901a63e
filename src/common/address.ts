/**
 * `host:port` addresses as rebind passes them around: in Hello messages, in
 * forward trailers, in advisories. IPv6 literals are bracketed ("[::1]:50051").
 */
import { isIP } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `host:port`. Returns an error message (a string) instead of throwing,
 * so callers on the network path can answer with it.
 */
export function parseHostPort(address: string): HostPort | string {
  if (typeof address !== 'string' || address.length === 0) return 'address is empty';
  if (address.length > 300) return `address is ${address.length} characters long (limit 300)`;
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close < 0 || address[close + 1] !== ':') return `address "${address}" is not of the form [ipv6]:port`;
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (isIP(host) !== 6) return `address "${address}" has an invalid IPv6 host`;
  } else {
    const colon = address.lastIndexOf(':');
    if (colon <= 0) return `address "${address}" is not of the form host:port`;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) return `address "${address}": IPv6 hosts must be bracketed, as in [::1]:50051`;
    if (isIP(host) !== 4 && !HOSTNAME.test(host)) return `address "${address}" has an invalid host "${host}"`;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return `address "${address}" has an invalid port "${portText}"`;
  const port = Number(portText);
  if (port < 1 || port > 65535) return `address "${address}" has port ${port} outside 1..65535`;
  return { host, port };
}

/**
 * Parses a listen address: `host:port` where port 0 (the OS picks a free
 * port) is allowed too.
 */
export function parseListenAddress(address: string): HostPort | string {
  const anyPort = typeof address === 'string' && address.endsWith(':0');
  const parsed = parseHostPort(anyPort ? `${address.slice(0, -2)}:1` : address);
  if (typeof parsed === 'string' || !anyPort) return parsed;
  return { host: parsed.host, port: 0 };
}

/** Formats a host and port back into `host:port` (bracketing IPv6). */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Canonical form of an address, so that equal addresses compare equal. */
export function canonicalAddress(address: string): string | null {
  const parsed = parseHostPort(address);
  if (typeof parsed === 'string') return null;
  return formatHostPort(parsed.host.toLowerCase(), parsed.port);
}

/** Whether a host is a loopback address or name (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/**
 * Whether a grpc-js peer string ("127.0.0.1:5000", "[::1]:5000",
 * "ipv4:…", "ipv6:[…]:…", "unix:…") names a loopback peer.
 */
export function isLoopbackPeer(peer: string): boolean {
  const bare = peer.replace(/^ipv[46]:/, '');
  if (bare.startsWith('unix:')) return true;
  const parsed = parseHostPort(bare);
  return typeof parsed !== 'string' && isLoopbackHost(parsed.host);
}
