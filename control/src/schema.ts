// The control plane's data model. Each TypeBox schema here is the one source of its
// TypeScript type (Static<>), of the API's JSON Schema and of the OpenAPI document.
import { Type, type Static } from 'typebox';

/** A 64-bit value that JSON numbers cannot hold exactly, as lower-case hex ("0x1f"). */
export const Hex = Type.String({ pattern: '^0x[0-9a-f]+$', description: 'hexadecimal' });

/** A bit mask with the names of the bits it has; `unknown` holds bits we have no name for. */
export const Flags = Type.Object(
  {
    value: Hex,
    names: Type.Array(Type.String()),
    unknown: Hex,
  },
  { title: 'Flags', description: 'a bit mask and the names of its set bits' },
);
export type Flags = Static<typeof Flags>;

export const Gid = Type.Object(
  {
    index: Type.Integer({ minimum: 0 }),
    gid: Type.String({ description: 'the GID in IPv6 notation, as ibv_devinfo prints it' }),
    type: Type.String({ description: 'IB, RoCE v1 or RoCE v2' }),
    netdev: Type.Union([Type.String(), Type.Null()], { description: 'the netdev the GID belongs to' }),
  },
  { title: 'Gid' },
);
export type Gid = Static<typeof Gid>;

export const Port = Type.Object(
  {
    port: Type.Integer({ minimum: 1 }),
    state: Type.String({ description: 'DOWN, INIT, ARMED, ACTIVE, ...' }),
    phys_state: Type.String({ description: 'POLLING, LINK_UP, ...' }),
    link_layer: Type.String({ description: 'InfiniBand, Ethernet or Unspecified' }),
    max_mtu: Type.Integer({ description: 'bytes' }),
    active_mtu: Type.Integer({ description: 'bytes' }),
    active_width: Type.String(),
    active_speed: Type.String(),
    lid: Type.Integer(),
    sm_lid: Type.Integer(),
    lmc: Type.Integer(),
    sm_sl: Type.Integer(),
    max_vl_num: Type.Integer(),
    max_msg_sz: Type.Integer(),
    bad_pkey_cntr: Type.Integer(),
    qkey_viol_cntr: Type.Integer(),
    pkey_tbl_len: Type.Integer(),
    gid_tbl_len: Type.Integer(),
    subnet_timeout: Type.Integer(),
    init_type_reply: Type.Integer(),
    port_cap_flags: Flags,
    port_cap_flags2: Flags,
    netdev: Type.Union([Type.String(), Type.Null()], { description: 'as `rdma link` shows it' }),
    netdev_index: Type.Union([Type.Integer(), Type.Null()]),
    gids: Type.Array(Gid),
  },
  { title: 'Port' },
);
export type Port = Static<typeof Port>;

/** Device limits, named as ibv_query_device reports them. */
export const DeviceLimits = Type.Object(
  {
    max_qp: Type.Integer(),
    max_qp_wr: Type.Integer(),
    max_sge: Type.Integer(),
    max_sge_rd: Type.Integer(),
    max_cq: Type.Integer(),
    max_cqe: Type.Integer(),
    max_mr: Type.Integer(),
    max_pd: Type.Integer(),
    max_qp_rd_atom: Type.Integer(),
    max_ee_rd_atom: Type.Integer(),
    max_res_rd_atom: Type.Integer(),
    max_qp_init_rd_atom: Type.Integer(),
    max_ee_init_rd_atom: Type.Integer(),
    max_ee: Type.Integer(),
    max_rdd: Type.Integer(),
    max_mw: Type.Integer(),
    max_raw_ipv6_qp: Type.Integer(),
    max_raw_ethy_qp: Type.Integer(),
    max_mcast_grp: Type.Integer(),
    max_mcast_qp_attach: Type.Integer(),
    max_total_mcast_qp_attach: Type.Integer(),
    max_ah: Type.Integer(),
    max_fmr: Type.Integer(),
    max_map_per_fmr: Type.Integer(),
    max_srq: Type.Integer(),
    max_srq_wr: Type.Integer(),
    max_srq_sge: Type.Integer(),
    max_pkeys: Type.Integer(),
    local_ca_ack_delay: Type.Integer(),
    max_wq_type_rq: Type.Integer(),
  },
  { title: 'DeviceLimits' },
);
export type DeviceLimits = Static<typeof DeviceLimits>;

