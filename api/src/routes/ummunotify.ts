// What the host's processes watch through /dev/ummunotify (control/src/ummunotify.ts): the
// files, what each watches and how much changed, by process. A walk of the processes is
// reused for a few seconds; "Cache-Control: no-cache" asks for a new one, which the view
// still spaces out.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import type { UmmunotifyView } from '../../../control/src/index.js';
import { sendProblem } from '../problem.js';
import { ErrorReply, UmmunotifyState } from '../schemas.js';

export interface UmmunotifyRouteOptions {
  view: UmmunotifyView;
}

export const ummunotifyRoutes: FastifyPluginAsyncTypebox<UmmunotifyRouteOptions> = async (app, options) => {
  app.get('/v1/ummunotify', {
    schema: {
      operationId: 'getUmmunotify',
      summary: 'What the host\'s processes watch through /dev/ummunotify: each open file\'s ranges and bytes watched, ' +
        'ranges changed and not read yet, changes and records read ever; the same by process, and totals',
      tags: ['ummunotify'],
      response: { 200: UmmunotifyState, 503: ErrorReply },
    },
  }, async (request, reply) => {
    const fresh = /(^|,)\s*no-cache\s*(,|$)/i.test(request.headers['cache-control'] ?? '');
    let state;
    try {
      state = await options.view.state(fresh ? 0 : undefined);
    } catch (err) {
      request.log.warn({ err }, 'the processes could not be walked for ummunotify files');
      return sendProblem(request, reply, 503, `the processes could not be walked: ${(err as Error).message}`);
    }
    reply.header('cache-control', 'private, no-cache');
    reply.header('x-data-age', String(Math.max(0, Math.floor((Date.now() - Date.parse(state.scanned_at)) / 1000))));
    return state;
  });
};
