/**
 * The Python benchmark client (bench/workers/prime_client.py): Debian's
 * python3-grpcio (gRPC C core) run by /usr/bin/python3, speaking the Node
 * workers' protocol as line-delimited JSON over stdio (Worker.startProcess).
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { packageRoot } from '../../src/common/proto';
import { PRIME } from './prime';
import { Worker } from './processes';

/** The interpreter with Debian's python3-grpcio (test/support/install-python-grpc.sh installs it). */
export const PYTHON = '/usr/bin/python3';

/** The worker script, from the sources (tsc does not copy it into dist/). */
export const PYTHON_CLIENT = path.join(packageRoot(), 'bench/workers/prime_client.py');

/** grpcio's version, or why there is none (a variant that needs it is skipped with this reason). */
export function pythonGrpcVersion(): string | { missing: string } {
  try {
    return execFileSync(PYTHON, ['-c', 'import grpc; print(grpc.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return { missing: `${PYTHON} cannot import grpc: install python3-grpcio (test/support/install-python-grpc.sh, as root)` };
  }
}

/**
 * Starts a Python client of `target` (xds:///<group> with GRPC_XDS_BOOTSTRAP_CONFIG
 * in `env`, or ipv4:127.0.0.1:<port>); one process is one channel and, through
 * xDS, one node.
 */
export async function startPythonClient(name: string, target: string, env: Record<string, string> = {}): Promise<Worker> {
  const { worker } = await Worker.startProcess(name, PYTHON, [PYTHON_CLIENT, '--target', target, '--number', String(PRIME)], env);
  return worker;
}
