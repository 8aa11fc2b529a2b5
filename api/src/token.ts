// Makes an API token: prints it once, and keeps only its digest, in a file of the server's
// token directory (token_dir) or as an entry for the settings' "tokens".
//   npm run token -- NAME read|admin [--dir DIR]
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { newToken, tokenDigest } from './auth.js';

const usage = 'usage: npm run token -- NAME read|admin [--dir DIR]';

function fail(message: string): never {
  process.stderr.write(`${message}\n${usage}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const dirAt = args.indexOf('--dir');
const dir = dirAt >= 0 ? args.splice(dirAt, 2)[1] : undefined;
if (dirAt >= 0 && !dir) fail('--dir needs a directory');
const [name, role, ...rest] = args;
if (!name || !role || rest.length) fail('a name and a role, nothing else');
if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) fail(`"${name}": a token's name is 1 to 64 of A-Z a-z 0-9 _ . @ -`);
if (role !== 'read' && role !== 'admin') fail(`"${role}": the role is read or admin`);

const token = newToken();
const sha256 = tokenDigest(token);
if (dir) {
  const file = path.join(dir, name);
  try {
    // the digest alone is no secret, but who may add tokens is: the file is its owner's
    writeFileSync(file, `${role} ${sha256}\n`, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    fail(`cannot write ${file}: ${(err as Error).message}`);
  }
  process.stderr.write(`${file}: the token of "${name}" (${role}); the server reads it when it starts\n`);
} else {
  process.stderr.write(`for the settings' "tokens":\n${JSON.stringify({ name, role, sha256 })}\n`);
}
process.stderr.write('the token, shown this once:\n');
process.stdout.write(`${token}\n`);
