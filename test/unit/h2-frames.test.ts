import { describe, expect, it } from 'vitest';
import { ErrorCode, FrameReader, FrameType, frame, H2ConnectionError, headersFrames, type FrameSink } from '../../src/h2/frames.js';

class Collect implements FrameSink {
  frames: { type: number; flags: number; sid: number; payload: Buffer }[] = [];
  onFrame(type: number, flags: number, sid: number, payload: Buffer): void {
    this.frames.push({ type, flags, sid, payload });
  }
}

describe('FrameReader', () => {
  const frames = [frame(FrameType.PING, 0, 0, Buffer.from('12345678')), frame(FrameType.DATA, 1, 3, Buffer.alloc(1000, 7)), frame(FrameType.SETTINGS, 1, 0)];
  const wire = Buffer.concat(frames);

  it('parses many frames in one chunk without copying payloads', () => {
    const c = new Collect();
    new FrameReader(c).push(wire);
    expect(c.frames.map((f) => [f.type, f.flags, f.sid, f.payload.length])).toEqual([
      [6, 0, 0, 8],
      [0, 1, 3, 1000],
      [4, 1, 0, 0],
    ]);
    // A view of the chunk, not a copy.
    expect(c.frames[1]!.payload.buffer).toBe(wire.buffer);
  });

  it('parses the same frames split at every byte boundary', () => {
    for (let cut = 1; cut < wire.length; cut += 7) {
      for (const step of [1, 3, cut]) {
        const c = new Collect();
        const r = new FrameReader(c);
        for (let i = 0; i < wire.length; i += step) r.push(wire.subarray(i, Math.min(wire.length, i + step)));
        expect(c.frames.map((f) => f.payload.toString('hex'))).toEqual(frames.map((f) => f.subarray(9).toString('hex')));
        expect(r.bufferedBytes).toBe(0);
      }
    }
  });

  it('refuses a frame above the max frame size with FRAME_SIZE_ERROR before buffering it', () => {
    const r = new FrameReader(new Collect(), 16384);
    const hdr = frame(FrameType.DATA, 0, 1).subarray(0, 9);
    hdr[0] = 0x00; hdr[1] = 0x40; hdr[2] = 0x01; // 16385
    try {
      r.push(hdr);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(H2ConnectionError);
      expect((e as H2ConnectionError).code).toBe(ErrorCode.FRAME_SIZE_ERROR);
    }
  });
});

describe('headersFrames', () => {
  it('splits a block above the max frame size into HEADERS + CONTINUATION with END_HEADERS on the last', () => {
    const block = Buffer.alloc(40000, 1);
    const c = new Collect();
    new FrameReader(c, 16384).push(headersFrames(5, block, true, 16384));
    expect(c.frames.map((f) => [f.type, f.flags, f.sid, f.payload.length])).toEqual([
      [1, 1, 5, 16384],
      [9, 0, 5, 16384],
      [9, 4, 5, 40000 - 32768],
    ]);
  });
});
