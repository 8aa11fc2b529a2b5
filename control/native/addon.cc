// SPDX-License-Identifier: GPL-2.0-only
//
// pfnic's native addon: the few things only native code can do for the control plane.
// Every call that touches the kernel runs on a worker thread (Napi::AsyncWorker; memory
// block writes on a thread of their own, block_state.h) and returns a promise; the event
// loop never waits on libibverbs, netlink or sysfs.
#include <endian.h>
#include <napi.h>

#include "block_state.h"
#include "counter_dirs.h"
#include "event_channel.h"
#include "rdma_netlink.h"
#include "rdma_query.h"

namespace pfnic {
namespace {

Napi::BigInt u64(Napi::Env env, uint64_t v)
{
	return Napi::BigInt::New(env, v);
}

Napi::Object device_attrs(Napi::Env env, const ibv_device_attr_ex &ex)
{
	const ibv_device_attr &a = ex.orig_attr;
	Napi::Object o = Napi::Object::New(env);

	o.Set("fw_ver", a.fw_ver);
	// The GUIDs are big-endian in the verbs ABI; hand out their numeric value.
	o.Set("node_guid", u64(env, be64toh(a.node_guid)));
	o.Set("sys_image_guid", u64(env, be64toh(a.sys_image_guid)));
	o.Set("max_mr_size", u64(env, a.max_mr_size));
	o.Set("page_size_cap", u64(env, a.page_size_cap));
	o.Set("vendor_id", a.vendor_id);
	o.Set("vendor_part_id", a.vendor_part_id);
	o.Set("hw_ver", a.hw_ver);
	o.Set("max_qp", a.max_qp);
	o.Set("max_qp_wr", a.max_qp_wr);
	o.Set("device_cap_flags", a.device_cap_flags);
	o.Set("max_sge", a.max_sge);
	o.Set("max_sge_rd", a.max_sge_rd);
	o.Set("max_cq", a.max_cq);
	o.Set("max_cqe", a.max_cqe);
	o.Set("max_mr", a.max_mr);
	o.Set("max_pd", a.max_pd);
	o.Set("max_qp_rd_atom", a.max_qp_rd_atom);
	o.Set("max_ee_rd_atom", a.max_ee_rd_atom);
	o.Set("max_res_rd_atom", a.max_res_rd_atom);
	o.Set("max_qp_init_rd_atom", a.max_qp_init_rd_atom);
	o.Set("max_ee_init_rd_atom", a.max_ee_init_rd_atom);
	o.Set("atomic_cap", static_cast<uint32_t>(a.atomic_cap));
	o.Set("max_ee", a.max_ee);
	o.Set("max_rdd", a.max_rdd);
	o.Set("max_mw", a.max_mw);
	o.Set("max_raw_ipv6_qp", a.max_raw_ipv6_qp);
	o.Set("max_raw_ethy_qp", a.max_raw_ethy_qp);
	o.Set("max_mcast_grp", a.max_mcast_grp);
	o.Set("max_mcast_qp_attach", a.max_mcast_qp_attach);
	o.Set("max_total_mcast_qp_attach", a.max_total_mcast_qp_attach);
	o.Set("max_ah", a.max_ah);
	o.Set("max_fmr", a.max_fmr);
	o.Set("max_map_per_fmr", a.max_map_per_fmr);
	o.Set("max_srq", a.max_srq);
	o.Set("max_srq_wr", a.max_srq_wr);
	o.Set("max_srq_sge", a.max_srq_sge);
	o.Set("max_pkeys", a.max_pkeys);
	o.Set("local_ca_ack_delay", a.local_ca_ack_delay);
	o.Set("phys_port_cnt", a.phys_port_cnt);

	o.Set("device_cap_flags_ex", u64(env, ex.device_cap_flags_ex));
	o.Set("completion_timestamp_mask", u64(env, ex.completion_timestamp_mask));
	o.Set("hca_core_clock", u64(env, ex.hca_core_clock));
	o.Set("odp_general_caps", u64(env, ex.odp_caps.general_caps));
	o.Set("odp_rc_caps", ex.odp_caps.per_transport_caps.rc_odp_caps);
	o.Set("odp_uc_caps", ex.odp_caps.per_transport_caps.uc_odp_caps);
	o.Set("odp_ud_caps", ex.odp_caps.per_transport_caps.ud_odp_caps);
	o.Set("odp_xrc_caps", ex.xrc_odp_caps);
	o.Set("max_dm_size", u64(env, ex.max_dm_size));
	o.Set("max_wq_type_rq", ex.max_wq_type_rq);
	o.Set("raw_packet_caps", ex.raw_packet_caps);
	o.Set("pci_atomic_fetch_add", ex.pci_atomic_caps.fetch_add);
	o.Set("pci_atomic_swap", ex.pci_atomic_caps.swap);
	o.Set("pci_atomic_compare_swap", ex.pci_atomic_caps.compare_swap);
	return o;
}

Napi::Object port_attrs(Napi::Env env, const PortInfo &p)
{
	const ibv_port_attr &a = p.attr;
	Napi::Object o = Napi::Object::New(env);

	o.Set("port", p.port);
	o.Set("state", static_cast<uint32_t>(a.state));
	o.Set("max_mtu", static_cast<uint32_t>(a.max_mtu));
	o.Set("active_mtu", static_cast<uint32_t>(a.active_mtu));
	o.Set("gid_tbl_len", a.gid_tbl_len);
	o.Set("port_cap_flags", a.port_cap_flags);
	o.Set("port_cap_flags2", a.port_cap_flags2);
	o.Set("max_msg_sz", a.max_msg_sz);
	o.Set("bad_pkey_cntr", a.bad_pkey_cntr);
	o.Set("qkey_viol_cntr", a.qkey_viol_cntr);
	o.Set("pkey_tbl_len", a.pkey_tbl_len);
	o.Set("lid", a.lid);
	o.Set("sm_lid", a.sm_lid);
	o.Set("lmc", a.lmc);
	o.Set("max_vl_num", a.max_vl_num);
	o.Set("sm_sl", a.sm_sl);
	o.Set("subnet_timeout", a.subnet_timeout);
	o.Set("init_type_reply", a.init_type_reply);
	o.Set("active_width", a.active_width);
	o.Set("active_speed", a.active_speed);
	o.Set("phys_state", a.phys_state);
	o.Set("link_layer", a.link_layer);
	o.Set("flags", a.flags);
	if (p.netdev_index)
		o.Set("netdev_index", *p.netdev_index);
	if (p.netdev_name)
		o.Set("netdev_name", *p.netdev_name);

	Napi::Array gids = Napi::Array::New(env, p.gids.size());
	for (size_t i = 0; i < p.gids.size(); i++) {
		const GidInfo &g = p.gids[i];
		Napi::Object go = Napi::Object::New(env);
		go.Set("index", g.index);
		go.Set("gid", g.gid);
		go.Set("type", g.type);
		go.Set("netdev_index", g.ndev_index);
		go.Set("netdev_name", g.ndev_name);
		gids.Set(i, go);
	}
	o.Set("gids", gids);
	return o;
}

Napi::Object device_object(Napi::Env env, const DeviceInfo &d)
{
	Napi::Object o = Napi::Object::New(env);

	o.Set("name", d.name);
	o.Set("index", d.index);
	o.Set("node_type", static_cast<int32_t>(d.node_type));
	o.Set("transport_type", static_cast<int32_t>(d.transport_type));
	o.Set("num_comp_vectors", d.num_comp_vectors);
	o.Set("attr", device_attrs(env, d.attr));
	Napi::Array ports = Napi::Array::New(env, d.ports.size());
	for (size_t i = 0; i < d.ports.size(); i++)
		ports.Set(i, port_attrs(env, d.ports[i]));
	o.Set("ports", ports);
	return o;
}

// A worker that settles a promise: resolved by the subclass's OnOK(), rejected with an
// Error whose code is the errno name of what failed.
class PromiseWorker : public Napi::AsyncWorker {
public:
	Napi::Promise promise() const { return deferred_.Promise(); }

protected:
	PromiseWorker(Napi::Env env, const char *name)
		: Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

