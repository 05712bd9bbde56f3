/**
 * A self-signed certificate for 127.0.0.1 and localhost, made with openssl in a temporary
 * directory: what a test's HTTPS server presents and what its client trusts (a `ca` option, or
 * NODE_EXTRA_CA_CERTS for a child process).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface TestCertificate {
  certFile: string;
  keyFile: string;
  certPem: string;
  remove(): Promise<void>;
}

export async function makeTestCertificate(): Promise<TestCertificate> {
  const dir = await mkdtemp(join(tmpdir(), 'herald-cert-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return {
    certFile,
    keyFile,
    certPem: await readFile(certFile, 'utf8'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