/** On-Demand Paging capabilities: general, then per transport. */
export const OdpCaps = Type.Object(
  {
    general_caps: Flags,
    rc_odp_caps: Flags,
    uc_odp_caps: Flags,
    ud_odp_caps: Flags,
    xrc_odp_caps: Flags,
  },
  { title: 'OdpCaps' },
);
export type OdpCaps = Static<typeof OdpCaps>;

export const Device = Type.Object(
  {
    name: Type.String(),
    index: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], { description: 'kernel device index' }),
    node_type: Type.String({ description: 'ca, switch, router, rnic, ...' }),
    transport: Type.String({ description: 'InfiniBand, iWARP, ...' }),
    fw_ver: Type.String(),
    node_guid: Type.String({ description: 'as ibv_devinfo prints it: four groups of four hex digits' }),
    sys_image_guid: Type.String(),
    vendor_id: Type.Integer(),
    vendor_part_id: Type.Integer(),
    hw_ver: Type.Integer(),
    phys_port_cnt: Type.Integer(),
    num_comp_vectors: Type.Integer(),
    max_mr_size: Hex,
    page_size_cap: Hex,
    atomic_cap: Type.String({ description: 'ATOMIC_NONE, ATOMIC_HCA or ATOMIC_GLOB' }),
    device_cap_flags: Flags,
    device_cap_flags_ex: Flags,
    completion_timestamp_mask: Hex,
    hca_core_clock: Hex,
    odp: OdpCaps,
    limits: DeviceLimits,
    ports: Type.Array(Port),
  },
  { title: 'Device' },
);
export type Device = Static<typeof Device>;

/** How an MR's memory is held: pinned, or On-Demand-Paging (explicit range or implicit). */
export const MrKind = Type.Union(
  [Type.Literal('pinned'), Type.Literal('explicit'), Type.Literal('implicit'), Type.Literal('unknown')],
  { description: 'pinned; explicit or implicit ODP; unknown when the driver does not say' },
);
export type MrKind = Static<typeof MrKind>;

/** One memory region as the kernel's resource tracker and the MR's driver describe it. */
export const Mr = Type.Object(
  {
    device: Type.String(),
    mrn: Type.Integer({ minimum: 0, description: 'the MR number, as `rdma resource show mr` gives it' }),
    kind: MrKind,
    length: Type.Union([Hex, Type.Null()], { description: 'bytes (an implicit MR spans all memory)' }),
    iova: Type.Union([Hex, Type.Null()], { description: 'null without CAP_NET_ADMIN, and to callers without the admin role' }),
    lkey: Type.Union([Hex, Type.Null()], { description: 'null without CAP_NET_ADMIN, and to callers without the admin role' }),
    rkey: Type.Union([Hex, Type.Null()], { description: 'null without CAP_NET_ADMIN, and to callers without the admin role' }),
    pdn: Type.Union([Type.Integer(), Type.Null()]),
    pid: Type.Union([Type.Integer(), Type.Null()], { description: 'the registering process; null for kernel MRs' }),
    owner: Type.Union([Type.String(), Type.Null()], {
      description: 'the registering process\'s command name, or the kernel user\'s name',
    }),
    state: Type.Union([Type.String(), Type.Null()], {
      description: 'active, suspended (pages taken, re-faulted on access) or faulting; null if the driver does not say',
    }),
    mapped_pages: Type.Union([Type.Integer(), Type.Null()]),
    suspended_pages: Type.Union([Type.Integer(), Type.Null()]),
    translation_tables: Type.Union([Type.Integer(), Type.Null()]),
    last_invalidation: Type.Union([Type.String(), Type.Null()]),
    pinned_blocks: Type.Union([Type.Array(Type.Integer({ minimum: 0 })), Type.Null()], {
      description: 'the memory blocks a pinned MR holds pages of (offlining them fails)',
    }),
    counters: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
      description: 'the per-MR counters of `rdma statistic mr` (page_faults, page_invalidations, migrations, ...)',
    }),
    details: Type.Record(Type.String(), Type.Union([Type.String(), Type.Integer()]), {
      description: 'every driver detail, as `rdma resource show mr -dd` prints them without the drv_ prefix',
    }),
  },
  { title: 'Mr' },
);
export type Mr = Static<typeof Mr>;

