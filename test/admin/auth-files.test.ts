import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { authWithFiles } from '../../src/admin/auth.js';

describe('admin tokens from files', () => {
  it('merges tokens read from files (comma or newline separated) with the environment ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-tokens-'));
    try {
      await writeFile(join(dir, 'admin'), 'a1\na2\n');
      await writeFile(join(dir, 'read'), 'r1, r2');
      await writeFile(join(dir, 'proxy'), 'p1\n');
      const auth = authWithFiles(
        { adminTokens: ['env-admin'], readTokens: [], reportTokens: [], proxyTokens: ['env-proxy'] },
        { admin: join(dir, 'admin'), read: join(dir, 'read'), proxy: join(dir, 'proxy') },
      );
      expect(auth).toEqual({ adminTokens: ['env-admin', 'a1', 'a2'], readTokens: ['r1', 'r2'], reportTokens: [], proxyTokens: ['env-proxy', 'p1'] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start with an unreadable token file rather than open the API', () => {
    expect(() => authWithFiles({ adminTokens: [], readTokens: [] }, { admin: '/nonexistent/fulcrum-token' })).toThrow(
      /server\.admin\.tokenFiles\.admin: cannot read \/nonexistent\/fulcrum-token/,
    );
  });

  it('refuses to start with a token file that holds no token (an empty Secret key) rather than open the API', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-tokens-'));
    try {
      for (const [name, text] of [['empty', ''], ['blank', ' \n\r\n'], ['commas', ',,\n']] as const) {
        const file = join(dir, name);
        await writeFile(file, text);
        expect(() => authWithFiles({ adminTokens: [], readTokens: [] }, { admin: file })).toThrow(`server.admin.tokenFiles.admin: ${file} holds no token`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
