export * from './schema.js';
export { listDevices, getDevice, deviceFromRaw, nativeBinding, DeviceNotFoundError, DeviceQueryError } from './devices.js';
