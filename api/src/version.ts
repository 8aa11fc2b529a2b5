import { readFileSync } from 'node:fs';

/** The project's version, from package.json (found from source and from dist/). */
function readVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      if (typeof pkg === 'object' && pkg !== null && 'name' in pkg && pkg.name === 'pfnic' &&
          'version' in pkg && typeof pkg.version === 'string') {
        return pkg.version;
      }
    } catch {
      // not at this depth; try the next
    }
  }
  return 'unknown';
}

export const version = readVersion();