/** A memory block (/sys/devices/system/memory/memory<N>), the unit memory goes offline in. */
export const MemoryBlock = Type.Object(
  {
    block: Type.Integer({ minimum: 0 }),
    state: Type.String({ description: 'online, offline or going-offline, as sysfs says' }),
    online: Type.Boolean(),
    zone: Type.Union([Type.String(), Type.Null()], { description: 'the zone an online block is in (Normal, Movable, DMA32, ...)' }),
    valid_zones: Type.Array(Type.String(), { description: 'where an offline block may go online' }),
    node: Type.Union([Type.Integer(), Type.Null()], { description: 'its NUMA node' }),
    removable: Type.Union([Type.Boolean(), Type.Null()]),
    start: Hex,
    size: Hex,
  },
  { title: 'MemoryBlock' },
);
export type MemoryBlock = Static<typeof MemoryBlock>;

const Count = (description: string) => Type.Integer({ minimum: 0, description });

/** What a file, a process's files or all of them watch through /dev/ummunotify, and how much changed. */
const UmmunotifySums = {
  ranges: Count('address ranges watched'),
  watched_bytes: Count('the ranges\' lengths summed (overlaps counted each time)'),
  changed: Count('ranges changed and not read yet'),
  range_changes: Count('times the kernel changed a watched range, ever (in totals: by the files open now, and by those ' +
    'the control plane saw open before they closed)'),
  events_read: Count('records read, ever (in totals: counted as range_changes is)'),
};

/** A file open on /dev/ummunotify: what it watches and how much of it changed (its fdinfo). */
export const UmmunotifyFile = Type.Object(
  {
    id: Type.Integer({ minimum: 1, description: 'the module\'s number for the file, unique while it is loaded' }),
    pid: Type.Integer({ minimum: 0, description: 'the process that opened it, whose address space it watches (0: gone)' }),
    command: Type.Union([Type.String(), Type.Null()], { description: 'that process\'s command name' }),
    holders: Type.Array(Type.Integer(), { description: 'the processes holding a descriptor of it' }),
    released: Type.Boolean({ description: 'the address space is gone: every range is reported changed' }),
    max_ranges: Count('ranges the file may watch'),
    generation: Count('the generation in the file\'s shared page'),
    ...UmmunotifySums,
  },
  { title: 'UmmunotifyFile' },
);
export type UmmunotifyFile = Static<typeof UmmunotifyFile>;

/** A process's ummunotify files, summed. */
export const UmmunotifyProcess = Type.Object(
  {
    pid: Type.Integer({ minimum: 0 }),
    command: Type.Union([Type.String(), Type.Null()]),
    files: Count('files it opened'),
    ...UmmunotifySums,
  },
  { title: 'UmmunotifyProcess' },
);
export type UmmunotifyProcess = Static<typeof UmmunotifyProcess>;

