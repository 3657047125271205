// Autograd for mlp_forward, in C++: the backward pass calls mlp_backward without going back
// through Python (torch.library.register_autograd costs ~100 us per call, more than the whole
// fused kernel for the toy networks). Device-agnostic: both ops are called through the
// dispatcher, which picks the CPU or CUDA implementation.
//
// Higher derivatives (a gradient penalty: create_graph=True): when autograd records the backward
// (GradMode on inside it), the backward is mlp_backward_differentiable instead, the reference
// math in Python, whose own graph autograd then differentiates (docs/design.md, "Second-order
// gradients"). mlp_backward itself has no derivative and says so rather than return gradients
// that silently stop.
#include <array>

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

namespace ganfast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

using ForwardSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, at::IntArrayRef,
                                                      at::IntArrayRef, at::ArrayRef<double>, double, int64_t,
                                                      int64_t);
using BackwardSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                       const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                                       at::ArrayRef<double>, double, int64_t, int64_t,
                                                       std::array<bool, 2>);

const c10::TypedOperatorHandle<ForwardSig>& forward_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("ganfast::mlp_forward", "").typed<ForwardSig>();
  return op;
}

const c10::TypedOperatorHandle<BackwardSig>& backward_op() {
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("ganfast::mlp_backward", "").typed<BackwardSig>();
  return op;
}

using DiffBackwardSig = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                           at::IntArrayRef, at::IntArrayRef, at::ArrayRef<double>,
                                                           double, int64_t, int64_t, std::array<bool, 2>);

const c10::TypedOperatorHandle<DiffBackwardSig>& diff_backward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("ganfast::mlp_backward_differentiable", "")
                             .typed<DiffBackwardSig>();
  return op;
}

using PopulationSig = at::Tensor(const at::Tensor&, const at::Tensor&, at::IntArrayRef, at::IntArrayRef,
                                  at::ArrayRef<double>, double, int64_t, int64_t);

const c10::TypedOperatorHandle<PopulationSig>& population_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("ganfast::mlp_forward_population", "")
                             .typed<PopulationSig>();
  return op;
}

class MlpFunction : public torch::autograd::Function<MlpFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& params,
                               std::vector<int64_t> widths, std::vector<int64_t> acts,
                               std::vector<double> act_params, double dropout, int64_t seed, int64_t offset) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [out, saved] = forward_op().call(x, params, widths, acts, act_params, dropout, seed, offset);
    ctx->save_for_backward({x, params, saved});
    // Two entries, not six: each is a string-keyed insert, and this runs on every training call.
    std::vector<int64_t> ints = {seed, offset, static_cast<int64_t>(widths.size())};
    ints.insert(ints.end(), widths.begin(), widths.end());
    ints.insert(ints.end(), acts.begin(), acts.end());
    act_params.push_back(dropout);
    ctx->saved_data["i"] = std::move(ints);
    ctx->saved_data["f"] = std::move(act_params);
    ctx->mark_non_differentiable({saved});
    return {out, saved};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    variable_list result(8);
    if (!grads[0].defined()) return result;
    const auto ints = ctx->saved_data["i"].toIntVector();
    auto floats = ctx->saved_data["f"].toDoubleVector();
    const double dropout = floats.back();
    floats.pop_back();
    const int64_t n_widths = ints[2];
    const at::IntArrayRef widths(ints.data() + 3, n_widths);
    const at::IntArrayRef acts(ints.data() + 3 + n_widths, n_widths - 1);
    // Only what autograd asks for: e.g. no weight gradient for a D whose parameters are frozen
    // during G's step, no input gradient for a batch of real data.
    const std::array<bool, 2> mask = {ctx->needs_input_grad(0), ctx->needs_input_grad(1)};
    if (at::GradMode::is_enabled()) {  // create_graph: a backward that is itself differentiable
      auto [grad_x, grad_params] = diff_backward_op().call(grads[0], saved[0], saved[1], widths, acts, floats,
                                                           dropout, ints[0], ints[1], mask);
      if (mask[0]) result[0] = grad_x;
      if (mask[1]) result[1] = grad_params;
      return result;
    }
    auto [grad_x, grad_params] = backward_op().call(grads[0].contiguous(), saved[0], saved[1], saved[2], widths,
                                                    acts, floats, dropout, ints[0], ints[1], mask);
    if (mask[0]) result[0] = grad_x;
    if (mask[1]) result[1] = grad_params;
    return result;
  }
};

std::tuple<at::Tensor, at::Tensor> mlp_forward_autograd(const at::Tensor& x, const at::Tensor& params,
                                                        at::IntArrayRef widths, at::IntArrayRef acts,
                                                        at::ArrayRef<double> act_params, double dropout, int64_t seed,
                                                        int64_t offset) {
  if (!at::GradMode::is_enabled() || !(x.requires_grad() || params.requires_grad())) {
    at::AutoDispatchBelowADInplaceOrView guard;  // nothing to differentiate: no graph node
    return forward_op().call(x, params, widths, acts, act_params, dropout, seed, offset);
  }
  auto r = MlpFunction::apply(x, params, widths.vec(), acts.vec(), act_params.vec(), dropout, seed, offset);
  return {r[0], r[1]};
}

// The fused backward has no derivative of its own (MlpFunction uses mlp_backward_differentiable
// when one is needed): called where autograd would have to differentiate it, it refuses.
std::tuple<at::Tensor, at::Tensor> mlp_backward_autograd(const at::Tensor& grad_out, const at::Tensor& x,
                                                         const at::Tensor& params, const at::Tensor& saved,
                                                         at::IntArrayRef widths, at::IntArrayRef acts,
                                                         at::ArrayRef<double> act_params, double dropout,
                                                         int64_t seed, int64_t offset,
                                                         std::array<bool, 2> output_mask) {
  TORCH_CHECK(!at::GradMode::is_enabled() ||
                  !(grad_out.requires_grad() || x.requires_grad() || params.requires_grad() || saved.requires_grad()),
              "ganfast: mlp_backward is not differentiable; differentiate mlp_forward instead (its backward "
              "is differentiable under create_graph=True), or call mlp_backward under torch.no_grad()");
  at::AutoDispatchBelowADInplaceOrView guard;
  return backward_op().call(grad_out, x, params, saved, widths, acts, act_params, dropout, seed, offset,
                            output_mask);
}

// The population forward samples trained networks; it has no backward. Rather than return an
// output that silently carries no gradient, it refuses inputs that would need one.
at::Tensor mlp_forward_population_autograd(const at::Tensor& x, const at::Tensor& params, at::IntArrayRef widths,
                                           at::IntArrayRef acts, at::ArrayRef<double> act_params, double dropout,
                                           int64_t seed, int64_t offset) {
  TORCH_CHECK(!at::GradMode::is_enabled() || !(x.requires_grad() || params.requires_grad()),
              "ganfast: mlp_forward_population is not differentiable (it samples trained networks); call it "
              "under torch.no_grad() or on detached tensors, or use mlp_forward per member for gradients");
  at::AutoDispatchBelowADInplaceOrView guard;
  return population_op().call(x, params, widths, acts, act_params, dropout, seed, offset);
}

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, Autograd, m) {
  m.impl("mlp_forward", &mlp_forward_autograd);
  m.impl("mlp_backward", &mlp_backward_autograd);
  m.impl("mlp_forward_population", &mlp_forward_population_autograd);
}

}  // namespace ganfast
