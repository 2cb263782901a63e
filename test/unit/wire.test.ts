import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatHostPort, parseHostPort } from '../../src/common/address';
import { encodeGrpcMessage, parseGrpcTimeoutMs } from '../../src/common/grpc-http2';
import { clientUserAgent, identifyCaller } from '../../src/common/wire';

describe('caller identity from the user-agent', () => {
  it('recognizes a rebind client and its id', () => {
    expect(identifyCaller(`grpc-node-js/1.14.7 ${clientUserAgent('abcdEFGH1234')}`)).toEqual({ rebindAware: true, clientId: 'abcdEFGH1234' });
  });
  it('treats everything else as a plain client', () => {
    expect(identifyCaller('grpc-go/1.60')).toEqual({ rebindAware: false, clientId: null });
    expect(identifyCaller(undefined)).toEqual({ rebindAware: false, clientId: null });
    expect(identifyCaller('x'.repeat(5000) + ' rebind/1')).toEqual({ rebindAware: false, clientId: null });
  });
  it('ignores a malformed client id but keeps rebind-awareness', () => {
    expect(identifyCaller('rebind/1 rebind-cid/short')).toEqual({ rebindAware: true, clientId: null });
    expect(identifyCaller('rebind/1 rebind-cid/has$bad!chars')).toEqual({ rebindAware: true, clientId: null });
  });
});

describe('host:port addresses', () => {
  it.each([
    ['127.0.0.1:50051', { host: '127.0.0.1', port: 50051 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['replica-3.example.com:443', { host: 'replica-3.example.com', port: 443 }],
  ])('parses %s', (text, expected) => {
    expect(parseHostPort(text)).toEqual(expected);
  });
  it.each([
    ['', 'empty'],
    ['127.0.0.1', 'host:port'],
    ['127.0.0.1:0', 'outside 1..65535'],
    ['127.0.0.1:70000', 'outside 1..65535'],
    ['::1:80', 'bracketed'],
    ['[zz]:80', 'IPv6'],
    ['bad host:80', 'invalid host'],
    ['host:8o', 'invalid port'],
  ])('refuses %j with a message', (text, fragment) => {
    const result = parseHostPort(text);
    expect(typeof result).toBe('string');
    expect(result).toContain(fragment);
  });
  it('formats and canonicalizes', () => {
    expect(formatHostPort('::1', 5)).toBe('[::1]:5');
    expect(canonicalAddress('LocalHost:7')).toBe('localhost:7');
  });
});

describe('gRPC HTTP/2 helpers', () => {
  it('percent-encodes grpc-message', () => {
    expect(encodeGrpcMessage('a b%c')).toBe('a b%25c');
    expect(encodeGrpcMessage('é\n')).toBe('%C3%A9%0A');
  });
  it('parses grpc-timeout', () => {
    expect(parseGrpcTimeoutMs('100m')).toBe(100);
    expect(parseGrpcTimeoutMs('5S')).toBe(5000);
    expect(parseGrpcTimeoutMs('2M')).toBe(120_000);
    expect(parseGrpcTimeoutMs('1H')).toBe(3_600_000);
    expect(parseGrpcTimeoutMs('2000u')).toBe(2);
    expect(parseGrpcTimeoutMs('bogus')).toBeNull();
    expect(parseGrpcTimeoutMs(undefined)).toBeNull();
  });
});

describe('client ids do not keep their user-agent alive', () => {
  it('20,000 ids read from 1 KiB user-agents hold a few MB, not the 20 MB of the headers', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    const ids: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      // A fresh string per user-agent, as each request's header would be.
      const ua = `grpc-node-js/1.14 ${'x'.repeat(900)}-${i} rebind/1 rebind-cid/client-${String(i).padStart(10, '0')}`;
      ids.push(identifyCaller(ua).clientId!);
    }
    gc();
    const grownMb = (process.memoryUsage().heapUsed - before) / 1e6;
    expect(ids[19_999]).toBe('client-0000019999');
    // A slice would keep each ~950-byte header: > 19 MB (checked on the code before the fix).
    expect(grownMb).toBeLessThan(8);
  });
});
