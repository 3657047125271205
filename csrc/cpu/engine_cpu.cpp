// The fused training engine on the CPU: one MemberTrainer per population member, members
// spread over threads (each member's arithmetic is serial, so results do not depend on the
// thread count; torch.set_num_threads sets how many).
#include <vector>

#include "../engine_args.h"
#include "kernels.h"
#include "threads.h"

namespace ganfast {
namespace {

at::Tensor gan_train_cpu(at::Tensor g_params, at::Tensor d_params, at::Tensor g_opt, at::Tensor d_opt,
                         at::Tensor offsets, at::Tensor epochs, at::Tensor diverged, const at::Tensor& seeds,
                         const at::Tensor& lrs, const at::Tensor& desc_tensor, int64_t num_epochs) {
  const core::GanDesc desc = make_gan_desc(desc_tensor);
  const GanState st{g_params, d_params, g_opt, d_opt, offsets, epochs, diverged, seeds, lrs};
  const int64_t P = check_gan_state(desc, st);
  TORCH_CHECK(num_epochs >= 0, "ganfast: num_epochs must be >= 0");
  const int64_t* seed_p = seeds.data_ptr<int64_t>();
  check_gan_counters(seed_p, offsets.data_ptr<int64_t>(), epochs.data_ptr<int64_t>(), diverged.data_ptr<int64_t>(),
                     lrs.data_ptr<double>(), P);
  at::Tensor metrics = at::full({P, core::kNumMetrics}, std::numeric_limits<double>::quiet_NaN(),
                                g_params.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(g_params.scalar_type(), "gan_train_", [&] {
    scalar_t* gp = g_params.data_ptr<scalar_t>();
    scalar_t* dp = d_params.data_ptr<scalar_t>();
    scalar_t* go = g_opt.data_ptr<scalar_t>();
    scalar_t* dop = d_opt.data_ptr<scalar_t>();
    int64_t* off = offsets.data_ptr<int64_t>();
    int64_t* ep = epochs.data_ptr<int64_t>();
    int64_t* dv = diverged.data_ptr<int64_t>();
    const double* lr = lrs.data_ptr<double>();
    double* met = metrics.data_ptr<double>();
    const int64_t nG = desc.g.num_params, nD = desc.d.num_params;
    cpu::parallel_chunks(P, 1, [&](int64_t begin, int64_t end) {
      std::vector<uint64_t> offset(end - begin);
      std::vector<core::MemberState<scalar_t>> members;
      for (int64_t k = begin; k < end; ++k) {
        offset[k - begin] = static_cast<uint64_t>(off[k]);
        members.push_back({gp + k * nG, dp + k * nD, go + 2 * k * nG, dop + 2 * k * nD,
                           static_cast<uint64_t>(seed_p[k]), &offset[k - begin], ep + k, dv + k, lr[2 * k],
                           lr[2 * k + 1]});
      }
      cpu::kernels<scalar_t>().train_members(desc, members.data(), end - begin, num_epochs,
                                             met + begin * core::kNumMetrics);
      for (int64_t k = begin; k < end; ++k) off[k] = static_cast<int64_t>(offset[k - begin]);
    });
  });
  return metrics;
}

void gan_check_description(const at::Tensor& desc) { make_gan_desc(desc); }

}  // namespace

TORCH_LIBRARY_IMPL(ganfast, CPU, m) {
  m.impl("gan_train_", &gan_train_cpu);
  m.impl("gan_check_description", &gan_check_description);
}

}  // namespace ganfast
