export * from './schema.js';
export { listDevices, getDevice, deviceFromRaw, DeviceNotFoundError } from './devices.js';
export { listMrs, getMr, parseRangeList, registeredBytes, MrNotFoundError, type MrFilter } from './mrs.js';
export { nativeBinding, DeviceQueryError } from './native.js';
export {
  listBlocks, getBlock, setBlockState, BlockNotFoundError, BlockStateError, BLOCK_STATE_TIMEOUT_MS, type BlockAction,
} from './memory.js';
export {
  EventHub, eventFromAsync, eventFromChange, eventFromRecord, EVENTS_PATH, monitorOpened, type AsyncStatus, type ChannelStatus, type EventHubOptions,
  type MonitorStatus,
} from './events.js';
export {
  RdmaMetrics, sysfsPortCounters, type EventCounts, type MetricsOptions, type MetricsSources, type PortCounters, type SourceFailure,
} from './metrics.js';
export { HostModel, kernelSource, type DeviceRefresh, type ModelCounters, type MrTotals, type ModelOptions, type ModelSource } from './model.js';
export {
  UmmunotifyView, byProcess, parseFdinfo, scanUmmunotify, type ScanOptions, type UmmunotifyScan, type UmmunotifyViewOptions,
} from './ummunotify.js';
