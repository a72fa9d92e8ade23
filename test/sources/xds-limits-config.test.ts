import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../src/sources/config-file.js';

describe('server.xds.limits in the config file', () => {
  test('limits and the listen backlog reach the xDS server settings; unset ones stay for the defaults', () => {
    const { server } = parseConfig('server:\n  xds:\n    listenBacklog: 1024\n    limits: { maxStreams: 20000, maxRequestBytes: 1048576 }\n', 'f.yaml');
    expect(server.xds.listenBacklog).toBe(1024);
    expect(server.xds.limits).toEqual({ maxStreams: 20000, maxRequestBytes: 1048576 });
    expect(parseConfig('clusters: []\n', 'f.yaml').server.xds.limits).toBeUndefined();
  });

  test('an out-of-range or unknown limit fails naming its path', () => {
    expect(() => parseConfig('server: { xds: { limits: { maxStreams: 0 } } }\n', 'f.yaml')).toThrow(/f\.yaml: \/server\/xds\/limits\/maxStreams: Expected integer to be greater or equal to 1/);
    expect(() => parseConfig('server: { xds: { limits: { maxRequestBytes: 1024 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/maxRequestBytes/);
    expect(() => parseConfig('server: { xds: { limits: { maxStream: 5 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits/);
    expect(() => parseConfig('server: { xds: { limits: { ipv6PeerPrefixLength: 129 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/ipv6PeerPrefixLength/);
    expect(parseConfig('server: { xds: { limits: { ipv6PeerPrefixLength: 128 } } }\n', 'f.yaml').server.xds.limits).toEqual({ ipv6PeerPrefixLength: 128 });
  });

  test('report budgets: a burst smaller than one full batch (10,000 samples), a rate or LRS burst below 1, are refused', () => {
    expect(() => parseConfig('server: { xds: { limits: { reportBurstSamplesPerPeer: 9999 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/reportBurstSamplesPerPeer: Expected integer to be greater or equal to 10000/);
    expect(() => parseConfig('server: { xds: { limits: { reportSamplesPerSecondPerPeer: 0 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/reportSamplesPerSecondPerPeer/);
    expect(() => parseConfig('server: { xds: { limits: { loadReportBurst: 0 } } }\n', 'f.yaml')).toThrow(/\/server\/xds\/limits\/loadReportBurst/);
    const limits = { reportSamplesPerSecondPerPeer: 5000, reportBurstSamplesPerPeer: 10000, loadReportBurst: 3 };
    expect(parseConfig(`server: { xds: { limits: ${JSON.stringify(limits)} } }\n`, 'f.yaml').server.xds.limits).toEqual(limits);
  });
});
