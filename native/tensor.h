// Shared between the addon's translation units: how a libtorch tensor travels through JavaScript,
// and how JavaScript arguments are read for an op.
#pragma once
#include <ATen/ATen.h>
#include <napi.h>
#include <c10/util/Optional.h>
#include <string>
#include <vector>

namespace vgl {

// A tensor owned by JavaScript. `dispose()` drops the reference at once; the External's finalizer is
// only the safety net for handles JavaScript forgot.
struct TensorBox {
  static constexpr uint32_t kMagic = 0x76676c54;  // "vglT"
  uint32_t magic = kMagic;
  at::Tensor t;
  int64_t reported = 0;  // bytes announced to V8 as external memory
};

Napi::Value Wrap(Napi::Env env, at::Tensor t);
at::Tensor& Unwrap(const Napi::Value& v, size_t argIndex);

// Positional arguments of one op call (info[first...]), read by type.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, size_t first) : info_(info), first_(first) {}
  size_t size() const { return info_.Length() - first_; }
  Napi::Env env() const { return info_.Env(); }
  bool has(size_t i) const;  // present and not null/undefined

  at::Tensor& t(size_t i) const;
  c10::optional<at::Tensor> ot(size_t i) const;
  std::vector<at::Tensor> ts(size_t i) const;
  double d(size_t i) const;
  c10::optional<double> od(size_t i) const;
  int64_t i(size_t i) const;
  c10::optional<int64_t> oi(size_t i) const;
  bool b(size_t i) const;
  std::vector<int64_t> l(size_t i) const;
  c10::optional<std::vector<int64_t>> ol(size_t i) const;
  std::vector<double> dl(size_t i) const;
  std::string s(size_t i) const;
  at::ScalarType dtype(size_t i) const;
  at::TensorOptions opts(size_t dtypeIndex, size_t deviceIndex) const;
  at::Scalar scalar(size_t i) const;

 private:
  Napi::Value at(size_t i) const;
  [[noreturn]] void fail(size_t i, const char* expected) const;
  const Napi::CallbackInfo& info_;
  size_t first_;
};

// The op table (ops.cc): name + a function of the arguments returning a JavaScript value.
using OpFn = Napi::Value (*)(const Args&);
struct OpEntry {
  const char* name;
  OpFn fn;
};
const std::vector<OpEntry>& OpTable();

// Results of ops → JavaScript.
inline Napi::Value ToJs(Napi::Env env, const at::Tensor& t) { return Wrap(env, t); }
inline Napi::Value ToJs(Napi::Env env, double v) { return Napi::Number::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, int64_t v) { return Napi::Number::New(env, static_cast<double>(v)); }
inline Napi::Value ToJs(Napi::Env env, bool v) { return Napi::Boolean::New(env, v); }
inline Napi::Value ToJs(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t k = 0; k < ts.size(); ++k) arr.Set(k, Wrap(env, ts[k]));
  return arr;
}
template <typename... T>
Napi::Value ToJs(Napi::Env env, const std::tuple<T...>& tup) {
  auto arr = Napi::Array::New(env, sizeof...(T));
  uint32_t k = 0;
  std::apply([&](const auto&... x) { ((arr.Set(k++, ToJs(env, x))), ...); }, tup);
  return arr;
}

}  // namespace vgl
