// A reader for `ibv_devinfo -v` text, so tests can hold the control plane's answers against
// what rdma-core's own tool prints, field by field.

/** One "key: value" line and the indented lines under it (flag names, "Unknown flags: 0x.."). */
export interface DevinfoField {
  value: string;
  items: string[];
}

export interface DevinfoPort {
  port: number;
  fields: Map<string, DevinfoField>;
  gids: { index: number; gid: string; type: string }[];
}

export interface DevinfoDevice {
  name: string;
  fields: Map<string, DevinfoField>;
  ports: DevinfoPort[];
}

const tabs = (line: string): number => line.length - line.replace(/^\t+/, '').length;

/** Parses every device in `ibv_devinfo -v` output. */
export function parseDevinfo(text: string): DevinfoDevice[] {
  const devices: DevinfoDevice[] = [];
  let device: DevinfoDevice | undefined;
  let port: DevinfoPort | undefined;
  let last: DevinfoField | undefined;
  let lastDepth = 0;

  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const depth = tabs(line);
    const body = line.trim();
    const hca = /^hca_id:\s*(\S+)/.exec(line);
    if (hca?.[1]) {
      device = { name: hca[1], fields: new Map(), ports: [] };
      devices.push(device);
      port = undefined;
      last = undefined;
      continue;
    }
    if (!device) continue;
    const portStart = /^port:\s*(\d+)$/.exec(body);
    if (portStart?.[1]) {
      port = { port: Number(portStart[1]), fields: new Map(), gids: [] };
      device.ports.push(port);
      last = undefined;
      continue;
    }
    const gid = /^GID\[\s*(\d+)\]:\s*([^,]+),\s*(.+)$/.exec(body);
    if (gid?.[1] && gid[2] && gid[3] && port) {
      port.gids.push({ index: Number(gid[1]), gid: gid[2].trim(), type: gid[3].trim() });
      continue;
    }
    // Lines deeper than the field above them belong to it: flag names, or a sub-block.
    if (last && depth > lastDepth && !/^[a-z0-9_]+:\s*\S/.test(body)) {
      last.items.push(body);
      continue;
    }
    const kv = /^([A-Za-z0-9_ ]+?):\s*(.*)$/.exec(body);
    if (!kv?.[1]) {
      // "completion_timestamp_mask not supported" and similar sentences
      const target = port ? port.fields : device.fields;
      target.set(body, { value: '', items: [] });
      last = undefined;
      continue;
    }
    last = { value: (kv[2] ?? '').trim(), items: [] };
    lastDepth = depth;
    (port ? port.fields : device.fields).set(kv[1], last);
  }
  return devices;
}

/** "PORT_ACTIVE (4)" -> { name: "PORT_ACTIVE", code: 4 } */
export function nameAndCode(value: string): { name: string; code: number | undefined } {
  const m = /^(.*?)\s*\((\d+)\)$/.exec(value);
  return m?.[1] !== undefined ? { name: m[1], code: Number(m[2]) } : { name: value, code: undefined };
}

/** A number as ibv_devinfo prints it: decimal, or hex with 0x. */
export function devinfoNumber(value: string): bigint {
  const v = value.trim();
  return BigInt(/^0x/i.test(v) ? v.toLowerCase() : v.replace(/[^0-9].*$/, ''));
}
