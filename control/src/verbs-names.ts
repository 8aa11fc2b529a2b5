// Names of verbs enum values and flag bits (ABI facts from <infiniband/verbs.h> and the
// kernel's ib_verbs.h), spelled as ibv_devinfo and `rdma` print them.
import type { Flags } from './schema.js';

type Names = ReadonlyMap<number, string>;

const names = (entries: ReadonlyArray<readonly [number, string]>): Names => new Map(entries);

export const NODE_TYPES = names([
  [1, 'ca'], [2, 'switch'], [3, 'router'], [4, 'rnic'], [5, 'usnic'], [6, 'usnic_udp'], [7, 'unspecified'],
]);

export const TRANSPORTS = names([
  [0, 'InfiniBand'], [1, 'iWARP'], [2, 'usNIC'], [3, 'usNIC UDP'], [4, 'unspecified'],
]);

export const PORT_STATES = names([
  [0, 'NOP'], [1, 'DOWN'], [2, 'INIT'], [3, 'ARMED'], [4, 'ACTIVE'], [5, 'ACTIVE_DEFER'],
]);

export const PHYS_STATES = names([
  [1, 'SLEEP'], [2, 'POLLING'], [3, 'DISABLED'], [4, 'PORT_CONFIGURATION_TRAINING'],
  [5, 'LINK_UP'], [6, 'LINK_ERROR_RECOVERY'], [7, 'PHY_TEST'],
]);

export const LINK_LAYERS = names([[0, 'Unspecified'], [1, 'InfiniBand'], [2, 'Ethernet']]);

export const ATOMIC_CAPS = names([[0, 'ATOMIC_NONE'], [1, 'ATOMIC_HCA'], [2, 'ATOMIC_GLOB']]);

export const GID_TYPES = names([[0, 'IB'], [1, 'RoCE v1'], [2, 'RoCE v2']]);

export const WIDTHS = names([[1, '1X'], [2, '4X'], [4, '8X'], [8, '12X'], [16, '2X']]);

export const SPEEDS = names([
  [1, '2.5 Gbps'], [2, '5.0 Gbps'], [4, '10.0 Gbps'], [8, '10.0 Gbps'], [16, '14.0 Gbps'],
  [32, '25.0 Gbps'], [64, '50.0 Gbps'], [128, '100.0 Gbps'],
]);

/** enum ibv_mtu -> bytes */
export const mtuBytes = (mtu: number): number => (mtu >= 1 && mtu <= 5 ? 128 << mtu : 0);

export const DEVICE_CAP_FLAGS = names([
  [0, 'RESIZE_MAX_WR'], [1, 'BAD_PKEY_CNTR'], [2, 'BAD_QKEY_CNTR'], [3, 'RAW_MULTI'],
  [4, 'AUTO_PATH_MIG'], [5, 'CHANGE_PHY_PORT'], [6, 'UD_AV_PORT_ENFORCE'], [7, 'CURR_QP_STATE_MOD'],
  [8, 'SHUTDOWN_PORT'], [9, 'INIT_TYPE'], [10, 'PORT_ACTIVE_EVENT'], [11, 'SYS_IMAGE_GUID'],
  [12, 'RC_RNR_NAK_GEN'], [13, 'SRQ_RESIZE'], [14, 'N_NOTIFY_CQ'], [17, 'MEM_WINDOW'],
  [18, 'UD_IP_CSUM'], [20, 'XRC'], [21, 'MEM_MGT_EXTENSIONS'], [23, 'MEM_WINDOW_TYPE_2A'],
  [24, 'MEM_WINDOW_TYPE_2B'], [25, 'RC_IP_CSUM'], [26, 'RAW_IP_CSUM'], [29, 'MANAGED_FLOW_STEERING'],
]);

/** The 64-bit flags: the 32 above plus the bits only the extended query reports. */
export const DEVICE_CAP_FLAGS_EX = names([
  ...DEVICE_CAP_FLAGS, [34, 'RAW_SCATTER_FCS'], [36, 'PCI_WRITE_END_PADDING'],
]);

export const ODP_GENERAL_CAPS = names([[0, 'ODP_SUPPORT'], [1, 'ODP_SUPPORT_IMPLICIT']]);

/** Per-transport ODP bits; 6 and 7 are newer kernels' FLUSH and ATOMIC_WRITE. */
export const ODP_TRANSPORT_CAPS = names([
  [0, 'SUPPORT_SEND'], [1, 'SUPPORT_RECV'], [2, 'SUPPORT_WRITE'], [3, 'SUPPORT_READ'],
  [4, 'SUPPORT_ATOMIC'], [5, 'SUPPORT_SRQ_RECV'], [6, 'SUPPORT_FLUSH'], [7, 'SUPPORT_ATOMIC_WRITE'],
]);

export const PORT_CAP_FLAGS = names([
  [1, 'SM'], [2, 'NOTICE_SUP'], [3, 'TRAP_SUP'], [4, 'OPT_IPD_SUP'], [5, 'AUTO_MIGR_SUP'],
  [6, 'SL_MAP_SUP'], [7, 'MKEY_NVRAM'], [8, 'PKEY_NVRAM'], [9, 'LED_INFO_SUP'],
  [11, 'SYS_IMAGE_GUID_SUP'], [12, 'PKEY_SW_EXT_PORT_TRAP_SUP'], [14, 'EXTENDED_SPEEDS_SUP'],
  [15, 'CAP_MASK2_SUP'], [16, 'CM_SUP'], [17, 'SNMP_TUNNEL_SUP'], [18, 'REINIT_SUP'],
  [19, 'DEVICE_MGMT_SUP'], [20, 'VENDOR_CLASS_SUP'], [21, 'DR_NOTICE_SUP'], [22, 'CAP_MASK_NOTICE_SUP'],
  [23, 'BOOT_MGMT_SUP'], [24, 'LINK_LATENCY_SUP'], [25, 'CLIENT_REG_SUP'], [26, 'IP_BASED_GIDS'],
]);

export const PORT_CAP_FLAGS2 = names([
  [0, 'SET_NODE_DESC_SUP'], [1, 'INFO_EXT_SUP'], [2, 'VIRT_SUP'], [3, 'SWITCH_PORT_STATE_TABLE_SUP'],
  [4, 'LINK_WIDTH_2X_SUP'], [5, 'LINK_SPEED_HDR_SUP'], [10, 'LINK_SPEED_NDR_SUP'],
]);

/** An enum value's name, or UNKNOWN(<value>) for values newer than this table. */
export function enumName(table: Names, value: number): string {
  return table.get(value) ?? `UNKNOWN(${value})`;
}

export const hex = (value: number | bigint): string => `0x${BigInt(value).toString(16)}`;

/** Splits a mask into named bits (table keys are bit numbers) and the bits left over. */
export function decodeFlags(table: Names, value: number | bigint): Flags {
  const mask = BigInt(value);
  const found: string[] = [];
  let unknown = mask;
  for (const [bit, name] of table) {
    const b = 1n << BigInt(bit);
    if (mask & b) {
      found.push(name);
      unknown &= ~b;
    }
  }
  return { value: hex(mask), names: found, unknown: hex(unknown) };
}

/** A GUID as ibv_devinfo prints it: 045c:60ff:feab:6420. */
export function formatGuid(guid: bigint): string {
  const digits = guid.toString(16).padStart(16, '0');
  return digits.match(/.{4}/g)?.join(':') ?? digits;
}
