// SPDX-License-Identifier: GPL-2.0-only
#include "counter_dirs.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include "rdma_query.h"

namespace pfnic {
namespace {

// How many directories one call may name: a host's ports, two directories each.
constexpr size_t kMaxDirs = 4096;

using Counters = std::vector<std::pair<std::string, double>>;

// Errors that mean "this counter is not kept here, or not now": the file is left out.
bool absent(int err)
{
	return err == ENOENT || err == EINVAL || err == EOPNOTSUPP || err == ENODATA ||
	       err == ENOSYS || err == EISDIR;
}

// A counter file's value, or nothing when it holds no decimal number ("N/A (no PMA)") or
// the device does not keep it now. Any other failure throws: the port's counters cannot be
// told, rather than told without it.
std::optional<double> read_counter(int dirfd, const std::string &dir, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		const int err = errno;

		if (absent(err))
			return std::nullopt;
		throw QueryError(errno_name(err), "cannot open " + dir + "/" + name + ": " + std::strerror(err));
	}
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	const int err = errno;

	close(fd);
	if (n < 0) {
		if (absent(err))
			return std::nullopt;
		throw QueryError(errno_name(err), "cannot read " + dir + "/" + name + ": " + std::strerror(err));
	}
	if (n == 0)
		return std::nullopt;
	buf[n] = '\0';
	size_t len = std::strspn(buf, "0123456789");
	if (len == 0 || (buf[len] != '\0' && buf[len] != '\n'))
		return std::nullopt;
	return std::strtod(buf, nullptr);
}

// The counters of one directory; nothing when there is no such directory.
std::optional<Counters> read_dir(const std::string &path)
{
	DIR *dir = opendir(path.c_str());
	if (!dir) {
		const int err = errno;

		if (err == ENOENT)
			return std::nullopt;
		throw QueryError(errno_name(err), "cannot read " + path + ": " + std::strerror(err));
	}
	Counters out;
	try {
		while (const dirent *e = readdir(dir)) {
			if (e->d_name[0] == '.')
				continue;
			if (std::optional<double> v = read_counter(dirfd(dir), path, e->d_name))
				out.emplace_back(e->d_name, *v);
		}
	} catch (...) {
		closedir(dir);
		throw;
	}
	closedir(dir);
	return out;
}

class CounterDirsWorker : public Napi::AsyncWorker {
public:
	CounterDirsWorker(Napi::Env env, std::vector<std::string> dirs)
		: Napi::AsyncWorker(env, "pfnic:readCounterDirs"),
		  deferred_(Napi::Promise::Deferred::New(env)), dirs_(std::move(dirs)) {}

	Napi::Promise promise() const { return deferred_.Promise(); }

protected:
	void Execute() override
	{
		try {
			for (const std::string &d : dirs_)
				results_.push_back(read_dir(d));
		} catch (const QueryError &e) {
			code_ = e.code();
			SetError(e.what());
		}
	}

	void OnOK() override
	{
		Napi::Env env = Env();
		Napi::Array out = Napi::Array::New(env, results_.size());
		for (size_t i = 0; i < results_.size(); i++) {
			if (!results_[i]) {
				out.Set(i, env.Null());
				continue;
			}
			Napi::Array entries = Napi::Array::New(env, results_[i]->size());
			for (size_t j = 0; j < results_[i]->size(); j++) {
				Napi::Array pair = Napi::Array::New(env, 2);
				pair.Set(0U, (*results_[i])[j].first);
				pair.Set(1U, (*results_[i])[j].second);
				entries.Set(j, pair);
			}
			out.Set(i, entries);
		}
		deferred_.Resolve(out);
	}

	void OnError(const Napi::Error &error) override
	{
		Napi::Error e = Napi::Error::New(Env(), error.Message());
		e.Set("code", code_);
		deferred_.Reject(e.Value());
	}

private:
	Napi::Promise::Deferred deferred_;
	std::vector<std::string> dirs_;
	std::vector<std::optional<Counters>> results_;
	std::string code_;
};

Napi::Value ReadCounterDirs(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (info.Length() != 1 || !info[0].IsArray())
		throw Napi::TypeError::New(env, "readCounterDirs(dirs) needs an array of directory paths");
	Napi::Array arg = info[0].As<Napi::Array>();
	if (arg.Length() > kMaxDirs)
		throw Napi::RangeError::New(env, "readCounterDirs takes at most " + std::to_string(kMaxDirs) +
							 " directories at once");
	std::vector<std::string> dirs;
	for (uint32_t i = 0; i < arg.Length(); i++) {
		Napi::Value v = arg.Get(i);
		if (!v.IsString())
			throw Napi::TypeError::New(env, "readCounterDirs: every directory is a path string");
		std::string path = v.As<Napi::String>().Utf8Value();
		if (path.empty() || path.find('\0') != std::string::npos)
			throw Napi::RangeError::New(env, "readCounterDirs: a path is not empty and has no NUL");
		dirs.push_back(std::move(path));
	}
	auto *worker = new CounterDirsWorker(env, std::move(dirs));
	Napi::Promise promise = worker->promise();
	worker->Queue();
	return promise;
}

} // namespace

void init_counter_dirs(Napi::Env env, Napi::Object exports)
{
	exports.Set("readCounterDirs", Napi::Function::New(env, ReadCounterDirs, "readCounterDirs"));
}

} // namespace pfnic
