// vgl_torch: a thin N-API face over libtorch. Tensor handles, typed-array I/O, the op dispatcher,
// and engine settings (threads, seed, grad mode, autocast). All model logic lives in TypeScript.
#include "tensor.h"

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/version.h>

#include <cmath>
#include <cstring>
#include <memory>

namespace vgl {

void InitDistributed(Napi::Env env, Napi::Object exports);  // distributed.cc

namespace {

void Finalize(Napi::Env env, TensorBox* box) {
  if (box->reported != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
  box->magic = 0;
  delete box;
}

// Bytes that this handle keeps alive on its own. Views share their base's storage and report nothing.
int64_t OwnedBytes(const at::Tensor& t) {
  if (!t.defined() || t.is_view() || t.device().type() != at::kCPU) return 0;
  return static_cast<int64_t>(t.nbytes());
}

std::string Describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsBoolean()) return "boolean";
  if (v.IsArray()) return "array";
  if (v.IsExternal()) return "tensor";
  return "object";
}

}  // namespace

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto* box = new TensorBox();
  box->t = std::move(t);
  box->reported = OwnedBytes(box->t);
  if (box->reported != 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  return Napi::External<TensorBox>::New(env, box, Finalize);
}

static TensorBox* Box(const Napi::Value& v, size_t argIndex) {
  if (!v.IsExternal()) {
    throw Napi::TypeError::New(v.Env(), "argument " + std::to_string(argIndex) + ": expected a tensor, got " + Describe(v));
  }
  auto* box = v.As<Napi::External<TensorBox>>().Data();
  if (box == nullptr || box->magic != TensorBox::kMagic) {
    throw Napi::TypeError::New(v.Env(), "argument " + std::to_string(argIndex) + ": not a vgl tensor handle");
  }
  return box;
}

at::Tensor& Unwrap(const Napi::Value& v, size_t argIndex) {
  auto* box = Box(v, argIndex);
  if (!box->t.defined()) {
    throw Napi::Error::New(v.Env(), "argument " + std::to_string(argIndex) + ": tensor was already disposed");
  }
  return box->t;
}

// ---- Args --------------------------------------------------------------------------------------

Napi::Value Args::at(size_t i) const { return info_[first_ + i]; }
bool Args::has(size_t i) const {
  if (first_ + i >= info_.Length()) return false;
  auto v = at(i);
  return !v.IsNull() && !v.IsUndefined();
}
void Args::fail(size_t i, const char* expected) const {
  throw Napi::TypeError::New(env(), "argument " + std::to_string(i) + ": expected " + expected + ", got " + Describe(at(i)));
}
at::Tensor& Args::t(size_t i) const { return Unwrap(at(i), i); }
c10::optional<at::Tensor> Args::ot(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return Unwrap(at(i), i);
}
std::vector<at::Tensor> Args::ts(size_t i) const {
  if (!at(i).IsArray()) fail(i, "an array of tensors");
  auto arr = at(i).As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out.push_back(Unwrap(arr.Get(k), i));
  return out;
}
double Args::d(size_t i) const {
  auto v = at(i);
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1.0 : 0.0;
  if (!v.IsNumber()) fail(i, "a number");
  return v.As<Napi::Number>().DoubleValue();
}
c10::optional<double> Args::od(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return d(i);
}
int64_t Args::i(size_t i) const {
  auto v = at(i);
  if (!v.IsNumber()) fail(i, "an integer");
  return v.As<Napi::Number>().Int64Value();
}
c10::optional<int64_t> Args::oi(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return this->i(i);
}
bool Args::b(size_t i) const {
  auto v = at(i);
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue() != 0;
  fail(i, "a boolean");
}
std::vector<int64_t> Args::l(size_t i) const {
  auto v = at(i);
  if (v.IsNumber()) return {v.As<Napi::Number>().Int64Value()};
  if (!v.IsArray()) fail(i, "an array of integers");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out[k] = arr.Get(k).As<Napi::Number>().Int64Value();
  return out;
}
c10::optional<std::vector<int64_t>> Args::ol(size_t i) const {
  if (!has(i)) return c10::nullopt;
  return l(i);
}
std::vector<double> Args::dl(size_t i) const {
  auto v = at(i);
  if (!v.IsArray()) fail(i, "an array of numbers");
  auto arr = v.As<Napi::Array>();
  std::vector<double> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) out[k] = arr.Get(k).As<Napi::Number>().DoubleValue();
  return out;
}
std::string Args::s(size_t i) const {
  if (!at(i).IsString()) fail(i, "a string");
  return at(i).As<Napi::String>().Utf8Value();
}
at::ScalarType Args::dtype(size_t i) const { return static_cast<at::ScalarType>(this->i(i)); }
at::TensorOptions Args::opts(size_t dtypeIndex, size_t deviceIndex) const {
  auto o = at::TensorOptions().dtype(has(dtypeIndex) ? dtype(dtypeIndex) : at::kFloat);
  if (has(deviceIndex)) o = o.device(at::Device(s(deviceIndex)));
  return o;
}
at::Scalar Args::scalar(size_t i) const {
  auto v = at(i);
  if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
  // Whole numbers become integer scalars, as Python's ints do: int tensors stay int under x + 1.
  double x = d(i);
  if (std::nearbyint(x) == x && std::abs(x) < 9.007199254740992e15) return at::Scalar(static_cast<int64_t>(x));
  return at::Scalar(x);
}