	// Runs fn on the worker thread; what it throws becomes the rejection.
	template <typename Fn> void guarded(Fn fn)
	{
		try {
			fn();
		} catch (const QueryError &e) {
			code_ = e.code();
			SetError(e.what());
		} catch (const std::exception &e) {
			code_ = "EIO";
			SetError(e.what());
		}
	}

	void OnError(const Napi::Error &error) override
	{
		Napi::Error e = Napi::Error::New(Env(), error.Message());
		e.Set("code", code_);
		deferred_.Reject(e.Value());
	}

	Napi::Promise::Deferred deferred_;

private:
	std::string code_;
};

// Runs query_devices() off the main thread and settles a promise with the result.
class QueryWorker : public PromiseWorker {
public:
	QueryWorker(Napi::Env env, std::optional<std::string> only, bool single)
		: PromiseWorker(env, "pfnic:queryDevices"), only_(std::move(only)), single_(single) {}

protected:
	void Execute() override
	{
		guarded([this] { devices_ = query_devices(only_); });
	}

	void OnOK() override
	{
		Napi::Env env = Env();
		if (single_) {
			deferred_.Resolve(device_object(env, devices_.front()));
			return;
		}
		Napi::Array list = Napi::Array::New(env, devices_.size());
		for (size_t i = 0; i < devices_.size(); i++)
			list.Set(i, device_object(env, devices_[i]));
		deferred_.Resolve(list);
	}

private:
	std::optional<std::string> only_;
	bool single_;
	std::vector<DeviceInfo> devices_;
};

// queryDevices(): Promise<RawDevice[]>, every device libibverbs sees.
Napi::Value QueryDevices(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() != 0)
		throw Napi::TypeError::New(env, "queryDevices() takes no arguments");
	auto *worker = new QueryWorker(env, std::nullopt, false);
	Napi::Promise promise = worker->promise();
	worker->Queue();
	return promise;
}

// queryDevice(name: string): Promise<RawDevice>; rejects with code ENODEV if there is
// no such device.
Napi::Value QueryDevice(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() != 1 || !info[0].IsString())
		throw Napi::TypeError::New(env, "queryDevice(name) needs one string argument");
	std::string name = info[0].As<Napi::String>().Utf8Value();
	if (name.empty() || name.size() > kMaxDeviceName || name.find('\0') != std::string::npos)
		throw Napi::RangeError::New(env, "an RDMA device name is 1 to " +
							 std::to_string(kMaxDeviceName) +
							 " characters with no NUL");
	auto *worker = new QueryWorker(env, std::move(name), true);
	Napi::Promise promise = worker->promise();
	worker->Queue();
	return promise;
}

