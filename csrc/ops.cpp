// The one binding file: every operator schema of ganfast, and the Python module init that
// makes `import ganfast._C` load this library (which registers the ops with the dispatcher).
// Implementations register per backend in cpu/ and cuda/.
#include <Python.h>
#include <torch/library.h>

#include "core/mlp.h"

extern "C" {
// `import ganfast._C` only needs a module object; the ops live in torch.ops.ganfast.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  PyModule_AddIntConstant(m, "MAX_WIDTH", ganfast::core::kMaxWidth);
  PyModule_AddIntConstant(m, "MAX_LAYERS", ganfast::core::kMaxLayers);
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
      "float[] act_params, float dropout, int seed, int offset) -> (Tensor grad_x, Tensor grad_params)");
}
