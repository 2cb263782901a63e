/**
 * Reading a balancer configuration file: JSON (.json) or YAML (.yaml, .yml;
 * any other name is read as YAML, which accepts JSON too). Syntax errors
 * name the file, line and column; the content is then validated by
 * parseBalancerConfig, which names every invalid field.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { parseBalancerConfig, type BalancerConfig, type ConfigResult } from './config';

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
};

/** Parses configuration text; `name` is used in error messages and to pick the format. */
export function parseConfigText(text: string, name: string): ConfigResult<BalancerConfig> {
  let raw: unknown;
  if (name.endsWith('.json')) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return { ok: false, errors: [`${name}: not valid JSON: ${(err as Error).message}`] };
    }
  } else {
    try {
      raw = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
    } catch (err) {
      if (err instanceof YAMLParseError) {
        // The parser's first line already says where ("… at line 2, column 1:").
        return { ok: false, errors: [`${name}: not valid YAML: ${err.message.split('\n')[0]!.replace(/:$/, '')}`] };
      }
      return { ok: false, errors: [`${name}: not valid YAML: ${(err as Error).message}`] };
    }
  }
  const result = parseBalancerConfig(raw ?? {});
  return result.ok ? result : { ok: false, errors: result.errors.map((e) => `${name}: ${e}`) };
}

/** Reads and validates a configuration file. */
export function readConfigFile(path: string): ConfigResult<BalancerConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = READ_ERRORS[code] ?? (err as Error).message;
    return { ok: false, errors: [`cannot read configuration file ${path}: ${why}`] };
  }
  return parseConfigText(text, path);
}