// ---- exported functions --------------------------------------------------------------------------

namespace {

// c10::Error messages carry a C++ backtrace; JavaScript users need the first lines only.
std::string Brief(const c10::Error& e) {
  std::string m = e.what_without_backtrace();
  auto cut = m.find("\nException raised from");
  if (cut != std::string::npos) m.resize(cut);
  return m;
}

Napi::Value Call(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  const auto& table = OpTable();
  auto id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= table.size()) throw Napi::RangeError::New(env, "unknown op id " + std::to_string(id));
  try {
    return table[id].fn(Args(info, 1));
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, std::string(table[id].name) + ": " + Brief(e));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string(table[id].name) + ": " + e.what());
  }
}

Napi::Value OpNames(const Napi::CallbackInfo& info) {
  const auto& table = OpTable();
  auto arr = Napi::Array::New(info.Env(), table.size());
  for (size_t k = 0; k < table.size(); ++k) arr.Set(k, Napi::String::New(info.Env(), table[k].name));
  return arr;
}

// fromArray(typedArray, shape, scalarType): copies JavaScript memory into a new CPU tensor.
Napi::Value FromArray(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto ta = info[0].As<Napi::TypedArray>();
  Args a(info, 1);
  auto shape = a.l(0);
  auto dtype = a.dtype(1);
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t bytes = t.nbytes();
  if (bytes != ta.ByteLength()) {
    throw Napi::RangeError::New(env, "fromArray: " + std::to_string(ta.ByteLength()) + " bytes given for a tensor of " +
                                         std::to_string(bytes) + " bytes");
  }
  auto buf = ta.ArrayBuffer();
  std::memcpy(t.data_ptr(), static_cast<uint8_t*>(buf.Data()) + ta.ByteOffset(), bytes);
  return Wrap(env, t);
}

// toArray(tensor): copies a tensor's values (made contiguous, on CPU) into a new ArrayBuffer.
Napi::Value ToArray(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  at::Tensor t;
  try {
    t = Unwrap(info[0], 0).detach().to(at::kCPU).contiguous();
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, "toArray: " + Brief(e));
  }
  auto buf = Napi::ArrayBuffer::New(env, t.nbytes());
  if (t.nbytes() > 0) std::memcpy(buf.Data(), t.data_ptr(), t.nbytes());
  return buf;
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  auto* box = Box(info[0], 0);
  if (box->reported != 0) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -box->reported);
  box->reported = 0;
  box->t = at::Tensor();
  return info.Env().Undefined();
}

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !Box(info[0], 0)->t.defined());
}

// Inference mode is an RAII guard in C++; JavaScript enters and exits it explicitly, so the guards
// live on a stack here.
std::vector<std::unique_ptr<c10::InferenceMode>> inferenceGuards;

Napi::Value EnterInferenceMode(const Napi::CallbackInfo& info) {
  inferenceGuards.push_back(std::make_unique<c10::InferenceMode>(true));
  return info.Env().Undefined();
}
Napi::Value ExitInferenceMode(const Napi::CallbackInfo& info) {
  if (inferenceGuards.empty()) throw Napi::Error::New(info.Env(), "exitInferenceMode without enterInferenceMode");
  inferenceGuards.pop_back();
  return info.Env().Undefined();
}
Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(info.Env(), prev);
}
Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

