import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { canonicalAddress, formatHostPort, parseHostPort } from '../../src/common/address';
import { encodeGrpcMessage, parseGrpcTimeoutMs } from '../../src/common/grpc-http2';
import {
  BINDING_TRAILER,
  clientUserAgent,
  formatBinding,
  heaviestMember,
  identifyCaller,
  toPermille,
  MAX_BINDING_CHARS,
  parseBinding,
  REBIND_TRAILERS,
  SETS_UA_TOKEN,
  understandsSets,
} from '../../src/common/wire';
import { clientIdOf, clientOptions } from '../../src/interceptors/client-options';

describe('caller identity from the user-agent', () => {
  it('recognizes a rebind client and its id', () => {
    expect(identifyCaller(`grpc-node-js/1.14.7 ${clientUserAgent('abcdEFGH1234')}`)).toEqual({ rebindAware: true, clientId: 'abcdEFGH1234', sets: false });
  });
  it('treats everything else as a plain client', () => {
    expect(identifyCaller('grpc-go/1.60')).toEqual({ rebindAware: false, clientId: null, sets: false });
    expect(identifyCaller(undefined)).toEqual({ rebindAware: false, clientId: null, sets: false });
    expect(identifyCaller('x'.repeat(5000) + ' rebind/1')).toEqual({ rebindAware: false, clientId: null, sets: false });
  });
  it('ignores a malformed client id but keeps rebind-awareness', () => {
    expect(identifyCaller('rebind/1 rebind-cid/short')).toEqual({ rebindAware: true, clientId: null, sets: false });
    expect(identifyCaller('rebind/1 rebind-cid/has$bad!chars')).toEqual({ rebindAware: true, clientId: null, sets: false });
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

describe('weighted-set bindings (rebind-binding)', () => {
  it('parses a canonical binding into its members, in order', () => {
    expect(parseBinding('10.0.0.1:80=700,10.0.0.2:80=300')).toEqual([
      { address: '10.0.0.1:80', permille: 700 },
      { address: '10.0.0.2:80', permille: 300 },
    ]);
    expect(parseBinding('127.0.0.1:5=1000')).toEqual([{ address: '127.0.0.1:5', permille: 1000 }]);
    expect(parseBinding('[::1]:80=1,[fe80::1]:80=999')).toEqual([
      { address: '[::1]:80', permille: 1 },
      { address: '[fe80::1]:80', permille: 999 },
    ]);
  });
  it('accepts 16 members and refuses 17', () => {
    const members = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `10.0.0.${i + 10}:80`, permille: i === 0 ? 1000 - (n - 1) : 1 }));
    expect(parseBinding(formatBinding(members(16)))).toHaveLength(16);
    const seventeen = members(17)
      .map((m) => `${m.address}=${m.permille}`)
      .join(',');
    expect(parseBinding(seventeen)).toBe('binding has 17 members (limit 16)');
  });
  it.each([
    ['', 'binding is empty'],
    ['10.0.0.1:80=600,10.0.0.2:80=300', 'add up to 900, not 1000'],
    ['10.0.0.1:80=700,10.0.0.2:80=301', 'add up to 1001'],
    ['10.0.0.2:80=300,10.0.0.1:80=700', 'not sorted by address'],
    ['10.0.0.1:80=500,10.0.0.1:80=500', 'names 10.0.0.1:80 twice'],
    ['10.0.0.1:80=0,10.0.0.2:80=1000', 'weight must be an integer 1..1000'],
    ['10.0.0.1:80=1001', 'weight must be an integer 1..1000'],
    ['10.0.0.1:80=0700,10.0.0.2:80=300', 'weight must be an integer'],
    ['10.0.0.1:80=70.5,10.0.0.2:80=929.5', 'weight must be an integer'],
    ['10.0.0.1:80=+700,10.0.0.2:80=300', 'weight must be an integer'],
    ['10.0.0.1:80', 'not of the form host:port=permille'],
    ['=1000', 'not of the form host:port=permille'],
    ['10.0.0.1:80=700,,10.0.0.2:80=300', 'not of the form'],
    ['10.0.0.1:80=1000,', 'not of the form'],
    ['10.0.0.1=1000', 'not of the form host:port'],
    ['::1:80=1000', 'bracketed'],
    ['[zz]:80=1000', 'invalid IPv6 host'],
    ['[::1]:0=1000', 'outside 1..65535'],
    ['Replica.Example:80=1000', 'not canonical (expected replica.example:80)'],
    ['10.0.0.1:80=1000 ', 'weight must be an integer'],
  ])('refuses %j with a message', (text, fragment) => {
    const parsed = parseBinding(text);
    expect(typeof parsed).toBe('string');
    expect(parsed).toContain(fragment);
  });
  it('refuses an oversized string before splitting it', () => {
    expect(parseBinding('x'.repeat(MAX_BINDING_CHARS + 1))).toContain('characters long');
  });
  it('formats the canonical string whatever the input order and case, and refuses what would not parse', () => {
    expect(
      formatBinding([
        { address: 'B.example:1', permille: 250 },
        { address: '[::1]:9', permille: 250 },
        { address: 'a.example:1', permille: 500 },
      ]),
    ).toBe('[::1]:9=250,a.example:1=500,b.example:1=250');
    expect(() => formatBinding([])).toThrow('binding is empty');
    expect(() => formatBinding([{ address: '10.0.0.1:80', permille: 999 }])).toThrow('add up to 999');
    expect(() => formatBinding([{ address: '10.0.0.1:80', permille: 500 }, { address: '10.0.0.1:80', permille: 500 }])).toThrow('twice');
  });
  it('names the heaviest member for rebind-forward (first in order among equals)', () => {
    expect(heaviestMember([{ address: 'a:1', permille: 300 }, { address: 'b:1', permille: 700 }])).toBe('b:1');
    expect(heaviestMember([{ address: 'a:1', permille: 500 }, { address: 'b:1', permille: 500 }])).toBe('a:1');
  });
  it('recognizes the sets capability only beside the rebind token', () => {
    expect(understandsSets(`grpc-node-js/1.14 ${clientUserAgent('abcdEFGH1234')} ${SETS_UA_TOKEN}`)).toBe(true);
    expect(understandsSets(`grpc-node-js/1.14 ${clientUserAgent('abcdEFGH1234')}`)).toBe(false);
    expect(understandsSets(`grpc-go/1.60 ${SETS_UA_TOKEN}`)).toBe(false);
    expect(understandsSets(undefined)).toBe(false);
  });
  it('clientOptions() advertises sets and keeps the client id readable', () => {
    const options = clientOptions({ clientId: 'abcdEFGH1234' });
    const ua = String(options['grpc.secondary_user_agent']);
    expect(understandsSets(ua)).toBe(true);
    expect(identifyCaller(ua)).toEqual({ rebindAware: true, clientId: 'abcdEFGH1234', sets: true });
    expect(clientIdOf(options)).toBe('abcdEFGH1234');
  });
  it('is stripped from relayed responses like the other rebind trailers', () => {
    expect(REBIND_TRAILERS.has(BINDING_TRAILER)).toBe(true);
  });
});

describe('toPermille', () => {
  it('shares out exactly 1000 by largest remainder, each at least 1, dropping parts under half a per-mille', () => {
    const w = (parts: number[]) => toPermille(parts.map((load, i) => ({ address: `10.0.0.${i + 1}:1`, load }))).map((p) => p.permille);
    expect(w([1, 1, 1])).toEqual([334, 333, 333]);
    expect(w([100, 100, 100, 100])).toEqual([250, 250, 250, 250]);
    expect(w([2, 1])).toEqual([667, 333]);
    expect(w([10_000, 1])).toEqual([1000]);
    expect(w([0, 0])).toEqual([]);
    expect(w([1000, 3, 0])).toEqual([997, 3]);
    // At most 16 members: the largest parts.
    const many = w(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(many).toHaveLength(16);
    expect(many.reduce((a, b) => a + b, 0)).toBe(1000);
  });
});
