// GET /metrics: the control plane's metrics for Prometheus (control/src/metrics.ts). Devices
// and MRs come from the model (control/src/model.ts), so a scrape costs the kernel nothing
// but the memory blocks' and ports' sysfs files; what the model cost the kernel, and the MRs'
// counters summed so that they only grow, come from it too. A source that fails is logged and
// flagged in the metrics; the scrape still answers 200 with the rest.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Counter } from 'prom-client';
import { Type } from 'typebox';

import {
  listBlocks, RdmaMetrics, sysfsPortCounters, type EventHub, type HostModel, type MemoryBlock, type MetricsSources,
  type UmmunotifyView,
} from '../../../control/src/index.js';

/** How long /metrics keeps the memory blocks it read without a memory event. */
const BLOCKS_MAX_AGE_MS = 30_000;

export interface MetricsRouteOptions {
  hub: EventHub;
  model: HostModel;
  /** What processes watch through /dev/ummunotify (a scan every few seconds at most). */
  ummunotify: UmmunotifyView;
  /** MRs with series of their own at most: the rest are counted, not listed. */
  perMrLimit: number;
  /** Where the metrics' inputs come from; by default each is queried afresh per scrape. */
  sources?: Partial<MetricsSources> | undefined;
}

export const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRouteOptions> = async (app, options) => {
  const { model } = options;
  // Memory blocks change state with a memory event, which the hub hears: read again after
  // one, and every 30 s (a block hot-added comes with none). Reading every block's sysfs files
  // was a third of a scrape in a guest.
  let blocks: { at: number; value: Promise<MemoryBlock[]> } | undefined;
  const unsubscribe = options.hub.subscribe((e) => { if (e.type === 'memory') blocks = undefined; });
  app.addHook('onClose', async () => { unsubscribe(); });
  const currentBlocks = (): Promise<MemoryBlock[]> => {
    if (!blocks || Date.now() - blocks.at > BLOCKS_MAX_AGE_MS) {
      const read = { at: Date.now(), value: listBlocks() };
      // a failed read is not kept: the next scrape tries again
      read.value.catch(() => { if (blocks === read) blocks = undefined; });
      blocks = read;
    }
    return blocks.value;
  };
  const metrics = new RdmaMetrics({
    sources: {
      devices: async () => {
        await model.ready();
        if (!model.started()) throw new Error(model.status().devices_error ?? 'the device list has not been read');
        return model.devices();
      },
      mrs: async () => {
        await model.mrsReady();
        const failed = model.status().refresh.filter((r) => r.error !== null && r.refreshed_at !== null);
        if (failed.length && failed.length === model.status().refresh.length) throw new Error(failed[0]!.error!);
        return model.mrs();
      },
      blocks: currentBlocks,
      portCounters: sysfsPortCounters(),
      ummunotify: () => options.ummunotify.state(),
      ...options.sources,
    },
    events: () => options.hub.counts,
    channelUp: () => options.hub.status.state === 'open',
    perMrLimit: options.perMrLimit,
    onSourceError: ({ source, device, error }) => {
      app.log.warn({ err: error, source, device }, 'metrics: a source could not be read');
    },
  });

  // what keeping the model costs the kernel: one family each, read when scraped
  const modelCounter = (name: string, help: string, value: () => number): void => {
    new Counter({
      name, help, registers: [metrics.registry],
      collect() {
        this.reset();
        this.inc(value());
      },
    });
  };
  modelCounter('pfnic_model_dumps_total', 'Dumps of a device\'s MRs the control plane asked the kernel for', () => model.counters.dumps);
  modelCounter('pfnic_model_dump_seconds_total', 'Seconds those dumps took', () => model.counters.dump_seconds);
  modelCounter('pfnic_model_mr_queries_total', 'Single MRs the control plane asked the kernel for (named by events, or by a client)',
    () => model.counters.single_queries);
  modelCounter('pfnic_model_device_queries_total', 'Reads of the device list', () => model.counters.device_queries);
  new Counter({
    name: 'rdma_mrs_counter_total',
    help: 'A per-MR counter summed over the device\'s MRs of a kind, with what the MRs that went had counted: it only grows',
    labelNames: ['device', 'kind', 'counter'], registers: [metrics.registry],
    collect() {
      this.reset();
      for (const k of model.totals()) {
        for (const [counter, v] of Object.entries(k.counters)) this.inc({ device: k.device, kind: k.kind, counter }, v);
      }
    },
  });

  app.get('/metrics', {
    schema: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics: devices, ports and their counters, MRs, memory blocks, events, the process',
      description: 'In Prometheus\'s text format (version 0.0.4). A source that cannot be read (devices, MRs, memory blocks, a device\'s port counters, ummunotify\'s files) leaves out its series and sets rdma_scrape_error{source} to 1.',
      tags: ['metrics'],
      produces: ['text/plain'],
      response: { 200: Type.String() },
    },
  }, async (_request, reply) => {
    const text = await metrics.metrics();
    return reply.type(metrics.contentType).send(text);
  });
};
