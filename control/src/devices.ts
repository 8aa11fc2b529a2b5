// The typed facade over the native binding: every RDMA device the host has (rxe, pfnic,
// real HCAs), as the model in schema.ts describes it.
import { Type } from 'typebox';

import { checked, nativeBinding, queryError } from './native.js';
import { RawDevice, type Device, type Port, type RawPort } from './schema.js';
import {
  ATOMIC_CAPS, DEVICE_CAP_FLAGS, DEVICE_CAP_FLAGS_EX, GID_TYPES, LINK_LAYERS, NODE_TYPES,
  ODP_GENERAL_CAPS, ODP_TRANSPORT_CAPS, PHYS_STATES, PORT_CAP_FLAGS, PORT_CAP_FLAGS2, PORT_STATES,
  SPEEDS, TRANSPORTS, WIDTHS, decodeFlags, enumName, formatGuid, hex, mtuBytes,
} from './verbs-names.js';

/** A device that the host does not have. */
export class DeviceNotFoundError extends Error {
  readonly code = 'ENODEV';
  constructor(readonly device: string) {
    super(`no RDMA device named "${device}"`);
    this.name = 'DeviceNotFoundError';
  }
}

const RawDeviceList = Type.Array(RawDevice);

function port(raw: RawPort): Port {
  return {
    port: raw.port,
    state: enumName(PORT_STATES, raw.state),
    phys_state: enumName(PHYS_STATES, raw.phys_state),
    link_layer: enumName(LINK_LAYERS, raw.link_layer),
    max_mtu: mtuBytes(raw.max_mtu),
    active_mtu: mtuBytes(raw.active_mtu),
    active_width: enumName(WIDTHS, raw.active_width),
    active_speed: enumName(SPEEDS, raw.active_speed),
    lid: raw.lid,
    sm_lid: raw.sm_lid,
    lmc: raw.lmc,
    sm_sl: raw.sm_sl,
    max_vl_num: raw.max_vl_num,
    max_msg_sz: raw.max_msg_sz,
    bad_pkey_cntr: raw.bad_pkey_cntr,
    qkey_viol_cntr: raw.qkey_viol_cntr,
    pkey_tbl_len: raw.pkey_tbl_len,
    gid_tbl_len: raw.gid_tbl_len,
    subnet_timeout: raw.subnet_timeout,
    init_type_reply: raw.init_type_reply,
    port_cap_flags: decodeFlags(PORT_CAP_FLAGS, raw.port_cap_flags),
    port_cap_flags2: decodeFlags(PORT_CAP_FLAGS2, raw.port_cap_flags2),
    netdev: raw.netdev_name ?? null,
    netdev_index: raw.netdev_index ?? null,
    gids: raw.gids.map((g) => ({
      index: g.index,
      gid: g.gid,
      type: enumName(GID_TYPES, g.type),
      netdev: g.netdev_name === '' ? null : g.netdev_name,
    })),
  };
}

/** Builds the model of one device from the binding's raw values. */
export function deviceFromRaw(raw: RawDevice): Device {
  const a = raw.attr;
  return {
    name: raw.name,
    index: raw.index >= 0 ? raw.index : null,
    node_type: enumName(NODE_TYPES, raw.node_type),
    transport: enumName(TRANSPORTS, raw.transport_type),
    fw_ver: a.fw_ver,
    node_guid: formatGuid(a.node_guid),
    sys_image_guid: formatGuid(a.sys_image_guid),
    vendor_id: a.vendor_id,
    vendor_part_id: a.vendor_part_id,
    hw_ver: a.hw_ver,
    phys_port_cnt: a.phys_port_cnt,
    num_comp_vectors: raw.num_comp_vectors,
    max_mr_size: hex(a.max_mr_size),
    page_size_cap: hex(a.page_size_cap),
    atomic_cap: enumName(ATOMIC_CAPS, a.atomic_cap),
    device_cap_flags: decodeFlags(DEVICE_CAP_FLAGS, a.device_cap_flags),
    device_cap_flags_ex: decodeFlags(DEVICE_CAP_FLAGS_EX, a.device_cap_flags_ex),
    completion_timestamp_mask: hex(a.completion_timestamp_mask),
    hca_core_clock: hex(a.hca_core_clock),
    odp: {
      general_caps: decodeFlags(ODP_GENERAL_CAPS, a.odp_general_caps),
      rc_odp_caps: decodeFlags(ODP_TRANSPORT_CAPS, a.odp_rc_caps),
      uc_odp_caps: decodeFlags(ODP_TRANSPORT_CAPS, a.odp_uc_caps),
      ud_odp_caps: decodeFlags(ODP_TRANSPORT_CAPS, a.odp_ud_caps),
      xrc_odp_caps: decodeFlags(ODP_TRANSPORT_CAPS, a.odp_xrc_caps),
    },
    limits: {
      max_qp: a.max_qp,
      max_qp_wr: a.max_qp_wr,
      max_sge: a.max_sge,
      max_sge_rd: a.max_sge_rd,
      max_cq: a.max_cq,
      max_cqe: a.max_cqe,
      max_mr: a.max_mr,
      max_pd: a.max_pd,
      max_qp_rd_atom: a.max_qp_rd_atom,
      max_ee_rd_atom: a.max_ee_rd_atom,
      max_res_rd_atom: a.max_res_rd_atom,
      max_qp_init_rd_atom: a.max_qp_init_rd_atom,
      max_ee_init_rd_atom: a.max_ee_init_rd_atom,
      max_ee: a.max_ee,
      max_rdd: a.max_rdd,
      max_mw: a.max_mw,
      max_raw_ipv6_qp: a.max_raw_ipv6_qp,
      max_raw_ethy_qp: a.max_raw_ethy_qp,
      max_mcast_grp: a.max_mcast_grp,
      max_mcast_qp_attach: a.max_mcast_qp_attach,
      max_total_mcast_qp_attach: a.max_total_mcast_qp_attach,
      max_ah: a.max_ah,
      max_fmr: a.max_fmr,
      max_map_per_fmr: a.max_map_per_fmr,
      max_srq: a.max_srq,
      max_srq_wr: a.max_srq_wr,
      max_srq_sge: a.max_srq_sge,
      max_pkeys: a.max_pkeys,
      local_ca_ack_delay: a.local_ca_ack_delay,
      max_wq_type_rq: a.max_wq_type_rq,
    },
    ports: raw.ports.map(port),
  };
}

/** Every RDMA device on this host, queried afresh. */
export async function listDevices(): Promise<Device[]> {
  let raw: unknown;
  try {
    raw = await nativeBinding().queryDevices();
  } catch (err) {
    throw queryError(err);
  }
  return checked(RawDeviceList, raw, 'device list').map(deviceFromRaw);
}

/** One device by name; DeviceNotFoundError if the host has none of that name. */
export async function getDevice(name: string): Promise<Device> {
  let raw: unknown;
  try {
    raw = await nativeBinding().queryDevice(name);
  } catch (err) {
    if (err instanceof Error && (err as Error & { code?: unknown }).code === 'ENODEV') {
      throw new DeviceNotFoundError(name);
    }
    throw queryError(err);
  }
  return deviceFromRaw(checked(RawDevice, raw, 'device'));
}
