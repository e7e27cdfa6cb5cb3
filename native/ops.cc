// The op table: every engine operation JavaScript can call, one line each.
// Argument positions are read with Args (t: tensor, ot: optional tensor, ts: tensor list, d/od: number,
// i/oi: integer, b: boolean, l/ol: integer list, s: string). src/torch/ops.ts mirrors this table.
#include "tensor.h"

#include <c10/core/GradMode.h>

namespace vgl {

namespace {
Napi::Value ToJs(Napi::Env env, const std::vector<int64_t>& v) {
  auto arr = Napi::Array::New(env, v.size());
  for (size_t k = 0; k < v.size(); ++k) arr.Set(k, Napi::Number::New(env, static_cast<double>(v[k])));
  return arr;
}
using vgl::ToJs;

std::vector<int64_t> Vec(at::IntArrayRef r) { return r.vec(); }

// Optional reductions: no dims → reduce everything.
at::Tensor Sum(const Args& a) {
  return a.has(1) ? at::sum(a.t(0), a.l(1), a.b(2)) : at::sum(a.t(0));
}
at::Tensor Mean(const Args& a) {
  return a.has(1) ? at::mean(a.t(0), a.l(1), a.b(2)) : at::mean(a.t(0));
}
at::Tensor Grad(const at::Tensor& t) { return t.grad(); }
// hardtanh has no bf16 backward in libtorch 1.13; clamp has. They differ only exactly at 0 and 6, where
// clamp passes the gradient and hardtanh does not.
at::Tensor Relu6(const at::Tensor& x) { return x.scalar_type() == at::kBFloat16 ? at::clamp(x, 0, 6) : at::hardtanh(x, 0, 6); }
Napi::Value MaybeTensor(Napi::Env env, const at::Tensor& t) { return t.defined() ? Wrap(env, t) : env.Null(); }
}  // namespace

#define OP(name, expr) \
  { #name, [](const Args& a) -> Napi::Value { return ToJs(a.env(), (expr)); } }
#define INPLACE(name, stmt) \
  { #name, [](const Args& a) -> Napi::Value { stmt; return a.env().Undefined(); } }

const std::vector<OpEntry>& OpTable() {
  static const std::vector<OpEntry> table = {
      // creation (shape, ..., dtype, device)
      OP(zeros, at::zeros(a.l(0), a.opts(1, 2))),
      OP(ones, at::ones(a.l(0), a.opts(1, 2))),
      OP(empty, at::empty(a.l(0), a.opts(1, 2))),
      OP(full, at::full(a.l(0), a.scalar(1), a.opts(2, 3))),
      OP(arange, at::arange(a.scalar(0), a.scalar(1), a.scalar(2), a.opts(3, 4))),
      OP(linspace, at::linspace(a.scalar(0), a.scalar(1), a.i(2), a.opts(3, 4))),
      OP(eye, at::eye(a.i(0), a.opts(1, 2))),
      OP(rand, at::rand(a.l(0), a.opts(1, 2))),
      OP(randn, at::randn(a.l(0), a.opts(1, 2))),
      OP(randint, at::randint(a.i(0), a.i(1), a.l(2), a.opts(3, 4).dtype(a.has(3) ? a.dtype(3) : at::kLong))),
      OP(randperm, at::randperm(a.i(0), a.opts(1, 2).dtype(a.has(1) ? a.dtype(1) : at::kLong))),
      OP(multinomial, at::multinomial(a.t(0), a.i(1), a.b(2))),
      OP(bernoulli, at::bernoulli(a.t(0))),

      // properties
      OP(sizes, Vec(a.t(0).sizes())),
      OP(strides, Vec(a.t(0).strides())),
      OP(dtype, static_cast<int64_t>(a.t(0).scalar_type())),
      {"device", [](const Args& a) -> Napi::Value { return Napi::String::New(a.env(), a.t(0).device().str()); }},
      OP(numel, static_cast<int64_t>(a.t(0).numel())),
      OP(requires_grad, a.t(0).requires_grad()),
      OP(is_leaf, a.t(0).is_leaf()),
      OP(is_contiguous, a.t(0).is_contiguous(a.b(1) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)),
      OP(item, a.t(0).item<double>()),
      OP(same_storage, a.t(0).is_alias_of(a.t(1))),

      // conversion
      OP(to_dtype, a.t(0).to(a.dtype(1))),
      OP(to_device, a.t(0).to(at::Device(a.s(1)))),
      OP(contiguous, a.t(0).contiguous(a.b(1) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)),
      OP(clone, a.t(0).clone()),
      OP(detach, a.t(0).detach()),

      // autograd
      INPLACE(requires_grad_, a.t(0).requires_grad_(a.b(1))),
      INPLACE(backward, a.t(0).backward(a.ot(1).value_or(at::Tensor()), a.b(2))),
      {"grad", [](const Args& a) -> Napi::Value { return MaybeTensor(a.env(), Grad(a.t(0))); }},
      INPLACE(set_grad, a.t(0).mutable_grad() = a.ot(1).value_or(at::Tensor())),
      INPLACE(retain_grad, a.t(0).retain_grad()),

      // element-wise arithmetic (broadcasting)
      OP(add, at::add(a.t(0), a.t(1), a.scalar(2))),
      OP(sub, at::sub(a.t(0), a.t(1), a.scalar(2))),
      OP(mul, at::mul(a.t(0), a.t(1))),
      OP(div, at::div(a.t(0), a.t(1))),
      OP(add_scalar, at::add(a.t(0), a.scalar(1))),
      OP(mul_scalar, at::mul(a.t(0), a.scalar(1))),
      OP(div_scalar, at::div(a.t(0), a.scalar(1))),
      OP(rsub_scalar, at::rsub(a.t(0), a.scalar(1))),
      OP(rdiv_scalar, at::reciprocal(a.t(0)).mul(a.scalar(1))),
      OP(pow_scalar, at::pow(a.t(0), a.scalar(1))),
      OP(pow, at::pow(a.t(0), a.t(1))),
      OP(maximum, at::maximum(a.t(0), a.t(1))),
      OP(minimum, at::minimum(a.t(0), a.t(1))),
      OP(clamp, at::clamp(a.t(0), a.has(1) ? c10::optional<at::Scalar>(a.scalar(1)) : c10::nullopt,
                          a.has(2) ? c10::optional<at::Scalar>(a.scalar(2)) : c10::nullopt)),
      OP(neg, at::neg(a.t(0))),
      OP(abs, at::abs(a.t(0))),
      OP(sign, at::sign(a.t(0))),
      OP(sqrt, at::sqrt(a.t(0))),
      OP(rsqrt, at::rsqrt(a.t(0))),
      OP(reciprocal, at::reciprocal(a.t(0))),
      OP(exp, at::exp(a.t(0))),
      OP(log, at::log(a.t(0))),
      OP(log1p, at::log1p(a.t(0))),
      OP(tanh, at::tanh(a.t(0))),
      OP(sigmoid, at::sigmoid(a.t(0))),
      OP(relu, at::relu(a.t(0))),
      OP(relu6, Relu6(a.t(0))),
      OP(leaky_relu, at::leaky_relu(a.t(0), a.scalar(1))),
      OP(softplus, at::softplus(a.t(0), a.scalar(1), a.scalar(2))),
      OP(floor, at::floor(a.t(0))),
      OP(round, at::round(a.t(0))),

      // comparison and logic
      OP(eq, at::eq(a.t(0), a.t(1))),
      OP(ne, at::ne(a.t(0), a.t(1))),
      OP(lt, at::lt(a.t(0), a.t(1))),
      OP(le, at::le(a.t(0), a.t(1))),
      OP(gt, at::gt(a.t(0), a.t(1))),
      OP(ge, at::ge(a.t(0), a.t(1))),
      OP(eq_scalar, at::eq(a.t(0), a.scalar(1))),
      OP(ne_scalar, at::ne(a.t(0), a.scalar(1))),
      OP(lt_scalar, at::lt(a.t(0), a.scalar(1))),
      OP(le_scalar, at::le(a.t(0), a.scalar(1))),
      OP(gt_scalar, at::gt(a.t(0), a.scalar(1))),
      OP(ge_scalar, at::ge(a.t(0), a.scalar(1))),
      OP(logical_and, at::logical_and(a.t(0), a.t(1))),
      OP(logical_or, at::logical_or(a.t(0), a.t(1))),
      OP(logical_not, at::logical_not(a.t(0))),
      OP(where, at::where(a.t(0), a.t(1), a.t(2))),
      OP(isfinite, at::isfinite(a.t(0))),
      OP(allclose, at::allclose(a.t(0), a.t(1), a.d(2), a.d(3))),
      OP(equal, at::equal(a.t(0), a.t(1))),

      // reductions (dims may be null = all)
      {"sum", [](const Args& a) -> Napi::Value { return Wrap(a.env(), Sum(a)); }},
      {"mean", [](const Args& a) -> Napi::Value { return Wrap(a.env(), Mean(a)); }},
      OP(amax, at::amax(a.t(0), a.l(1), a.b(2))),
      OP(amin, at::amin(a.t(0), a.l(1), a.b(2))),
      OP(max_dim, at::max(a.t(0), a.i(1), a.b(2))),
      OP(min_dim, at::min(a.t(0), a.i(1), a.b(2))),
      OP(max_all, at::max(a.t(0))),
      OP(min_all, at::min(a.t(0))),
      OP(argmax, at::argmax(a.t(0), a.oi(1), a.b(2))),
      OP(argmin, at::argmin(a.t(0), a.oi(1), a.b(2))),
      OP(norm, at::norm(a.t(0), a.scalar(1), a.l(2), a.b(3))),
      OP(var, at::var(a.t(0), a.l(1), a.b(2), a.b(3))),
      OP(logsumexp, at::logsumexp(a.t(0), a.l(1), a.b(2))),
      OP(cumsum, at::cumsum(a.t(0), a.i(1))),
      OP(softmax, at::softmax(a.t(0), a.i(1))),
      OP(log_softmax, at::log_softmax(a.t(0), a.i(1))),
      OP(any, at::any(a.t(0))),
      OP(all, at::all(a.t(0))),

      // linear algebra
      OP(matmul, at::matmul(a.t(0), a.t(1))),
      OP(mm, at::mm(a.t(0), a.t(1))),
      OP(bmm, at::bmm(a.t(0), a.t(1))),
      OP(linear, at::linear(a.t(0), a.t(1), a.ot(2))),
      OP(einsum, at::einsum(a.s(0), a.ts(1))),
      OP(cdist, at::cdist(a.t(0), a.t(1), a.d(2))),

      // neural-network ops
      OP(conv2d, at::conv2d(a.t(0), a.t(1), a.ot(2), a.l(3), a.l(4), a.l(5), a.i(6))),
      OP(batch_norm, at::batch_norm(a.t(0), a.ot(1), a.ot(2), a.ot(3), a.ot(4), a.b(5), a.d(6), a.d(7), true)),
      OP(max_pool2d, at::max_pool2d(a.t(0), a.l(1), a.l(2), a.l(3), a.l(4), a.b(5))),
      OP(avg_pool2d, at::avg_pool2d(a.t(0), a.l(1), a.l(2), a.l(3), a.b(4), a.b(5))),
      OP(adaptive_avg_pool2d, at::adaptive_avg_pool2d(a.t(0), a.l(1))),
      OP(adaptive_max_pool2d, std::get<0>(at::adaptive_max_pool2d(a.t(0), a.l(1)))),
      OP(upsample_bilinear2d, at::upsample_bilinear2d(a.t(0), a.l(1), a.b(2))),
      OP(upsample_nearest2d, at::upsample_nearest2d(a.t(0), a.l(1))),
      OP(upsample_bicubic2d, a.b(3) ? at::_upsample_bicubic2d_aa(a.t(0), a.l(1), a.b(2)) : at::upsample_bicubic2d(a.t(0), a.l(1), a.b(2))),
      OP(layer_norm, at::layer_norm(a.t(0), a.l(1), a.ot(2), a.ot(3), a.d(4))),
      OP(gelu, at::gelu(a.t(0), a.s(1))),
      OP(dropout, at::dropout(a.t(0), a.d(1), a.b(2))),
      OP(constant_pad_nd, at::constant_pad_nd(a.t(0), a.l(1), a.scalar(2))),

      // shape and indexing
      OP(reshape, at::reshape(a.t(0), a.l(1))),
      OP(view, a.t(0).view(a.l(1))),
      OP(permute, a.t(0).permute(a.l(1))),
      OP(transpose, at::transpose(a.t(0), a.i(1), a.i(2))),
      OP(flatten, at::flatten(a.t(0), a.i(1), a.i(2))),
      OP(squeeze, at::squeeze(a.t(0), a.i(1))),
      OP(unsqueeze, at::unsqueeze(a.t(0), a.i(1))),
      OP(expand, a.t(0).expand(a.l(1))),
      OP(repeat, a.t(0).repeat(a.l(1))),
      OP(slice, at::slice(a.t(0), a.i(1), a.oi(2), a.oi(3), a.i(4))),
      OP(narrow, at::narrow(a.t(0), a.i(1), a.i(2), a.i(3))),
      OP(select, at::select(a.t(0), a.i(1), a.i(2))),
      OP(index_select, at::index_select(a.t(0), a.i(1), a.t(2))),
      OP(gather, at::gather(a.t(0), a.i(1), a.t(2))),
      OP(scatter, at::scatter(a.t(0), a.i(1), a.t(2), a.t(3))),
      OP(masked_fill, at::masked_fill(a.t(0), a.t(1), a.scalar(2))),
      OP(masked_select, at::masked_select(a.t(0), a.t(1))),
      OP(nonzero, at::nonzero(a.t(0))),
      OP(cat, at::cat(a.ts(0), a.i(1))),
      OP(stack, at::stack(a.ts(0), a.i(1))),
      OP(split, at::split(a.t(0), a.i(1), a.i(2))),
      OP(flip, at::flip(a.t(0), a.l(1))),
      OP(topk, at::topk(a.t(0), a.i(1), a.i(2), a.b(3), a.b(4))),
      OP(sort, at::sort(a.t(0), a.i(1), a.b(2))),
      OP(argsort, at::argsort(a.t(0), a.i(1), a.b(2))),
      OP(linalg_eigh, at::linalg_eigh(a.t(0), a.s(1))),

      // in-place updates (optimizers, buffers): return nothing
      INPLACE(add_, a.t(0).add_(a.t(1), a.scalar(2))),
      INPLACE(add_scalar_, a.t(0).add_(a.scalar(1))),
      INPLACE(mul_, a.t(0).mul_(a.t(1))),
      INPLACE(mul_scalar_, a.t(0).mul_(a.scalar(1))),
      INPLACE(div_, a.t(0).div_(a.t(1))),
      INPLACE(div_scalar_, a.t(0).div_(a.scalar(1))),
      INPLACE(addcmul_, a.t(0).addcmul_(a.t(1), a.t(2), a.scalar(3))),
      INPLACE(addcdiv_, a.t(0).addcdiv_(a.t(1), a.t(2), a.scalar(3))),
      INPLACE(lerp_, a.t(0).lerp_(a.t(1), a.scalar(2))),
      INPLACE(sqrt_, a.t(0).sqrt_()),
      INPLACE(relu_, a.t(0).relu_()),
      INPLACE(clamp_, a.t(0).clamp_(a.has(1) ? c10::optional<at::Scalar>(a.scalar(1)) : c10::nullopt,
                                    a.has(2) ? c10::optional<at::Scalar>(a.scalar(2)) : c10::nullopt)),
      INPLACE(copy_, a.t(0).copy_(a.t(1))),
      INPLACE(set_data, a.t(0).set_data(a.t(1))),
      INPLACE(zero_, a.t(0).zero_()),
      INPLACE(fill_, a.t(0).fill_(a.scalar(1))),
      INPLACE(index_copy_, a.t(0).index_copy_(a.i(1), a.t(2), a.t(3))),
  };
  return table;
}

}  // namespace vgl
