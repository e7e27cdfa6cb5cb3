// torch.distributed's c10d for JavaScript: a store (TCPStore, FileStore) for the rendezvous, a process
// group (Gloo), and the collectives data-parallel training needs. Each collective waits for its work
// with the group's timeout, so a rank that dies stops the others with an error instead of a hang.
// No logic beyond the calls: which tensors to reduce, and when, is TypeScript's.
#include "tensor.h"

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <string>

namespace vgl {

namespace {

struct GroupBox {
  static constexpr uint32_t kMagic = 0x76676c47;  // "vglG"
  uint32_t magic = kMagic;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
};

void FinalizeGroup(Napi::Env, GroupBox* box) {
  box->magic = 0;
  delete box;
}

GroupBox* Group(const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(v.Env(), "expected a process group");
  auto* box = v.As<Napi::External<GroupBox>>().Data();
  if (box == nullptr || box->magic != GroupBox::kMagic) throw Napi::TypeError::New(v.Env(), "not a vgl process group");
  if (!box->group) throw Napi::Error::New(v.Env(), "the process group was destroyed");
  return box;
}

std::string Who(const GroupBox* g) { return "rank " + std::to_string(g->rank) + " of " + std::to_string(g->size); }

// Starts a collective and waits for it; c10d's errors (a bad tensor, a peer gone, a timeout) become
// one JavaScript error naming this rank.
template <typename Start>
void Run(Napi::Env env, const GroupBox* g, const char* what, Start start) {
  try {
    start()->wait(g->timeout);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(what) + " failed on " + Who(g) + " (a peer may have stopped, or exceeded the " +
                                    std::to_string(g->timeout.count()) + " ms timeout): " + e.what());
  }
}

std::vector<at::Tensor> Tensors(const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), "expected an array of tensors");
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    at::Tensor& t = Unwrap(arr.Get(k), k);
    if (!t.is_contiguous()) throw Napi::TypeError::New(v.Env(), "tensor " + std::to_string(k) + ": collectives need contiguous tensors");
    out.push_back(t);
  }
  return out;
}

// initProcessGroup({ rank, worldSize, timeoutMs, store: 'tcp' | 'file', host, port, path, prefix })
// Rank 0 runs the TCPStore server (torchrun's MASTER_ADDR:MASTER_PORT); every rank connects to it.
Napi::Value InitProcessGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[0].As<Napi::Object>();
  const int rank = o.Get("rank").As<Napi::Number>().Int32Value();
  const int size = o.Get("worldSize").As<Napi::Number>().Int32Value();
  const auto timeout = std::chrono::milliseconds(o.Get("timeoutMs").As<Napi::Number>().Int64Value());
  const std::string kind = o.Get("store").As<Napi::String>().Utf8Value();
  const std::string prefix = o.Has("prefix") ? o.Get("prefix").As<Napi::String>().Utf8Value() : std::string("vgl");
  if (size < 1 || rank < 0 || rank >= size) throw Napi::RangeError::New(env, "rank " + std::to_string(rank) + " is not in [0, " + std::to_string(size) + ")");
  try {
    c10::intrusive_ptr<c10d::Store> store;
    if (kind == "tcp") {
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(o.Get("port").As<Napi::Number>().Uint32Value());
      so.isServer = rank == 0;
      so.numWorkers = static_cast<std::size_t>(size);
      so.waitWorkers = true;
      so.timeout = timeout;
      store = c10::make_intrusive<c10d::TCPStore>(o.Get("host").As<Napi::String>().Utf8Value(), so);
    } else if (kind == "file") {
      store = c10::make_intrusive<c10d::FileStore>(o.Get("path").As<Napi::String>().Utf8Value(), size);
      store->setTimeout(timeout);
    } else {
      throw Napi::TypeError::New(env, "store must be 'tcp' or 'file', got '" + kind + "'");
    }
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // Gloo's own socket: on the loopback when the rendezvous is (one machine), else on this machine's
    // address (its hostname's, as torch.distributed does; GLOO_SOCKET_IFNAME picks an interface).
    const std::string host = o.Has("host") ? o.Get("host").As<Napi::String>().Utf8Value() : std::string("127.0.0.1");
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    if (iface != nullptr && *iface != '\0') options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    else if (kind == "file" || host == "127.0.0.1" || host == "localhost") options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 2;
    auto* box = new GroupBox();
    box->group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, options);
    box->rank = rank;
    box->size = size;
    box->timeout = timeout;
    return Napi::External<GroupBox>::New(env, box, FinalizeGroup);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, "init process group (rank " + std::to_string(rank) + " of " + std::to_string(size) + ", " + kind + " store): " + e.what());
  }
}

// allReduce(group, [tensor]): sums the tensor over the ranks, in place (c10d's list is one tensor per device).
Napi::Value AllReduce(const Napi::CallbackInfo& info) {
  auto* g = Group(info[0]);
  auto tensors = Tensors(info[1]);
  c10d::AllreduceOptions opts;
  opts.timeout = g->timeout;
  Run(info.Env(), g, "all-reduce", [&] { return g->group->allreduce(tensors, opts); });
  return info.Env().Undefined();
}

// broadcast(group, [tensor], root): root's values into every rank's tensor, in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  auto* g = Group(info[0]);
  auto tensors = Tensors(info[1]);
  c10d::BroadcastOptions opts;
  opts.rootRank = info[2].As<Napi::Number>().Int64Value();
  opts.timeout = g->timeout;
  Run(info.Env(), g, "broadcast", [&] { return g->group->broadcast(tensors, opts); });
  return info.Env().Undefined();
}

// allGather(group, tensor): every rank's tensor (same shape), in rank order.
Napi::Value AllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* g = Group(info[0]);
  at::Tensor input = Unwrap(info[1], 1).contiguous();
  std::vector<at::Tensor> inputs{input};
  std::vector<std::vector<at::Tensor>> outputs(1);
  for (int r = 0; r < g->size; ++r) outputs[0].push_back(at::empty_like(input));
  c10d::AllgatherOptions opts;
  opts.timeout = g->timeout;
  Run(env, g, "all-gather", [&] { return g->group->allgather(outputs, inputs, opts); });
  return ToJs(env, outputs[0]);
}

Napi::Value Barrier(const Napi::CallbackInfo& info) {
  auto* g = Group(info[0]);
  c10d::BarrierOptions opts;
  opts.timeout = g->timeout;
  Run(info.Env(), g, "barrier", [&] { return g->group->barrier(opts); });
  return info.Env().Undefined();
}

Napi::Value DestroyProcessGroup(const Napi::CallbackInfo& info) {
  auto* g = Group(info[0]);
  g->group.reset();
  return info.Env().Undefined();
}

}  // namespace

void InitDistributed(Napi::Env env, Napi::Object exports) {
  auto d = Napi::Object::New(env);
  d.Set("backends", Napi::String::New(env, "gloo"));
  d.Set("initProcessGroup", Napi::Function::New(env, InitProcessGroup));
  d.Set("allReduce", Napi::Function::New(env, AllReduce));
  d.Set("broadcast", Napi::Function::New(env, Broadcast));
  d.Set("allGather", Napi::Function::New(env, AllGather));
  d.Set("barrier", Napi::Function::New(env, Barrier));
  d.Set("destroyProcessGroup", Napi::Function::New(env, DestroyProcessGroup));
  exports.Set("distributed", d);
}

}  // namespace vgl

#else  // built without gloo's headers: no process groups (TypeScript says what to install)

namespace vgl {
void InitDistributed(Napi::Env, Napi::Object) {}
}  // namespace vgl

#endif
