/**
 * The floor under the balancer's CPU per load report: what a bare
 * `net.Server` costs per small read when N sockets each write one small
 * message per second (the shape of N replicas' reports on their control
 * connections), with a 'data' listener that only counts. Whatever the
 * balancer does per report comes on top of this kernel + libuv + stream
 * cost, which no change in rebind's own code can remove.
 *
 *   npx tsx bench/socket-floor.ts [--sockets 10000] [--bytes 189] [--window-ms 8000] [--rounds 3]
 *
 * 189 bytes: what the balancer reads per report in bench/hotpath.ts's gRPC
 * part (one read per report, 188.6 bytes on average: a DATA frame with the
 * gRPC-framed LoadReport of 4 top clients).
 *
 * The writers run in a child process (as the simulated replicas do in
 * bench/hotpath.ts); this process's CPU (user + system) over the window is
 * divided by the reads its 'data' listeners saw. Prints one JSON line per
 * window and the medians.
 */
import { fork } from 'node:child_process';
import * as net from 'node:net';

function flag(name: string, dflt: number, min: number, max: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i < 0 ? dflt : Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name} is ${process.argv[i + 1]}; it must be an integer in ${min}..${max}`);
  return v;
}

const SOCKETS = flag('sockets', 10_000, 1, 100_000);
const BYTES = flag('bytes', 189, 1, 65_536);
const WINDOW_MS = flag('window-ms', 8000, 1000, 600_000);
const ROUNDS = flag('rounds', 3, 1, 20);
const INTERVAL_MS = 1000;

async function writers(port: number): Promise<void> {
  const payload = Buffer.alloc(BYTES, 7);
  let open = 0;
  for (let i = 0; i < SOCKETS; i++) {
    const s = net.connect(port, '127.0.0.1', () => {
      s.setNoDelay(true);
      if (++open === SOCKETS) process.send!({ type: 'ready' });
      setTimeout(() => {
        s.write(payload);
        setInterval(() => s.write(payload), INTERVAL_MS);
      }, Math.random() * INTERVAL_MS);
    });
    s.on('error', () => undefined);
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 20));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) return writers(flag('port', 0, 1, 65_535));
  let reads = 0;
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', () => void reads++);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const child = fork(__filename, ['--child', '--port', String(port), '--sockets', String(SOCKETS), '--bytes', String(BYTES)], { execArgv: process.execArgv });
  await new Promise<void>((r) => child.on('message', () => r()));
  await new Promise((r) => setTimeout(r, 2 * INTERVAL_MS));
  const us: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    const r0 = reads;
    const c0 = process.cpuUsage();
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const c = process.cpuUsage(c0);
    const n = reads - r0;
    const w = { reads: n, usPerRead: Math.round(((c.user + c.system) / n) * 10) / 10, userUs: Math.round((c.user / n) * 10) / 10, systemUs: Math.round((c.system / n) * 10) / 10 };
    us.push(w.usPerRead);
    process.stdout.write(JSON.stringify(w) + '\n');
  }
  process.stdout.write(JSON.stringify({ sockets: SOCKETS, bytes: BYTES, medianUsPerRead: median(us) }) + '\n');
  child.kill('SIGTERM');
  server.close();
  process.exit(0);
}

void main();
