/** Argument parsers for the CLI: each failure says what is accepted. */
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parseListenAddress } from '../common/address';

export function hostPort(value: string): string {
  const parsed = parseListenAddress(value);
  if (typeof parsed === 'string') throw new InvalidArgumentError(`${parsed}; expected host:port, e.g. 127.0.0.1:50052`);
  return value;
}

export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/** Control-plane credentials from the common flags (--token, --token-file, REBIND_TOKEN, --tls-*). */
export interface ControlAuthOptions {
  token?: string;
  tokenFile?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
}

export function addControlAuthOptions(command: Command): Command {
  return command
    .option('--token <token>', "the balancer's control token (default: $REBIND_TOKEN)")
    .option('--token-file <file>', 'read the control token from a file')
    .option('--tls-ca <file>', "CA of the balancer's control port certificate (turns TLS on)")
    .option('--tls-cert <file>', 'client certificate for mTLS')
    .option('--tls-key <file>', 'client key for mTLS');
}

export function controlToken(opts: ControlAuthOptions): string | undefined {
  if (opts.token !== undefined) return opts.token;
  if (opts.tokenFile !== undefined) {
    try {
      return readFileSync(opts.tokenFile, 'utf8').trim();
    } catch (err) {
      throw new Error(`cannot read --token-file ${opts.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const env = process.env['REBIND_TOKEN'];
  return env !== undefined && env !== '' ? env : undefined;
}

export function controlCredentials(opts: ControlAuthOptions): grpc.ChannelCredentials {
  if (opts.tlsCa === undefined) {
    if (opts.tlsCert !== undefined || opts.tlsKey !== undefined) throw new Error('--tls-cert and --tls-key need --tls-ca');
    return grpc.credentials.createInsecure();
  }
  const read = (file: string, flag: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) throw new Error('--tls-cert and --tls-key go together');
  return grpc.credentials.createSsl(
    read(opts.tlsCa, '--tls-ca'),
    opts.tlsKey !== undefined ? read(opts.tlsKey, '--tls-key') : null,
    opts.tlsCert !== undefined ? read(opts.tlsCert, '--tls-cert') : null,
  );
}