/** What the host's processes watch through /dev/ummunotify. */
export const UmmunotifyState = Type.Object(
  {
    loaded: Type.Boolean({ description: 'whether the ummunotify module is loaded' }),
    error: Type.Union([Type.String(), Type.Null()], {
      description: 'why the last walk of the processes failed, when what follows is an earlier walk\'s; null when it did not',
    }),
    scanned_at: Type.String({ description: 'when the processes were walked, ISO 8601' }),
    scan_ms: Type.Number({ minimum: 0, description: 'how long the walk took' }),
    unreadable_processes: Count('processes whose descriptors the control plane may not read (it sees them all as root)'),
    files: Type.Array(UmmunotifyFile),
    processes: Type.Array(UmmunotifyProcess, { description: 'by ranges watched, most first' }),
    totals: Type.Object({
      files: Count('files open'),
      processes: Count('processes that opened them'),
      ...UmmunotifySums,
    }),
  },
  { title: 'UmmunotifyState' },
);
export type UmmunotifyState = Static<typeof UmmunotifyState>;

/** What happened, as the control plane tells it: pfnic's event channel records, numbered. */
export const EventType = Type.Union([
  Type.Literal('invalidate'), Type.Literal('migrate'), Type.Literal('memory'), Type.Literal('pinned'),
  Type.Literal('lost'), Type.Literal('device'), Type.Literal('async'), Type.Literal('mr'),
], { description: 'invalidate, migrate (an MR\'s pages), memory (a block\'s state), pinned (an MR holds a block going offline), lost (records missed), device (an RDMA device comes, goes, is renamed, or gets or loses a netdev), async (a verbs async event of a device or port: port_active, port_err, gid_change, lid_change, pkey_change, sm_change, client_reregister, device_fatal), mr (the control plane saw an MR added, removed or change state: reason added, removed or changed)' });
export type EventType = Static<typeof EventType>;

export const Event = Type.Object(
  {
    id: Type.Integer({ minimum: 1, description: 'the control plane\'s number for it, in order within its epoch (1 for the first)' }),
    epoch: Type.String({
      pattern: '^[0-9a-z]{1,16}$',
      description: 'the run of the control plane that numbered it (ids start again at 1 in each run); its SSE id is <epoch>-<id>',
    }),
    time: Type.String({ description: 'when, ISO 8601 (the kernel\'s real-time clock)' }),
    type: EventType,
    reason: Type.String({ description: 'invalidate/migrate: unmap, clear, protection_vma, ...; memory: going_offline, offline, ...; device: register, unregister, netdev_attach, netdev_detach, rename, netdev_rename; async: port_active, port_err, gid_change, ...' }),
    device: Type.Union([Type.String(), Type.Null()]),
    port: Type.Union([Type.Integer(), Type.Null()], { description: 'device and async events: the port' }),
    netdev: Type.Union([Type.String(), Type.Null()], { description: 'device events: the netdev' }),
    mrn: Type.Union([Type.Integer(), Type.Null()]),
    lkey: Type.Union([Hex, Type.Null()]),
    pid: Type.Union([Type.Integer(), Type.Null()]),
    start: Type.Union([Hex, Type.Null()], { description: 'the first address affected (physical for memory events)' }),
    end: Type.Union([Hex, Type.Null()]),
    pages: Type.Union([Type.Integer(), Type.Null()]),
    node: Type.Union([Type.Integer(), Type.Null()]),
    block: Type.Union([Type.Integer(), Type.Null()], { description: 'the memory block, for memory and pinned events and migrations out of a block going offline' }),
    offlining: Type.Boolean({ description: 'a migration out of a block going offline' }),
    lost: Type.Union([Type.Integer(), Type.Null()], { description: 'lost: how many records the kernel could not keep' }),
  },
  { title: 'Event' },
);
export type Event = Static<typeof Event>;

// What the native binding hands over: raw verbs values. The facade checks every result
// against this before it reaches the model, so no unchecked value crosses the boundary.
const U32 = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const U64 = Type.BigInt();

export const RawGid = Type.Object({
  index: U32,
  gid: Type.String(),
  type: U32,
  netdev_index: U32,
  netdev_name: Type.String(),
});

