import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DATA_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_DATA_CONNECTIONS,
  DEFAULT_MAX_STREAMS_PER_DATA_CONNECTION,
  DEFAULT_PROXY_CONNECT_TIMEOUT_MS,
  DEFAULT_PROXY_KEEPALIVE_TIME_MS,
  DEFAULT_PROXY_KEEPALIVE_TIMEOUT_MS,
  DEFAULT_PROXY_MAX_CONNECTIONS_PER_REPLICA,
  DEFAULT_PROXY_MAX_STREAMS_PER_CONNECTION,
  DEFAULT_PROXY_STREAM_WINDOW_BYTES,
  parseBalancerConfig,
  serializeBalancerConfig,
} from '../../src/balancer/config';

describe('proxy and data-port configuration', () => {
  it('defaults, and values given are kept and round-trip', () => {
    const defaults = parseBalancerConfig({});
    expect(defaults.ok && defaults.value.proxy).toEqual({
      keepaliveTimeMs: DEFAULT_PROXY_KEEPALIVE_TIME_MS,
      keepaliveTimeoutMs: DEFAULT_PROXY_KEEPALIVE_TIMEOUT_MS,
      connectTimeoutMs: DEFAULT_PROXY_CONNECT_TIMEOUT_MS,
      maxStreamsPerConnection: DEFAULT_PROXY_MAX_STREAMS_PER_CONNECTION,
      maxConnectionsPerReplica: DEFAULT_PROXY_MAX_CONNECTIONS_PER_REPLICA,
      streamWindowBytes: DEFAULT_PROXY_STREAM_WINDOW_BYTES,
    });
    expect(defaults.ok && defaults.value.limits).toMatchObject({
      maxDataConnections: DEFAULT_MAX_DATA_CONNECTIONS,
      maxStreamsPerDataConnection: DEFAULT_MAX_STREAMS_PER_DATA_CONNECTION,
      dataIdleTimeoutMs: DEFAULT_DATA_IDLE_TIMEOUT_MS,
    });
    const given = parseBalancerConfig({ proxy: { keepaliveTimeMs: 500, maxConnectionsPerReplica: 2 }, limits: { maxDataConnections: 50, dataIdleTimeoutMs: 1000 } });
    expect(given.ok).toBe(true);
    if (!given.ok) return;
    expect(given.value.proxy).toMatchObject({ keepaliveTimeMs: 500, maxConnectionsPerReplica: 2, connectTimeoutMs: DEFAULT_PROXY_CONNECT_TIMEOUT_MS });
    expect(given.value.limits).toMatchObject({ maxDataConnections: 50, dataIdleTimeoutMs: 1000 });
    expect(parseBalancerConfig(JSON.parse(JSON.stringify(serializeBalancerConfig(given.value))))).toEqual(given);
  });

  it('names the field and its accepted range for every bad value', () => {
    const result = parseBalancerConfig({
      proxy: { keepaliveTimeMs: 0, streamWindowBytes: 1.5, maxStreamsPerConnection: 'many', retries: 3 },
      limits: { maxDataConnections: 0, maxStreamsPerDataConnection: -1, dataIdleTimeoutMs: 10 },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual(
      expect.arrayContaining([
        'proxy.retries is not a proxy setting (accepted: keepaliveTimeMs, keepaliveTimeoutMs, connectTimeoutMs, maxStreamsPerConnection, maxConnectionsPerReplica, streamWindowBytes)',
        'proxy.keepaliveTimeMs is 0; it must be an integer >= 100 and <= 3600000 (ms)',
        'proxy.streamWindowBytes is 1.5; it must be an integer >= 1024 and <= 16777216 (bytes)',
        'proxy.maxStreamsPerConnection is "many"; it must be an integer >= 1 and <= 10000 (streams)',
        'limits.maxDataConnections is 0; it must be an integer >= 1 and <= 1000000 (connections)',
        'limits.maxStreamsPerDataConnection is -1; it must be an integer >= 1 and <= 100000 (streams)',
        'limits.dataIdleTimeoutMs is 10; it must be an integer >= 100 and <= 86400000 (ms)',
      ]),
    );
    expect(result.errors).toHaveLength(7);
    expect(parseBalancerConfig({ proxy: 'fast' })).toEqual({ ok: false, errors: ['proxy must be an object'] });
  });
});
