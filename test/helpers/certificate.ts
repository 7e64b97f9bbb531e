import {execFileSync} from 'node:child_process'
import {join} from 'node:path'

import {tempDir} from './stores.js'

/** A self-signed RSA certificate and its key, made with openssl in a fresh folder: paths to both PEM files. */
export function selfSignedCertificate(commonName: string, altNames: string[] = []): {keyFile: string; certFile: string} {
  const dir = tempDir('mlops-tls-')
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  execFileSync(
    'openssl',
    [
      ...[
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '2',
        '-subj',
        `/CN=${commonName}`,
      ],
      ...(altNames.length > 0 ? ['-addext', `subjectAltName=${altNames.map(name => `DNS:${name}`).join(',')}`] : []),
    ],
    {stdio: ['ignore', 'ignore', 'pipe']},
  )
  return {keyFile, certFile}
}
