// Differential-fuzz driver: runs segloss on the cases fuzz.py writes and prints the results
// fuzz.py compares with its PyTorch / scipy references (README.md in this folder).
//
// Usage: driver CASES RESULTS
//
// CASES is a whitespace-separated token stream of cases:
//   case <id> <kind>
//   <key> <count> <v1> ... <v_count>      (any number of fields, in any order)
//   end
// An array field "x" comes with "x.shape <rank> <d1> ... <d_rank>"; values are decimal numbers
// (doubles round-trip through Python's repr) or words (reduction "mean", ...). Absent fields take
// segloss's defaults unless noted below. Kinds and their fields:
//   lsm   lovasz_softmax:  x y(int) reduction per_image classes class_list ignore_index grad_out
//   lhg   lovasz_hinge:    x y reduction per_image ignore grad_out
//   bd    bce_dice:        x z bce_weight dice_weight b.* (bce_with_logits) d.* (soft_dice)
//   cd    ce_dice, labels: x y(int) ce_weight dice_weight c.* (cross_entropy) d.* (softmax_dice)
//   cdp   ce_dice, probabilities: as cd with q (N, C, ...) for y
//   dfo   dice_focal:      x y(int) dice_weight focal_weight d.* f.* (softmax_focal)
//   sd    surface_distance (masks):      pred target spacing percentile tolerance
//                                        class_tolerance directed empty
//   sdl   surface_distance_labels:       as sd with integer maps, classes and ignore_index
// grad_out (reduction none) is the upstream gradient of the per-problem losses.
//
// RESULTS has one line per case: "<id> OK" and then "<key> <count> <values>" per result
// (%.17g), or "<id> ERR <message>" where segloss threw. Losses give value and grad (plus fwd, the
// forward-only value, and the parts of the combined losses); surface metrics give hd hdp assd
// nsd bp bt (one per image and class), their means and the empty counts.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

namespace {

using namespace segloss;

// ---------------------------------------------------------------------------- case fields

class Fields {
 public:
  void set(const std::string& key, std::vector<std::string> values) {
    fields_[key] = std::move(values);
  }
  bool has(const std::string& key) const { return fields_.count(key) > 0; }

  double real(const std::string& key, double fallback) const {
    return has(key) ? std::strtod(first(key).c_str(), nullptr) : fallback;
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    return has(key) ? std::strtoll(first(key).c_str(), nullptr, 10) : fallback;
  }
  bool flag(const std::string& key, bool fallback) const {
    return integer(key, fallback ? 1 : 0) != 0;
  }
  std::string word(const std::string& key, const std::string& fallback) const {
    return has(key) ? first(key) : fallback;
  }
  std::vector<double> reals(const std::string& key) const {
    std::vector<double> v;
    if (has(key))
      for (const auto& s : fields_.at(key)) v.push_back(std::strtod(s.c_str(), nullptr));
    return v;
  }
  std::vector<int64_t> integers(const std::string& key) const {
    std::vector<int64_t> v;
    if (has(key))
      for (const auto& s : fields_.at(key)) v.push_back(std::strtoll(s.c_str(), nullptr, 10));
    return v;
  }
  // The double tensor `key` shaped by `key.shape`; undefined (an absent option) without it.
  Tensor<double> reals_tensor(const std::string& key) const {
    if (!has(key)) return Tensor<double>();
    return Tensor<double>::from(reals(key), shape(key));
  }
  Tensor<int64_t> integers_tensor(const std::string& key) const {
    return Tensor<int64_t>::from(integers(key), shape(key));
  }
  Reduction reduction(const std::string& key) const {
    const auto s = word(key, "mean");
    return s == "sum" ? Reduction::sum : s == "none" ? Reduction::none : Reduction::mean;
  }

 private:
  const std::string& first(const std::string& key) const { return fields_.at(key).at(0); }
  Shape shape(const std::string& key) const {
    const auto v = integers(key + ".shape");
    return Shape(v.begin(), v.end());
  }
  std::map<std::string, std::vector<std::string>> fields_;
};

EmptyPolicy empty_policy(const std::string& s) {
  return s == "one"    ? EmptyPolicy::one
         : s == "zero" ? EmptyPolicy::zero
         : s == "skip" ? EmptyPolicy::skip
                       : EmptyPolicy::formula;
}

// ---------------------------------------------------------------------------- results

class Results {
 public:
  void put(const char* name, double v) { out_ << ' ' << name << " 1 " << number(v); }
  template <class T>
  void put(const char* name, const Tensor<T>& t) {
    out_ << ' ' << name << ' ' << t.numel();
    for (int64_t i = 0; i < t.numel(); ++i) out_ << ' ' << number(double(t.data()[i]));
  }
  std::string str() const { return out_.str(); }

