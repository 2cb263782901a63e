/**
 * Throwaway certificates for TLS tests: a CA, a server certificate for
 * 127.0.0.1/localhost and a client certificate, made with the openssl CLI.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export interface TestPki {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

/** `clientSan`: subjectAltName of the client certificate, e.g. "IP:127.0.0.1" or "DNS:replica-a.test" (none by default). */
export function makePki(options: { clientSan?: string } = {}): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'rebind-pki-'));
  const f = (name: string) => path.join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe', cwd: dir });
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=rebind test CA');
  for (const [name, cn, ext] of [
    ['server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth'],
    ['client', 'rebind test client', `extendedKeyUsage=clientAuth${options.clientSan !== undefined ? `\nsubjectAltName=${options.clientSan}` : ''}`],
  ] as const) {
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    writeFileSync(f(`${name}.ext`), `${ext}\n`);
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', f(`${name}.ext`));
  }
  return {
    dir,
    caFile: f('ca.pem'),
    serverCertFile: f('server.pem'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.pem'),
    clientKeyFile: f('client.key'),
    ca: readFileSync(f('ca.pem')),
    serverCert: readFileSync(f('server.pem')),
    serverKey: readFileSync(f('server.key')),
    clientCert: readFileSync(f('client.pem')),
    clientKey: readFileSync(f('client.key')),
  };
}
