// The one binding file: every operator schema of ganfast, and the Python module init that
// makes `import ganfast._C` load this library (which registers the ops with the dispatcher).
// Implementations register per backend in cpu/ and cuda/.
#include <Python.h>
#include <torch/library.h>

#include "core/mlp_desc.h"
#include "cpu/kernels.h"

extern "C" {
// `import ganfast._C` only needs a module object; the ops live in torch.ops.ganfast.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  PyModule_AddIntConstant(m, "MAX_WIDTH", ganfast::core::kMaxWidth);
  PyModule_AddIntConstant(m, "MAX_LAYERS", ganfast::core::kMaxLayers);
  PyModule_AddStringConstant(m, "CPU_ISA", ganfast::cpu::kernel_isa());
#ifdef GANFAST_WITH_CUDA
  PyModule_AddIntConstant(m, "WITH_CUDA", 1);
#else
  PyModule_AddIntConstant(m, "WITH_CUDA", 0);
#endif
  return m;
}
}

TORCH_LIBRARY(ganfast, m) {
  m.def("fill_uniform_(Tensor(a!) out, int seed, int offset, float lo, float hi) -> ()");
  m.def("fill_normal_(Tensor(a!) out, int seed, int offset, float mean, float std) -> ()");
  m.def(
      "mlp_forward(Tensor x, Tensor params, int[] widths, int[] acts, float[] act_params, "
      "float dropout, int seed, int offset) -> (Tensor out, Tensor saved)");
  m.def(
      "mlp_backward(Tensor grad_out, Tensor x, Tensor params, Tensor saved, int[] widths, int[] acts, "
      "float[] act_params, float dropout, int seed, int offset, bool[2] output_mask=[True, True]) "
      "-> (Tensor grad_x, Tensor grad_params)");
  // mlp_backward's math, differentiable: the backward of mlp_forward when autograd builds a graph
  // of it (create_graph=True: a gradient penalty). Implemented in Python on the pure-PyTorch
  // reference (ganfast/ops.py, CompositeImplicitAutograd), so higher derivatives are the
  // reference's; raises for what the reference cannot express (per-layer hidden activations).
  m.def(
      "mlp_backward_differentiable(Tensor grad_out, Tensor x, Tensor params, int[] widths, int[] acts, "
      "float[] act_params, float dropout, int seed, int offset, bool[2] output_mask) "
      "-> (Tensor grad_x, Tensor grad_params)");
  // output_mask: which of (grad_x, grad_params) to compute; an output left out is an empty (0,)
  // tensor. Autograd passes needs_input_grad: D's weight gradient in G's step, or the gradient
  // of a batch of real images, is work nobody reads.
  // One forward pass of every member of a population on the same batch: params (P, n_params),
  // out (P, N, d_L); member k is computed exactly as mlp_forward(x, params[k], ...) computes it
  // (the same dropout words from (seed, offset)), so a member's output does not depend on the
  // others, on P or on the thread count. For sampling trained generators (ganfast.sample); not
  // differentiable (its autograd kernel refuses inputs that need a gradient).
  m.def(
      "mlp_forward_population(Tensor x, Tensor params, int[] widths, int[] acts, float[] act_params, "
      "float dropout, int seed, int offset) -> Tensor");
  // The whole toy-GAN loop for a population of P GANs, num_epochs epochs, in place on the
  // state tensors; returns the (P, 5) metrics of the last epoch (docs/design.md, "Engine").
  // `diverged` (P,): -1, or the epoch at whose end the member was first non-finite; such a
  // member is frozen and its metrics are NaN (docs/design.md, "Divergence").
  // `desc` is the GAN's description packed into one float64 CPU tensor (layout: engine_args.h).
  m.def(
      "gan_train_(Tensor(a!) g_params, Tensor(b!) d_params, Tensor(c!) g_opt, Tensor(d!) d_opt, "
      "Tensor(e!) offsets, Tensor(f!) epochs, Tensor(g!) diverged, Tensor seeds, Tensor lrs, Tensor desc, "
      "int num_epochs) -> Tensor metrics");
  // Reads a packed description and checks every field, as gan_train_ does: ganfast.engine calls
  // it once when it packs a description, so a bad one fails where it is built.
  m.def("gan_check_description(Tensor desc) -> ()");
}