export const RawPort = Type.Object({
  port: U32,
  state: U32,
  max_mtu: U32,
  active_mtu: U32,
  gid_tbl_len: Type.Integer(),
  port_cap_flags: U32,
  port_cap_flags2: U32,
  max_msg_sz: U32,
  bad_pkey_cntr: U32,
  qkey_viol_cntr: U32,
  pkey_tbl_len: U32,
  lid: U32,
  sm_lid: U32,
  lmc: U32,
  max_vl_num: U32,
  sm_sl: U32,
  subnet_timeout: U32,
  init_type_reply: U32,
  active_width: U32,
  active_speed: U32,
  phys_state: U32,
  link_layer: U32,
  flags: U32,
  netdev_index: Type.Optional(U32),
  netdev_name: Type.Optional(Type.String()),
  gids: Type.Array(RawGid),
});
export type RawPort = Static<typeof RawPort>;

export const RawDeviceAttr = Type.Object({
  fw_ver: Type.String(),
  node_guid: U64,
  sys_image_guid: U64,
  max_mr_size: U64,
  page_size_cap: U64,
  vendor_id: U32,
  vendor_part_id: U32,
  hw_ver: U32,
  device_cap_flags: U32,
  atomic_cap: U32,
  phys_port_cnt: U32,
  device_cap_flags_ex: U64,
  completion_timestamp_mask: U64,
  hca_core_clock: U64,
  odp_general_caps: U64,
  odp_rc_caps: U32,
  odp_uc_caps: U32,
  odp_ud_caps: U32,
  odp_xrc_caps: U32,
  max_dm_size: U64,
  raw_packet_caps: U32,
  pci_atomic_fetch_add: U32,
  pci_atomic_swap: U32,
  pci_atomic_compare_swap: U32,
  ...DeviceLimits.properties,
});
export type RawDeviceAttr = Static<typeof RawDeviceAttr>;

export const RawDevice = Type.Object({
  name: Type.String(),
  index: Type.Integer(),
  node_type: Type.Integer(),
  transport_type: Type.Integer(),
  num_comp_vectors: Type.Integer(),
  attr: RawDeviceAttr,
  ports: Type.Array(RawPort),
});
export type RawDevice = Static<typeof RawDevice>;

export const RawMr = Type.Object({
  mrn: U32,
  rkey: Type.Optional(U32),
  lkey: Type.Optional(U32),
  pdn: Type.Optional(U32),
  pid: Type.Optional(U32),
  iova: Type.Optional(U64),
  length: Type.Optional(U64),
  kern_name: Type.Optional(Type.String()),
  details: Type.Array(Type.Object({
    name: Type.String(),
    value: Type.Union([Type.String(), U64]),
    hex: Type.Boolean(),
  })),
  counters: Type.Record(Type.String(), U64),
});
export type RawMr = Static<typeof RawMr>;

export const RawMrDevice = Type.Object({
  device: Type.String(),
  index: U32,
  mrs: Type.Array(RawMr),
});
export type RawMrDevice = Static<typeof RawMrDevice>;

/** One record of /dev/pfnic-events, field for field (driver/uapi/pfnic-events.h). */
export const RawEventRecord = Type.Object({
  type: U32,
  reason: U32,
  flags: U32,
  mrn: U32,
  lkey: U32,
  seq: U64,
  lost: U64,
  time_ns: U64,
  realtime_ns: U64,
  start: U64,
  end: U64,
  pages: U64,
  pid: Type.Integer(),
  node: Type.Integer(),
  block: Type.BigInt(),
  device: Type.String(),
});
export type RawEventRecord = Static<typeof RawEventRecord>;

/** One rdma netlink device notification (RDMA_NLDEV_CMD_MONITOR). */
export const RawDeviceChange = Type.Object({
  event: U32,
  index: Type.Optional(U32),
  device: Type.Optional(Type.String()),
  port: Type.Optional(U32),
  netdev_index: Type.Optional(U32),
  netdev: Type.Optional(Type.String()),
});
export type RawDeviceChange = Static<typeof RawDeviceChange>;

/** A verbs async event (enum ibv_event_type), with its port for a port's event. */
export const RawAsyncEvent = Type.Object({
  event: U32,
  port: Type.Optional(U32),
});
export type RawAsyncEvent = Static<typeof RawAsyncEvent>;