 private:
  static std::string number(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.17g", v);
    return b;
  }
  std::ostringstream out_;
};

// ---------------------------------------------------------------------------- options

// The Dice options shared by soft_dice (bce_dice) and softmax_dice (ce_dice, dice_focal).
template <class O>
void read_overlap_options(const Fields& f, const std::string& p, O& o) {
  o.reduction = f.reduction(p + "reduction");
  o.smooth_nr = f.real(p + "smooth_nr", 1e-5);
  o.smooth_dr = f.real(p + "smooth_dr", 1e-5);
  o.per_image = f.flag(p + "per_image", true);
  o.squared = f.flag(p + "squared", false);
  o.class_weight = f.reals_tensor(p + "class_weight");
  o.include_background = f.flag(p + "include_background", true);
  o.empty = empty_policy(f.word(p + "empty", "formula"));
  o.gamma = f.real(p + "gamma", 1.0);
  o.log = f.flag(p + "log", false);
  o.clamp = f.flag(p + "clamp", false);
}

CrossEntropyOptions<double> read_ce_options(const Fields& f) {
  CrossEntropyOptions<double> o;
  o.reduction = f.reduction("c.reduction");
  o.weight = f.reals_tensor("c.weight");
  o.ignore_index = f.integer("c.ignore_index", -100);
  o.label_smoothing = f.real("c.label_smoothing", 0);
  o.ignore_negative = f.flag("c.ignore_negative", false);
  o.mean_over = f.word("c.mean_over", "weights") == "valid_pixels" ? MeanOver::valid_pixels
                                                                   : MeanOver::weights;
  o.all_ignored = f.word("c.all_ignored", "zero") == "nan" ? AllIgnored::nan : AllIgnored::zero;
  return o;
}

// ---------------------------------------------------------------------------- the losses

// A Lovász loss: with reduction none, the per-problem values and the backward of grad_out;
// otherwise value_and_grad's value and gradient, and the forward's value as fwd.
template <class Forward, class Backward, class ValueAndGrad>
void lovasz_results(const Fields& f, Reduction reduction, Forward forward, Backward backward,
                    ValueAndGrad value_and_grad, Results& r) {
  if (reduction == Reduction::none) {
    r.put("value", forward());
    r.put("grad", backward(f.reals_tensor("grad_out")));
    return;
  }
  auto vg = value_and_grad();
  r.put("value", vg.value);
  r.put("fwd", forward().data()[0]);
  r.put("grad", vg.grad);
}

void run_lovasz_softmax(const Fields& f, Results& r) {
  const auto x = f.reals_tensor("x");
  const auto y = f.integers_tensor("y");
  LovaszSoftmaxOptions<double> o;
  o.reduction = f.reduction("reduction");
  o.per_image = f.flag("per_image", false);
  o.classes = f.word("classes", "present") == "all" ? LovaszClasses::all : LovaszClasses::present;
  o.class_list = f.integers("class_list");
  o.ignore_index = f.integer("ignore_index", -100);
  lovasz_results(
      f, o.reduction, [&] { return lovasz_softmax(x, y, o); },
      [&](const Tensor<double>& go) { return lovasz_softmax_backward(x, y, go, o); },
      [&] { return lovasz_softmax_value_and_grad(x, y, o); }, r);
}

void run_lovasz_hinge(const Fields& f, Results& r) {
  const auto x = f.reals_tensor("x");
  const auto y = f.reals_tensor("y");
  LovaszHingeOptions<double> o;
  o.reduction = f.reduction("reduction");
  o.per_image = f.flag("per_image", true);
  if (f.has("ignore")) o.ignore = f.real("ignore", 0);
  lovasz_results(
      f, o.reduction, [&] { return lovasz_hinge(x, y, o); },
      [&](const Tensor<double>& go) { return lovasz_hinge_backward(x, y, go, o); },
      [&] { return lovasz_hinge_value_and_grad(x, y, o); }, r);
}

void run_bce_dice(const Fields& f, Results& r) {
  const auto x = f.reals_tensor("x");
  const auto z = f.reals_tensor("z");
  BceDiceOptions<double> o;
  o.bce_weight = f.real("bce_weight", 1);
  o.dice_weight = f.real("dice_weight", 1);
  o.bce.reduction = f.reduction("b.reduction");
  o.bce.weight = f.reals_tensor("b.weight");
  o.bce.pos_weight = f.reals_tensor("b.pos_weight");
  o.bce.mean_over = f.word("b.mean_over", "elements") == "weight_sum" ? BceMeanOver::weight_sum
                                                                      : BceMeanOver::elements;
  o.bce.label_smoothing = f.real("b.label_smoothing", 0);
  read_overlap_options(f, "d.", o.dice);
  o.dice.weight = f.reals_tensor("d.weight");
  o.dice.weighting = f.word("d.weighting", "squared") == "on_inputs" ? OverlapWeighting::on_inputs
                                                                     : OverlapWeighting::squared;
  BceDiceParts parts;
  const auto vg = bce_dice_value_and_grad(x, z, o, &parts);
  r.put("value", vg.value);
  r.put("fwd", bce_dice(x, z, o).data()[0]);
  r.put("part_bce", parts.bce);
  r.put("part_dice", parts.dice);
  r.put("grad", vg.grad);
}

// ce_dice with a label map (kind cd, target y) or probabilities (cdp, target q).
void run_ce_dice(const Fields& f, bool probabilities, Results& r) {
  const auto x = f.reals_tensor("x");
  CeDiceOptions<double> o;
  o.ce_weight = f.real("ce_weight", 1);
  o.dice_weight = f.real("dice_weight", 1);
  o.ce = read_ce_options(f);
  read_overlap_options(f, "d.", o.dice);
  o.dice.ignore_index = f.integer("d.ignore_index", -100);
  auto report = [&](const auto& target) {
    CeDiceParts parts;
    const auto vg = ce_dice_value_and_grad(x, target, o, &parts);
    r.put("value", vg.value);
    r.put("fwd", ce_dice(x, target, o).data()[0]);
    r.put("part_ce", parts.ce);
    r.put("part_dice", parts.dice);
    r.put("grad", vg.grad);
  };
  if (probabilities)
    report(f.reals_tensor("q"));
  else
    report(f.integers_tensor("y"));
}

void run_dice_focal(const Fields& f, Results& r) {
  const auto x = f.reals_tensor("x");
  const auto y = f.integers_tensor("y");
  DiceFocalOptions<double> o;
  o.dice_weight = f.real("dice_weight", 1);
  o.focal_weight = f.real("focal_weight", 1);
  read_overlap_options(f, "d.", o.dice);
  o.dice.ignore_index = f.integer("d.ignore_index", -100);
  o.focal.reduction = f.reduction("f.reduction");
  o.focal.alpha = f.reals_tensor("f.alpha");
  o.focal.gamma = f.real("f.gamma", 2);
  o.focal.ignore_index = f.integer("f.ignore_index", -100);
  DiceFocalParts parts;
  const auto vg = dice_focal_value_and_grad(x, y, o, &parts);
  r.put("value", vg.value);
  r.put("fwd", dice_focal(x, y, o).data()[0]);
  r.put("part_dice", parts.dice);
  r.put("part_focal", parts.focal);
  r.put("grad", vg.grad);
}

// surface_distance on masks (kind sd) or surface_distance_labels on label maps (sdl).
void run_surface(const Fields& f, bool labels, Results& r) {
  SurfaceDistanceOptions o;
  o.spacing = f.reals("spacing");
  o.percentile = f.real("percentile", 95);
  o.tolerance = f.real("tolerance", 1);
  o.class_tolerance = f.reals("class_tolerance");
  o.directed = f.flag("directed", false);
  o.empty = f.word("empty", "monai") == "bounded" ? SurfaceEmpty::bounded : SurfaceEmpty::monai;
  o.ignore_index = f.integer("ignore_index", -100);
  const SurfaceDistanceResult s =
      labels ? surface_distance_labels(f.integers_tensor("pred"), f.integers_tensor("target"),
                                       f.integers("classes"), o)
             : surface_distance(f.reals_tensor("pred"), f.reals_tensor("target"), o);
  r.put("hd", s.hausdorff);
  r.put("hdp", s.hausdorff_percentile);
  r.put("assd", s.average_surface_distance);
  r.put("nsd", s.surface_dice);
  r.put("bp", s.pred_border);
  r.put("bt", s.true_border);
  r.put("mean_hd", s.mean_hausdorff);
  r.put("mean_hdp", s.mean_hausdorff_percentile);
  r.put("mean_assd", s.mean_average_surface_distance);
  r.put("mean_nsd", s.mean_surface_dice);
  r.put("empty", double(s.empty));
  r.put("one_empty", double(s.one_empty));
}

std::string run_case(const std::string& kind, const Fields& f) {
  Results r;
  if (kind == "lsm")
    run_lovasz_softmax(f, r);
  else if (kind == "lhg")
    run_lovasz_hinge(f, r);
  else if (kind == "bd")
    run_bce_dice(f, r);
  else if (kind == "cd" || kind == "cdp")
    run_ce_dice(f, kind == "cdp", r);
  else if (kind == "dfo")
    run_dice_focal(f, r);
  else if (kind == "sd" || kind == "sdl")
    run_surface(f, kind == "sdl", r);
  else
    throw std::runtime_error("unknown kind " + kind);
  return r.str();
}

// Reads one case's fields after "case <id> <kind>", up to "end".
Fields read_fields(std::istream& in) {
  Fields f;
  std::string key;
  while (in >> key && key != "end") {
    size_t n = 0;
    in >> n;
    std::vector<std::string> values(n);
    for (auto& v : values) in >> v;
    f.set(key, std::move(values));
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s CASES RESULTS\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1]);
  std::ofstream out(argv[2]);
  if (!in || !out) {
    std::fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
    return 2;
  }
  std::string token;
  while (in >> token) {
    if (token != "case") {
      std::fprintf(stderr, "expected 'case', read '%s'\n", token.c_str());
      return 3;
    }
    std::string id, kind;
    in >> id >> kind;
    const Fields f = read_fields(in);
    try {
      out << id << " OK" << run_case(kind, f) << '\n';
    } catch (const std::exception& e) {
      std::string message = e.what();
      for (auto& c : message)
        if (c == '\n') c = ' ';
      out << id << " ERR " << message << '\n';
    }
    out.flush();  // a crash leaves every earlier result readable
  }
  return 0;
}