Napi::Object mr_object(Napi::Env env, const NetlinkMr &mr)
{
	Napi::Object o = Napi::Object::New(env);

	o.Set("mrn", mr.mrn);
	if (mr.rkey)
		o.Set("rkey", *mr.rkey);
	if (mr.lkey)
		o.Set("lkey", *mr.lkey);
	if (mr.pdn)
		o.Set("pdn", *mr.pdn);
	if (mr.pid)
		o.Set("pid", *mr.pid);
	if (mr.iova)
		o.Set("iova", u64(env, *mr.iova));
	if (mr.length)
		o.Set("length", u64(env, *mr.length));
	if (mr.kern_name)
		o.Set("kern_name", *mr.kern_name);
	Napi::Array details = Napi::Array::New(env, mr.details.size());
	for (size_t i = 0; i < mr.details.size(); i++) {
		const DriverDetail &d = mr.details[i];
		Napi::Object detail = Napi::Object::New(env);
		detail.Set("name", d.name);
		if (const auto *s = std::get_if<std::string>(&d.value))
			detail.Set("value", *s);
		else if (const auto *v = std::get_if<uint64_t>(&d.value))
			detail.Set("value", u64(env, *v));
		else
			detail.Set("value", Napi::BigInt::New(env, std::get<int64_t>(d.value)));
		detail.Set("hex", d.hex);
		details.Set(i, detail);
	}
	o.Set("details", details);
	Napi::Object counters = Napi::Object::New(env);
	for (const auto &[name, value] : mr.counters)
		counters.Set(name, u64(env, value));
	o.Set("counters", counters);
	return o;
}

// Runs netlink_devices() and netlink_mrs() off the main thread.
class MrWorker : public PromiseWorker {
public:
	MrWorker(Napi::Env env, std::optional<std::string> only)
		: PromiseWorker(env, "pfnic:queryMrs"), only_(std::move(only)) {}

protected:
	void Execute() override
	{
		guarded([this] {
			for (const NetlinkDevice &d : netlink_devices()) {
				if (only_ && d.name != *only_)
					continue;
				try {
					devices_.push_back({d, netlink_mrs(d.index)});
				} catch (const QueryError &e) {
					// removed between the two dumps: it has no MRs any more
					if (e.code() != "ENODEV")
						throw;
				}
			}
		});
	}

