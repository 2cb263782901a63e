/**
 * Loads rebind's control protocol (proto/rebind/v1/control.proto) once per
 * process and exposes its service definitions, typed by the code that
 * `npm run gen:proto` generates into src/generated.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { ProtoGrpcType as ControlProto } from '../generated/control';

/** proto-loader options matching the generated types (see package.json gen:proto). */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Directory holding the project's package.json (works from src/ and dist/). */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'proto'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`rebind: cannot find the package root (proto/ and package.json) above ${__dirname}`);
}

let control: ControlProto | null = null;

/** The loaded rebind.v1 package: `Control` and `Admin` services and messages. */
export function controlProto(): ControlProto {
  if (control === null) {
    const definition = protoLoader.loadSync(path.join(packageRoot(), 'proto/rebind/v1/control.proto'), PROTO_LOADER_OPTIONS);
    control = grpc.loadPackageDefinition(definition) as unknown as ControlProto;
  }
  return control;
}
