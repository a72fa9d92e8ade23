import { describe, expect, it } from 'vitest';
import { etcdClientOptions } from '../../src/catalog/store/etcd-client.js';
import { ConfigError, parseConfig } from '../../src/sources/config-file.js';

const parse = (store: string) => parseConfig(`store:\n${store}`, 'f.yaml');
const problems = (store: string): string[] => {
  try {
    parse(store);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
};

describe('store: in the config file', () => {
  it('defaults to sqlite; etcd takes endpoints and the /fulcrum prefix by default', () => {
    expect(parseConfig('clusters: []', 'f.yaml').store).toEqual({ kind: 'sqlite' });
    expect(parse('  kind: etcd\n  etcd: { endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379] }').store).toEqual({
      kind: 'etcd',
      etcd: { endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'], prefix: '/fulcrum' },
    });
    expect(parse('  kind: etcd\n  etcd: { endpoints: [https://e:2379], prefix: /team-a/fulcrum, tls: { ca: /ca.pem, cert: /c.pem, key: /k.pem }, username: f, passwordFile: /p }').store).toMatchObject({
      etcd: { prefix: '/team-a/fulcrum', tls: { ca: '/ca.pem' }, username: 'f', passwordFile: '/p' },
    });
  });

  it('names the field of every inconsistent setting', () => {
    expect(problems('  kind: etcd')).toEqual(['/store/etcd: required when kind is etcd']);
    expect(problems('  kind: sqlite\n  etcd: { endpoints: [http://e:2379] }')).toEqual(['/store/etcd: only valid with kind etcd']);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [] }')[0]).toMatch(/^\/store\/etcd\/endpoints: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [e:2379] }')[0]).toMatch(/^\/store\/etcd\/endpoints\/0: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379/v3] }')[0]).toMatch(/^\/store\/etcd\/endpoints\/0: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], prefix: "fulcrum" }')[0]).toMatch(/^\/store\/etcd\/prefix: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], username: u, password: p, passwordFile: /f }')).toEqual([
      '/store/etcd/passwordFile: give password or passwordFile, not both',
    ]);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], username: u }')).toEqual(['/store/etcd/username: needs password or passwordFile']);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [https://e:2379] }')).toEqual(['/store/etcd/tls/ca: required with https endpoints']);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], tls: { ca: /ca } }')).toEqual(['/store/etcd/tls: needs https endpoints']);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [https://e:2379], tls: { ca: /ca, cert: /c } }')).toEqual(['/store/etcd/tls: cert and key go together']);
    expect(problems('  kind: mysql')[0]).toMatch(/^\/store\/kind: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], compactEveryMs: 5000 }')).toEqual(['/store/etcd/compactEveryMs: 0 (off) or at least 10000']);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], compactEveryMs: -1 }')[0]).toMatch(/^\/store\/etcd\/compactEveryMs: /);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], compactEveryMs: 0 }')).toEqual([]);
    expect(problems('  kind: etcd\n  etcd: { endpoints: [http://e:2379], compactEveryMs: 60000 }')).toEqual([]);
  });

  it('builds the etcd client options, reading the files it names (a missing one fails with its path)', () => {
    const files: Record<string, string> = { '/ca': 'CA', '/c': 'CERT', '/k': 'KEY', '/p': ' s3cret\n' };
    const read = (p: string): Buffer => {
      const text = files[p];
      if (text === undefined) throw new Error('ENOENT');
      return Buffer.from(text);
    };
    const opts = etcdClientOptions({ endpoints: ['https://e:2379'], prefix: '/f', tls: { ca: '/ca', cert: '/c', key: '/k' }, username: 'u', passwordFile: '/p' }, read);
    expect(opts.hosts).toEqual(['https://e:2379']);
    expect(opts.credentials?.rootCertificate.toString()).toBe('CA');
    expect(opts.credentials?.certChain?.toString()).toBe('CERT');
    expect(opts.auth).toEqual({ username: 'u', password: 's3cret' });
    expect(() => etcdClientOptions({ endpoints: ['https://e:2379'], prefix: '/f', tls: { ca: '/missing' } }, read)).toThrow('store.etcd.tls.ca: cannot read /missing');
  });
});