	void OnOK() override
	{
		Napi::Env env = Env();
		Napi::Array list = Napi::Array::New(env, devices_.size());
		for (size_t i = 0; i < devices_.size(); i++) {
			const auto &[dev, mrs] = devices_[i];
			Napi::Object o = Napi::Object::New(env);
			o.Set("device", dev.name);
			o.Set("index", dev.index);
			Napi::Array arr = Napi::Array::New(env, mrs.size());
			for (size_t j = 0; j < mrs.size(); j++)
				arr.Set(j, mr_object(env, mrs[j]));
			o.Set("mrs", arr);
			list.Set(i, o);
		}
		deferred_.Resolve(list);
	}

private:
	std::optional<std::string> only_;
	std::vector<std::pair<NetlinkDevice, std::vector<NetlinkMr>>> devices_;
};

// queryMrs(device?: string): Promise<RawMrDevice[]>, every device the kernel has (or the one
// named, if it has it: a refresher per device dumps its own) with its MRs, as rdma netlink
// reports them (driver details and counters included).
Napi::Value QueryMrs(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::optional<std::string> only;
	if (info.Length() > 1 || (info.Length() == 1 && !info[0].IsString() && !info[0].IsUndefined()))
		throw Napi::TypeError::New(env, "queryMrs(device?) takes at most a device name");
	if (info.Length() == 1 && info[0].IsString()) {
		only = info[0].As<Napi::String>().Utf8Value();
		if (only->empty() || only->size() > kMaxDeviceName || only->find('\0') != std::string::npos)
			throw Napi::RangeError::New(env, "an RDMA device name is 1 to " +
								 std::to_string(kMaxDeviceName) +
								 " characters with no NUL");
	}
	auto *worker = new MrWorker(env, std::move(only));
	Napi::Promise promise = worker->promise();
	worker->Queue();
	return promise;
}

// Runs netlink_mr() off the main thread, for the device of that name.
class OneMrWorker : public PromiseWorker {
public:
	OneMrWorker(Napi::Env env, std::string device, uint32_t mrn)
		: PromiseWorker(env, "pfnic:queryMr"), device_(std::move(device)), mrn_(mrn) {}

protected:
	void Execute() override
	{
		guarded([this] {
			std::optional<uint32_t> index;
			for (const NetlinkDevice &d : netlink_devices())
				if (d.name == device_)
					index = d.index;
			if (!index)
				throw QueryError("ENODEV", "no RDMA device named " + device_);
			mr_ = netlink_mr(*index, mrn_);
		});
	}

	void OnOK() override { deferred_.Resolve(mr_object(Env(), mr_)); }

private:
	std::string device_;
	uint32_t mrn_;
	NetlinkMr mr_;
};

// queryMr(device: string, mrn: number): Promise<RawMr>, one MR as queryMrs() lists it.
// Rejects with code ENOENT when the device has no such MR, ENODEV when there is no such
// device.
Napi::Value QueryMr(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() != 2 || !info[0].IsString() || !info[1].IsNumber())
		throw Napi::TypeError::New(env, "queryMr(device, mrn) needs a device name and an MR number");
	std::string device = info[0].As<Napi::String>().Utf8Value();
	const double mrn = info[1].As<Napi::Number>().DoubleValue();
	if (device.empty() || device.size() > kMaxDeviceName || device.find('\0') != std::string::npos)
		throw Napi::RangeError::New(env, "an RDMA device name is 1 to " +
							 std::to_string(kMaxDeviceName) +
							 " characters with no NUL");
	if (!(mrn >= 0 && mrn <= 0xffffffff) || mrn != static_cast<double>(static_cast<int64_t>(mrn)))
		throw Napi::RangeError::New(env, "an MR number is an integer from 0 to 2^32-1");
	auto *worker = new OneMrWorker(env, std::move(device), static_cast<uint32_t>(mrn));
	Napi::Promise promise = worker->promise();
	worker->Queue();
	return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	init_block_state(env, exports);
	init_event_watch(env, exports);
	init_counter_dirs(env, exports);
	exports.Set("queryMrs", Napi::Function::New(env, QueryMrs, "queryMrs"));
	exports.Set("queryMr", Napi::Function::New(env, QueryMr, "queryMr"));
	exports.Set("queryDevices", Napi::Function::New(env, QueryDevices, "queryDevices"));
	exports.Set("queryDevice", Napi::Function::New(env, QueryDevice, "queryDevice"));
	return exports;
}

} // namespace
} // namespace pfnic

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports)
{
	return pfnic::Init(env, exports);
}

NODE_API_MODULE(pfnic_addon, InitAddon)
