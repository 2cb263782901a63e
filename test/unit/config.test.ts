import { describe, expect, it } from 'vitest';
import { parseBalancerConfig, serializeBalancerConfig } from '../../src/balancer/config';

const valid = {
  listen: '127.0.0.1:50051',
  controlListen: '127.0.0.1:50052',
  groups: [
    { name: 'stock.SessionFactory', granularity: 'on-demand', strategy: { name: 'minimum_dispersion', params: { tolerance: 0.05 } }, dampening: 0.3, reportIntervalMs: 500 },
    { name: 'quotes', granularity: 'per-request', strategy: 'round_robin' },
  ],
};

describe('balancer configuration', () => {
  it('fills defaults and keeps what was given', () => {
    const result = parseBalancerConfig(valid);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const [a, b] = result.value.groups;
    expect(a).toMatchObject({ granularity: 'on-demand', dampening: 0.3, reportIntervalMs: 500, metric: 'calls_per_s' });
    expect(a!.strategy).toEqual({ name: 'minimum_dispersion', params: { tolerance: 0.05, minGain: 0.02, maxMoves: 32 } });
    expect(b).toMatchObject({ granularity: 'per-request', strategy: { name: 'round_robin', params: {} }, reportIntervalMs: 1000, dampening: 0.5 });
  });

  it('xds: defaults, given values kept, each bad field named with its range', () => {
    const defaults = parseBalancerConfig(valid);
    expect(defaults.ok && defaults.value.xds).toEqual({ enabled: true, maxStreams: 10_000, maxNamesPerType: 64, allowUnauthenticated: false });
    const given = parseBalancerConfig({ ...valid, xds: { enabled: false, maxStreams: 5, maxNamesPerType: 2, allowUnauthenticated: true } });
    expect(given.ok && given.value.xds).toEqual({ enabled: false, maxStreams: 5, maxNamesPerType: 2, allowUnauthenticated: true });
    const bad = parseBalancerConfig({ ...valid, xds: { enabled: 'yes', maxStreams: 0, maxNamesPerType: 1.5, port: 1 } });
    expect(bad.ok).toBe(false);
    if (bad.ok) return;
    expect(bad.errors.filter((e) => e.startsWith('xds.'))).toEqual([
      'xds.port is not an xds setting (accepted: enabled, allowUnauthenticated, maxStreams, maxNamesPerType)',
      'xds.enabled must be true or false',
      expect.stringMatching(/^xds\.maxStreams .*1.*1000000/),
      expect.stringMatching(/^xds\.maxNamesPerType .*integer/),
    ]);
    if (!given.ok) return;
    const round = parseBalancerConfig(JSON.parse(JSON.stringify(serializeBalancerConfig(given.value))));
    expect(round.ok && round.value.xds).toEqual({ enabled: false, maxStreams: 5, maxNamesPerType: 2, allowUnauthenticated: true });
  });

  it('round-trips: parse -> serialize -> parse gives the same configuration', () => {
    const first = parseBalancerConfig(valid);
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    const again = parseBalancerConfig(JSON.parse(JSON.stringify(serializeBalancerConfig(first.value))));
    expect(again).toEqual(first);
  });

  it.each([
    [{ listen: 'nope' }, 'listen: address "nope" is not of the form host:port'],
    [{ controlListen: 5 }, 'controlListen is 5; it must be a host:port string'],
    [{ limits: { maxMemberSeries: -1 } }, 'limits.maxMemberSeries is -1; it must be an integer >= 0 and <= 100000 (members)'],
    [{ limits: { maxMemberSeries: 1.5 } }, 'limits.maxMemberSeries is 1.5; it must be an integer >= 0 and <= 100000 (members)'],
    [{ groups: {} }, 'groups must be an array'],
    [{ groups: [{}] }, 'groups[0].name is undefined'],
    [{ groups: [{ name: 'a' }, { name: 'a' }] }, 'groups[1].name "a" is listed twice'],
    [{ groups: [{ name: 'a', granularity: 'sometimes' }] }, 'groups[0].granularity is "sometimes"; it must be one of per-session, per-request, on-demand'],
    [{ groups: [{ name: 'a', strategy: 'best' }] }, 'groups[0].strategy.name is "best"; it must be one of round_robin, random, least_loaded, load_minimum, load_average, minimum_dispersion, p2c'],
    [{ groups: [{ name: 'a', strategy: { name: 'minimum_dispersion', params: { tolerance: -1 } } }] }, 'groups[0].strategy.params.tolerance is -1; it must be a number >= 0 and <= 10'],
    [{ groups: [{ name: 'a', strategy: { name: 'minimum_dispersion', params: { speed: 1 } } }] }, 'groups[0].strategy.params.speed is not a parameter of strategy minimum_dispersion'],
    [{ groups: [{ name: 'a', strategy: { name: 'round_robin', extra: 1 } }] }, 'groups[0].strategy.extra is not a strategy setting'],
    [{ groups: [{ name: 'a', metric: 'bogomips' }] }, 'groups[0].metric is "bogomips"; it must be one of calls_per_s'],
    [{ groups: [{ name: 'a', dampening: 1 }] }, 'groups[0].dampening is 1; it must be a number >= 0 and < 1'],
    [{ groups: [{ name: 'a', dampening: 'high' }] }, 'groups[0].dampening is "high"'],
    [{ groups: [{ name: 'a', reportIntervalMs: 5 }] }, 'groups[0].reportIntervalMs is 5; it must be an integer >= 10 and <= 600000 (ms)'],
    [{ groups: [{ name: 'a', reportIntervalMs: 100.5 }] }, 'groups[0].reportIntervalMs is 100.5; it must be an integer'],
    [{ groups: [{ name: 'a', missedReports: 0 }] }, 'groups[0].missedReports is 0'],
    [{ groups: [{ name: 'a', holdMs: -1 }] }, 'groups[0].holdMs is -1'],
    [{ groups: [{ name: 'a', topClients: 0 }] }, 'groups[0].topClients is 0'],
    [{ groups: [{ name: 'a', maxMembers: 1e9 }] }, 'groups[0].maxMembers is 1000000000'],
    [{ groups: [{ name: 'a', colour: 'red' }] }, 'groups[0].colour is not a group setting'],
    [{ autoCreateGroups: 'yes' }, 'autoCreateGroups is "yes"; it must be true or false'],
    [{ groupDefaults: { name: 'x' } }, 'groupDefaults.name is not a group setting'],
    [{ port: 1 }, 'port is not a configuration setting'],
    [
      { adminListen: '0.0.0.0:50053', security: { adminUnauthenticatedChanges: true } },
      'security.adminUnauthenticatedChanges is true but adminListen "0.0.0.0:50053" is not a loopback address',
    ],
    [{ adminListen: '[::]:0', security: { adminUnauthenticatedChanges: true } }, 'security.adminUnauthenticatedChanges is true but adminListen "[::]:0" is not a loopback address'],
    [{ adminListen: '10.1.2.3:0', security: { adminUnauthenticatedChanges: true } }, 'security.adminUnauthenticatedChanges is true but adminListen "10.1.2.3:0"'],
    [{ adminListen: 'admin.example:0', security: { adminUnauthenticatedChanges: true } }, 'security.adminUnauthenticatedChanges is true but adminListen "admin.example:0"'],
    [{ security: { adminUnauthenticatedChanges: 'yes' } }, 'security.adminUnauthenticatedChanges is "yes"; it must be true or false'],
    [{ security: { adminHosts: 'dash.example' } }, 'security.adminHosts must be an array of at most 64'],
    [{ security: { adminHosts: Array.from({ length: 65 }, (_, i) => `h${i}.example`) } }, 'security.adminHosts must be an array of at most 64'],
    [{ security: { adminHosts: ['ok.example', 'not a host'] } }, 'security.adminHosts[1] is "not a host"; it must be a host name'],
    [{ security: { adminHosts: ['::1'] } }, 'security.adminHosts[0] is "::1"; it must be a host name, an IPv4 address or a [bracketed] IPv6 address'],
    [{ security: { adminHosts: ['dash.example:99999'] } }, 'security.adminHosts[0] is "dash.example:99999"'],
    [{ security: { adminHosts: [7] } }, 'security.adminHosts[0] is 7; it must be a string'],
  ])('refuses %j naming the field', (raw, message) => {
    const result = parseBalancerConfig(raw);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.join('\n')).toContain(message);
  });

  it('reports every invalid field, not just the first', () => {
    const result = parseBalancerConfig({ listen: 'x', groups: [{ name: 'a', dampening: 2, reportIntervalMs: 0 }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toHaveLength(3);
  });

  it.each(['127.0.0.1:0', '127.8.9.10:50053', 'localhost:0', '[::1]:0', 'LocalHost:0'])('accepts the unauthenticated-changes opt-in on loopback %s', (adminListen) => {
    const result = parseBalancerConfig({ adminListen, security: { adminUnauthenticatedChanges: true } });
    expect(result).toMatchObject({ ok: true, value: { security: { adminUnauthenticatedChanges: true } } });
  });

  it('accepts the opt-in with no admin port, and keeps the admin settings through a round trip', () => {
    expect(parseBalancerConfig({ adminListen: null, security: { adminUnauthenticatedChanges: true } }).ok).toBe(true);
    const first = parseBalancerConfig({ ...valid, security: { adminHosts: ['Dash.Example', 'proxy.example:8443', '[fd00::1]', '10.0.0.5:50053'], adminUnauthenticatedChanges: true } });
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    expect(first.value.security.adminHosts).toEqual(['dash.example', 'proxy.example:8443', '[fd00::1]', '10.0.0.5:50053']);
    expect(parseBalancerConfig(JSON.parse(JSON.stringify(serializeBalancerConfig(first.value))))).toEqual(first);
    // The defaults: no extra names, no unauthenticated changes.
    const plain = parseBalancerConfig(valid);
    expect(plain).toMatchObject({ ok: true, value: { security: { adminHosts: [], adminUnauthenticatedChanges: false } } });
  });

  it('ha: absent by default; defaults filled, given values kept and round-tripped', () => {
    const plain = parseBalancerConfig(valid);
    expect(plain.ok && plain.value.ha).toBe(null);
    const min = parseBalancerConfig({ ...valid, ha: { etcd: { endpoints: ['http://127.0.0.1:2379'] } } });
    expect(min.ok && min.value.ha).toEqual({
      etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/rebind/', tls: null, auth: null },
      balancerId: null,
      leaseTtlMs: 2000,
      keyRotationMs: 86_400_000,
    });
    const full = parseBalancerConfig({
      ...valid,
      ha: {
        etcd: { endpoints: ['https://etcd-a:2379', 'https://etcd-b:2379/'], prefix: '/prod/rebind/', tls: { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem' }, auth: { username: 'rebind', passwordFile: 'pw' } },
        balancerId: 'lb-1.eu_west',
        leaseTtlMs: 5000,
        keyRotationMs: 3_600_000,
      },
    });
    expect(full.ok).toBe(true);
    if (!full.ok) return;
    expect(full.value.ha).toEqual({
      etcd: { endpoints: ['https://etcd-a:2379', 'https://etcd-b:2379'], prefix: '/prod/rebind/', tls: { caFile: 'ca.pem', certFile: 'c.pem', keyFile: 'k.pem' }, auth: { username: 'rebind', passwordFile: 'pw' } },
      balancerId: 'lb-1.eu_west',
      leaseTtlMs: 5000,
      keyRotationMs: 3_600_000,
    });
    expect(parseBalancerConfig(JSON.parse(JSON.stringify(serializeBalancerConfig(full.value))))).toEqual(full);
  });

  it.each([
    [{ ha: 'etcd' }, 'ha must be an object'],
    [{ ha: {} }, 'ha.etcd is undefined; it must be an object with endpoints'],
    [{ ha: { etcd: { endpoints: [] } } }, 'ha.etcd.endpoints must be a list of 1-16 URLs'],
    [{ ha: { etcd: { endpoints: ['127.0.0.1:2379'] } } }, 'ha.etcd.endpoints[0] is "127.0.0.1:2379"; it must be a URL http(s)://host:port'],
    [{ ha: { etcd: { endpoints: ['http://a:1', 'https://b:1'] } } }, 'ha.etcd.endpoints mix http and https'],
    [{ ha: { etcd: { endpoints: ['http://a:1'], prefix: 'rebind' } } }, 'ha.etcd.prefix is "rebind"; it must be 1-100 characters of letters, digits, . _ / -, ending with /'],
    [{ ha: { etcd: { endpoints: ['http://a:1'], tls: { certFile: 'c' } } } }, 'ha.etcd.tls.caFile is missing'],
    [{ ha: { etcd: { endpoints: ['http://a:1'], tls: { caFile: 'ca', certFile: 'c' } } } }, 'ha.etcd.tls.certFile and ha.etcd.tls.keyFile go together'],
    [{ ha: { etcd: { endpoints: ['http://a:1'], auth: { username: 'u', password: 'p' } } } }, 'ha.etcd.auth must be { username: 1-128 characters, passwordFile: a file path }'],
    [{ ha: { etcd: { endpoints: ['http://a:1'], hosts: [] } } }, 'ha.etcd.hosts is not an etcd setting (accepted: endpoints, prefix, tls, auth)'],
    [{ ha: { etcd: { endpoints: ['http://a:1'] }, balancerId: 'a b' } }, 'ha.balancerId is "a b"; it must be 1-64 characters of letters, digits, . _ -'],
    [{ ha: { etcd: { endpoints: ['http://a:1'] }, leaseTtlMs: 500 } }, 'ha.leaseTtlMs is 500; it must be an integer >= 1000 and <= 60000 (ms, whole seconds)'],
    [{ ha: { etcd: { endpoints: ['http://a:1'] }, leaseTtlMs: 2500 } }, 'ha.leaseTtlMs is 2500; it must be whole seconds'],
    [{ ha: { etcd: { endpoints: ['http://a:1'] }, keyRotationMs: 1000 } }, 'ha.keyRotationMs is 1000; it must be an integer >= 60000'],
    [{ ha: { etcd: { endpoints: ['http://a:1'] }, leader: true } }, 'ha.leader is not an ha setting (accepted: etcd, balancerId, leaseTtlMs, keyRotationMs)'],
  ])('ha: refuses %j naming the field and its range', (ha, message) => {
    const result = parseBalancerConfig({ ...valid, ...ha });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.join('\n')).toContain(message);
  });

  it('refuses a non-object', () => {
    expect(parseBalancerConfig('listen: 1')).toEqual({ ok: false, errors: ['configuration must be an object'] });
  });
});