// Autocast (mixed precision), per device type: an enable flag and the lower-precision dtype that
// autocast-listed ops (convolutions, matrix products) compute in. JavaScript scopes set and restore
// both (src/torch/factory.ts autocast) and clear the cache of cast weights when the outermost exits.
bool AutocastCuda(const Napi::Value& v) {
  auto device = v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
  if (device != "cpu" && device != "cuda") throw Napi::TypeError::New(v.Env(), "autocast: device must be 'cpu' or 'cuda', got '" + device + "'");
  return device == "cuda";
}
Napi::Value SetAutocastEnabled(const Napi::CallbackInfo& info) {
  bool cuda = AutocastCuda(info[0]);
  bool on = info[1].As<Napi::Boolean>().Value();
  bool prev = cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  if (cuda) at::autocast::set_enabled(on);
  else at::autocast::set_cpu_enabled(on);
  return Napi::Boolean::New(info.Env(), prev);
}
Napi::Value IsAutocastEnabled(const Napi::CallbackInfo& info) {
  bool cuda = AutocastCuda(info[0]);
  return Napi::Boolean::New(info.Env(), cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled());
}
Napi::Value SetAutocastDtype(const Napi::CallbackInfo& info) {
  bool cuda = AutocastCuda(info[0]);
  auto dtype = static_cast<at::ScalarType>(info[1].As<Napi::Number>().Int32Value());
  if (dtype != at::kBFloat16 && dtype != at::kHalf) throw Napi::TypeError::New(info.Env(), "autocast: the dtype must be bfloat16 or float16");
  auto prev = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
  if (cuda) at::autocast::set_autocast_gpu_dtype(dtype);
  else at::autocast::set_autocast_cpu_dtype(dtype);
  return Napi::Number::New(info.Env(), static_cast<double>(prev));
}
Napi::Value AutocastDtype(const Napi::CallbackInfo& info) {
  bool cuda = AutocastCuda(info[0]);
  auto dtype = cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
  return Napi::Number::New(info.Env(), static_cast<double>(dtype));
}
Napi::Value ClearAutocastCache(const Napi::CallbackInfo& info) {
  at::autocast::clear_cache();
  return info.Env().Undefined();
}
Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}
Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}
Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
  return info.Env().Undefined();
}
Napi::Value CudaAvailable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::hasCUDA());
}
// libtorch's profiler (the legacy one, as torch.autograd.profiler.profile): every op between start and
// stop, written as a Chrome trace to the file given to start.
static std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  if (profile) throw Napi::Error::New(info.Env(), "profileStart: a profile is already being recorded");
  profile = std::make_unique<torch::autograd::profiler::RecordProfile>(info[0].As<Napi::String>().Utf8Value());
  return info.Env().Undefined();
}
Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  profile.reset();  // writes the trace
  return info.Env().Undefined();
}
Napi::Value CudaDeviceCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::hasCUDA() ? static_cast<double>(torch::cuda::device_count()) : 0);
}
// Waits for the kernels queued on every CUDA device (timing GPU work; a copy to the host waits too).
Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  if (at::hasCUDA()) torch::cuda::synchronize();
  return info.Env().Undefined();
}
Napi::Value Config(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), at::show_config());
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("call", Napi::Function::New(env, Call));
  exports.Set("opNames", Napi::Function::New(env, OpNames));
  exports.Set("fromArray", Napi::Function::New(env, FromArray));
  exports.Set("toArray", Napi::Function::New(env, ToArray));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("enterInferenceMode", Napi::Function::New(env, EnterInferenceMode));
  exports.Set("exitInferenceMode", Napi::Function::New(env, ExitInferenceMode));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setAutocastEnabled", Napi::Function::New(env, SetAutocastEnabled));
  exports.Set("isAutocastEnabled", Napi::Function::New(env, IsAutocastEnabled));
  exports.Set("setAutocastDtype", Napi::Function::New(env, SetAutocastDtype));
  exports.Set("autocastDtype", Napi::Function::New(env, AutocastDtype));
  exports.Set("clearAutocastCache", Napi::Function::New(env, ClearAutocastCache));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("cudaAvailable", Napi::Function::New(env, CudaAvailable));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, CudaDeviceCount));
  exports.Set("cudaSynchronize", Napi::Function::New(env, CudaSynchronize));
  exports.Set("profileStart", Napi::Function::New(env, ProfileStart));
  exports.Set("profileStop", Napi::Function::New(env, ProfileStop));
  exports.Set("config", Napi::Function::New(env, Config));
  exports.Set("version", Napi::String::New(env, std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." + std::to_string(TORCH_VERSION_PATCH)));
  InitDistributed(env, exports);
  return exports;
}

}  // namespace vgl

static Napi::Object InitVglTorch(Napi::Env env, Napi::Object exports) { return vgl::Init(env, exports); }
NODE_API_MODULE(vgl_torch, InitVglTorch)
