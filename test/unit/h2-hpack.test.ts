import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder, HpackError, HUFFMAN_CODES, huffmanDecode, huffmanEncode } from '../../src/h2/hpack.js';

/** RFC 7541 Appendix C vectors: hex block, dynamic table size after it, decoded list. */
const RFC7541_C: { id: string; hex: string; size: number; headers: [string, string][] }[] = [
  { id: 'C.3.1', hex: '828684410f7777772e6578616d706c652e636f6d', size: 57, headers: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']] },
  { id: 'C.3.2', hex: '828684be58086e6f2d6361636865', size: 110, headers: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']] },
  { id: 'C.3.3', hex: '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565', size: 164, headers: [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']] },
  { id: 'C.4.1', hex: '828684418cf1e3c2e5f23a6ba0ab90f4ff', size: 57, headers: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']] },
  { id: 'C.4.2', hex: '828684be5886a8eb10649cbf', size: 110, headers: [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']] },
  { id: 'C.4.3', hex: '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf', size: 164, headers: [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']] },
  { id: 'C.5.1', hex: '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d', size: 222, headers: [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']] },
  { id: 'C.5.2', hex: '4803333037c1c0bf', size: 222, headers: [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']] },
  { id: 'C.5.3', hex: '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31', size: 215, headers: [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']] },
  { id: 'C.6.1', hex: '488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3', size: 222, headers: [[':status', '302'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']] },
  { id: 'C.6.2', hex: '4883640effc1c0bf', size: 222, headers: [[':status', '307'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'], ['location', 'https://www.example.com']] },
  { id: 'C.6.3', hex: '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007', size: 215, headers: [[':status', '200'], ['cache-control', 'private'], ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']] },
];

function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

function decodeOne(hex: string, dec = new HpackDecoder()): string[] {
  const out: string[] = [];
  dec.decode(Buffer.from(hex, 'hex'), out);
  return out;
}

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.3-C.6: fields and dynamic table size after each block (C.5/C.6 with a 256-byte table, evicting)', () => {
    let dec = new HpackDecoder();
    for (const v of RFC7541_C) {
      if (v.id.endsWith('.1')) dec = new HpackDecoder(v.id >= 'C.5' ? 256 : 4096);
      const out: string[] = [];
      expect(dec.decode(Buffer.from(v.hex, 'hex'), out), v.id).toBe(true);
      expect(pairs(out), v.id).toEqual(v.headers);
      expect(dec.dynamicTableSizeBytes, v.id).toBe(v.size);
    }
    // After C.6.3 the table holds 3 entries, newest first (RFC 7541 C.6.3).
    expect(dec.dynamicTableLength).toBe(3);
    expect(dec.dynamicEntry(1)).toEqual(['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']);
    expect(dec.dynamicEntry(3)).toEqual(['date', 'Mon, 21 Oct 2013 20:13:22 GMT']);
  });

  it('Huffman codes match the RFC table for spot symbols, and every byte round-trips', () => {
    expect(HUFFMAN_CODES[0]).toBe(0x1ff8);
    expect(HUFFMAN_CODES[10]).toBe(0x3ffffffc);
    expect(HUFFMAN_CODES[48]).toBe(0x0);
    expect(HUFFMAN_CODES[255]).toBe(0x3ffffee);
    expect(HUFFMAN_CODES[256]).toBe(0x3fffffff);
    let all = '';
    for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
    const enc = huffmanEncode(all);
    expect(huffmanDecode(enc, 0, enc.length)).toBe(all);
  });
});

describe('HPACK decoder: malformed input is a COMPRESSION_ERROR', () => {
  const bad: [string, string, number?][] = [
    ['truncated string', '410f7777'],
    ['truncated integer', '7f'],
    ['index 0', '80'],
    ['index beyond the tables', 'be'],
    ['name index beyond the tables', '7e0161'],
    ['integer overflow', '7fffffffffff0f'],
    // 'a' (00011) + 7 bits of padding that are not all ones
    ['Huffman padding not all ones', '0001618118'],
    // 8 bits of all-ones padding (a whole extra byte) is more than 7 bits
    ['Huffman padding longer than 7 bits', '000161821fff'],
    // EOS (30 ones) inside the data
    ['EOS in Huffman data', '00016184ffffffff'],
    ['size update above the advertised limit', '3fe21f'],
    ['size update after a field', '823f01'],
  ];
  for (const [what, hex] of bad) {
    it(what, () => {
      expect(() => decodeOne(hex)).toThrow(HpackError);
      try {
        decodeOne(hex);
      } catch (e) {
        expect((e as HpackError).code).toBe(0x9);
      }
    });
  }

  it('a size update within the limit at block start is accepted and evicts', () => {
    const dec = new HpackDecoder();
    decodeOne('828684410f7777772e6578616d706c652e636f6d', dec);
    expect(dec.dynamicTableLength).toBe(1);
    expect(decodeOne('20', dec)).toEqual([]);
    expect(dec.dynamicTableLength).toBe(0);
  });
});

describe('HPACK decoder: header list size bound', () => {
  it('stops materialising beyond the bound (HPACK bomb) but keeps the table in sync', () => {
    const dec = new HpackDecoder(4096, 1000);
    // Insert one 3000-byte value (literal with incremental indexing, new name 'x').
    const big = 'v'.repeat(3000);
    const insert = Buffer.concat([Buffer.from([0x40, 0x01, 0x78, 0x7f]), Buffer.from([3000 - 127 - 128 * Math.floor((3000 - 127) / 128) + 0x80, Math.floor((3000 - 127) / 128)]), Buffer.from(big)]);
    const out: string[] = [];
    expect(dec.decode(insert, out)).toBe(false);
    expect(out).toEqual([]);
    expect(dec.dynamicTableLength).toBe(1);
    // Now 1000 one-byte references to it: 3 MB of headers from 1 KB.
    const bomb = Buffer.alloc(1000, 0xbe);
    const out2: string[] = [];
    expect(dec.decode(bomb, out2)).toBe(false);
    expect(out2).toEqual([]);
    expect(dec.lastListSizeBytes).toBe(1000 * (1 + 3000 + 32));
    // The table is intact: the next block decodes.
    const out3: string[] = [];
    expect(dec.decode(Buffer.from('82', 'hex'), out3)).toBe(true);
    expect(out3).toEqual([':method', 'GET']);
  });
});

describe('HPACK encoder', () => {
  it('uses static indexes and literals without indexing, decodable by a fresh decoder every time', () => {
    const block = HpackEncoder.encode({ 'content-type': 'application/grpc', ':status': '200', 'grpc-status': '0' });
    // :status 200 is static entry 8, fully indexed; it comes first.
    expect(block[0]).toBe(0x88);
    for (let i = 0; i < 3; i++) {
      const dec = new HpackDecoder();
      const out: string[] = [];
      dec.decode(block, out);
      expect(pairs(out)).toEqual([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '0']]);
      expect(dec.dynamicTableLength).toBe(0);
    }
  });

  it('folds upper-case names, repeats array values, encodes long values and numbers, refuses non-latin1 text', () => {
    const long = 'v'.repeat(300);
    const block = HpackEncoder.encode({ 'X-Custom': long, ':path': '/p', 'set-cookie': ['a=1', 'b=2'], 'content-length': 42 });
    const out: string[] = [];
    new HpackDecoder().decode(block, out);
    expect(pairs(out)).toEqual([[':path', '/p'], ['x-custom', long], ['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['content-length', '42']]);
    const list = HpackEncoder.encode([[':method', 'POST'], ['Grpc-Status', '0']]);
    const out2: string[] = [];
    new HpackDecoder().decode(list, out2);
    expect(pairs(out2)).toEqual([[':method', 'POST'], ['grpc-status', '0']]);
    expect(() => HpackEncoder.encode({ 'x-a': 'snowman \u2603' })).toThrow(TypeError);
    // A failed encode leaves the next one intact.
    expect(HpackEncoder.encode({ ':status': 200 })).toEqual(Buffer.from([0x88]));
  });
});
