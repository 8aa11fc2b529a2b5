export * from './schema.js';
export { listDevices, getDevice, deviceFromRaw, DeviceNotFoundError } from './devices.js';
export { listMrs, getMr, parseRangeList, MrNotFoundError, type MrFilter } from './mrs.js';
export { nativeBinding, DeviceQueryError } from './native.js';
