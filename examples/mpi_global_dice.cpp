// mpi_global_dice: exact losses across data-parallel ranks (docs/distributed.md).
//
// Every rank generates the same batch from a fixed seed and takes its own slice of the images
// (uneven when the batch does not divide). Each rank computes the statistics of two losses on
// its slice: softmax Dice with one score per class over the whole batch (per_image = false: a
// score needs every rank's pixels) and cross_entropy with ignored pixels (its mean divides by the
// batch's count of pixels not ignored). The two statistics travel in one buffer through one
// MPI_Allreduce(SUM); each rank then finalizes: it gets the batch's loss and the gradient of its
// own logits. Rank 0 gathers the gradient slices and compares the loss and the gradient with one
// process on the whole batch: relative error <= 1e-6, or the program exits non-zero.
//
//   mpirun -np 2 ./mpi_global_dice        (as root, Open MPI also wants --allow-run-as-root)
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include <segloss/segloss.hpp>

using segloss::Tensor;

namespace {

constexpr int64_t kImages = 5, kClasses = 4, kHeight = 24, kWidth = 20;
constexpr int64_t kPixels = kHeight * kWidth;
constexpr int64_t kIgnore = 255;

// The whole batch, the same on every rank: logits (N, C, H, W) and labels (N, H, W) with about
// a tenth of the pixels ignored.
void make_batch(std::vector<float>& logits, std::vector<int64_t>& labels) {
  std::mt19937_64 rng(20261128);
  std::normal_distribution<double> noise(0.0, 1.5);
  std::uniform_int_distribution<int64_t> cls(0, kClasses - 1);
  std::bernoulli_distribution ignored(0.1);
  logits.resize(kImages * kClasses * kPixels);
  labels.resize(kImages * kPixels);
  for (auto& y : labels) y = ignored(rng) ? kIgnore : cls(rng);
  for (int64_t n = 0; n < kImages; ++n)
    for (int64_t c = 0; c < kClasses; ++c)
      for (int64_t i = 0; i < kPixels; ++i) {  // a noisy vote for the true class
        const int64_t y = labels[n * kPixels + i];
        logits[(n * kClasses + c) * kPixels + i] =
            static_cast<float>(noise(rng) + (y == c ? 2.0 : 0.0));
      }
}

// Images [first, first + count) of rank r out of `ranks`.
void my_images(int r, int ranks, int64_t& first, int64_t& count) {
  first = kImages * r / ranks;
  count = kImages * (r + 1) / ranks - first;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);

  std::vector<float> all_logits;
  std::vector<int64_t> all_labels;
  make_batch(all_logits, all_labels);
  int64_t first = 0, count = 0;
  my_images(rank, ranks, first, count);

  segloss::SoftmaxOverlapOptions<float> dice;
  dice.per_image = false;  // one score per class over the batch
  dice.ignore_index = kIgnore;
  segloss::CrossEntropyOptions<float> ce;
  ce.ignore_index = kIgnore;

  // The statistics' sizes are known from the options, so that a rank without images (more ranks
  // than images) can contribute zeros: segloss refuses an empty tensor.
  const size_t ce_size = 3, dice_size = 3 * kClasses;
  std::vector<double> buffer(ce_size + dice_size, 0.0);
  segloss::ShardStatistics ce_st;
  segloss::OverlapStatistics dice_st;
  Tensor<float> x, grad, grad_dice;
  Tensor<int64_t> y;
  if (count > 0) {
    x = Tensor<float>::view(all_logits.data() + first * kClasses * kPixels,
                            {count, kClasses, kHeight, kWidth});
    y = Tensor<int64_t>::view(all_labels.data() + first * kPixels, {count, kHeight, kWidth});
    ce_st = segloss::cross_entropy_statistics(x, y, ce);
    dice_st = segloss::softmax_dice_statistics(x, y, dice);
    std::copy(ce_st.data(), ce_st.data() + ce_st.size(), buffer.begin());
    std::copy(dice_st.data(), dice_st.data() + dice_st.size(), buffer.begin() + ce_size);
  }

  // The one collective of the loss: sum the statistics of every rank, in place.
  MPI_Allreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(buffer.size()), MPI_DOUBLE, MPI_SUM,
                MPI_COMM_WORLD);

  double loss = 0.0;
  if (count > 0) {
    ce_st.global.assign(buffer.begin(), buffer.begin() + ce_size);
    dice_st.global.assign(buffer.begin() + ce_size, buffer.end());
    loss = segloss::cross_entropy_finalize(x, y, ce_st, grad, ce) +
           segloss::softmax_dice_finalize(x, y, dice_st, grad_dice, dice);
    for (int64_t i = 0; i < grad.numel(); ++i) grad[i] += grad_dice[i];
  }

  // Rank 0 gathers the gradient slices and checks against one process on the whole batch.
  std::vector<int> counts(ranks), offsets(ranks);
  for (int r = 0; r < ranks; ++r) {
    int64_t f = 0, c = 0;
    my_images(r, ranks, f, c);
    counts[r] = static_cast<int>(c * kClasses * kPixels);
    offsets[r] = static_cast<int>(f * kClasses * kPixels);
  }
  std::vector<float> gathered(rank == 0 ? all_logits.size() : 0);
  MPI_Gatherv(count > 0 ? grad.data() : nullptr, counts[rank], MPI_FLOAT, gathered.data(),
              counts.data(), offsets.data(), MPI_FLOAT, 0, MPI_COMM_WORLD);
  std::vector<double> losses(ranks);
  MPI_Gather(&loss, 1, MPI_DOUBLE, losses.data(), 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);

  int ok = 1;
  if (rank == 0) {
    const auto xa = Tensor<float>::view(all_logits.data(), {kImages, kClasses, kHeight, kWidth});
    const auto ya = Tensor<int64_t>::view(all_labels.data(), {kImages, kHeight, kWidth});
    const auto a = segloss::cross_entropy_value_and_grad(xa, ya, ce);
    const auto b = segloss::softmax_dice_value_and_grad(xa, ya, dice);
    const double ref = a.value + b.value;
    double loss_err = 0.0, grad_err = 0.0, grad_max = 0.0, shown = 0.0;
    for (int r = ranks - 1; r >= 0; --r)  // every rank with images has the batch's loss
      if (counts[r] > 0) {
        loss_err = std::max(loss_err, std::fabs(losses[r] - ref) / std::fabs(ref));
        shown = losses[r];
      }
    for (size_t i = 0; i < gathered.size(); ++i) {
      const double g = static_cast<double>(a.grad[i]) + b.grad[i];
      grad_max = std::max(grad_max, std::fabs(g));
      grad_err = std::max(grad_err, std::fabs(gathered[i] - g));
    }
    grad_err /= grad_max;
    ok = loss_err <= 1e-6 && grad_err <= 1e-6;
    std::printf("%d ranks, batch of %lld: loss %.9f (one process %.9f)\n", ranks,
                static_cast<long long>(kImages), shown, ref);
    std::printf("relative error: loss %.3e, gradient %.3e (max |diff| / max |grad|): %s\n",
                loss_err, grad_err, ok ? "ok" : "FAILED");
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return ok ? 0 : 1;
}
