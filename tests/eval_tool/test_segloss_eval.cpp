// End-to-end tests of the segloss-eval tool: each test writes its PNGs into a temporary folder
// (with the tool's libpng writer), runs the built program, and checks its output against the
// scores computed directly with ConfusionMatrix on the labels the test drew.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <segloss/segloss.hpp>

#include "png_io.hpp"

#ifndef SEGLOSS_EVAL_EXE
#error "SEGLOSS_EVAL_EXE: the path of the segloss-eval program"
#endif

namespace fs = std::filesystem;
using segloss::tools::PngColor;
using segloss::tools::write_label_png;

namespace {

// A folder under the system's temporary folder, removed with everything in it at the end.
struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("segloss-eval-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path / "pred");
    fs::create_directories(path / "truth");
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string pred() const { return (path / "pred").string(); }
  std::string truth() const { return (path / "truth").string(); }
  std::string pred(const std::string& name) const { return (path / "pred" / name).string(); }
  std::string truth(const std::string& name) const { return (path / "truth" / name).string(); }
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct RunResult {
  int code = -1;
  std::string out, err;
};

// Runs the tool; its stdout goes to `stdout_to` when given (then r.out is empty).
RunResult run_tool(const TempDir& dir, const std::vector<std::string>& args,
                   const std::string& stdout_to = "") {
  std::string cmd = quote(SEGLOSS_EVAL_EXE);
  for (const std::string& a : args) cmd += " " + quote(a);
  const fs::path out = dir.path / "stdout.txt", err = dir.path / "stderr.txt";
  cmd += " > " + quote(stdout_to.empty() ? out.string() : stdout_to) + " 2> " +
         quote(err.string()) + " < /dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// A small JSON reader for the tool's output: objects, arrays, strings, numbers, true, false,
// null.
struct Json {
  enum Kind { null, boolean, number, string, array, object } kind = null;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json& operator[](const std::string& key) const {
    const auto it = fields.find(key);
    if (kind != object || it == fields.end()) FAIL("JSON has no key ", key);
    return it->second;
  }
  const Json& operator[](size_t i) const {
    if (kind != array || i >= items.size()) FAIL("JSON has no item ", i);
    return items[i];
  }
  // A score: null stands for NaN.
  double score() const {
    if (kind == null) return std::nan("");
    REQUIRE(kind == number);
    return num;
  }
  int64_t integer() const {
    REQUIRE(kind == number);
    return static_cast<int64_t>(num);
  }
};

struct JsonParser {
  const std::string& s;
  size_t i = 0;

  void space() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  void expect(char c) {
    space();
    if (i >= s.size() || s[i] != c) FAIL("JSON: expected '", c, "' at ", i, " in\n", s);
    ++i;
  }
  bool word(const char* w) {
    const size_t n = std::char_traits<char>::length(w);
    if (s.compare(i, n, w) != 0) return false;
    i += n;
    return true;
  }
  std::string text() {
    expect('"');
    std::string r;
    while (i < s.size() && s[i] != '"') {
      if (s[i] == '\\') {
        ++i;
        if (s[i] == 'u') {
          r += static_cast<char>(std::stoi(s.substr(i + 1, 4), nullptr, 16));
          i += 5;
          continue;
        }
        r += s[i] == 'n' ? '\n' : s[i];
      } else {
        r += s[i];
      }
      ++i;
    }
    expect('"');
    return r;
  }
  Json value() {
    space();
    Json v;
    if (i >= s.size()) FAIL("JSON: unexpected end in\n", s);
    if (s[i] == '{') {
      v.kind = Json::object;
      ++i;
      space();
      if (s[i] == '}') return ++i, v;
      do {
        const std::string key = text();
        expect(':');
        v.fields[key] = value();
        space();
      } while (s[i] == ',' && ++i);
      expect('}');
    } else if (s[i] == '[') {
      v.kind = Json::array;
      ++i;
      space();
      if (s[i] == ']') return ++i, v;
      do {
        v.items.push_back(value());
        space();
      } while (s[i] == ',' && ++i);
      expect(']');
    } else if (s[i] == '"') {
      v.kind = Json::string;
      v.str = text();
    } else if (word("null")) {
      v.kind = Json::null;
    } else if (word("true")) {
      v.kind = Json::boolean;
      v.b = true;
    } else if (word("false")) {
      v.kind = Json::boolean;
    } else {
      v.kind = Json::number;
      char* end = nullptr;
      v.num = std::strtod(s.c_str() + i, &end);
      if (end == s.c_str() + i) FAIL("JSON: bad value at ", i, " in\n", s);
      i = static_cast<size_t>(end - s.c_str());
    }
    return v;
  }
};

Json parse_json(const std::string& s) {
  JsonParser p{s};
  Json v = p.value();
  p.space();
  REQUIRE_MESSAGE(p.i == s.size(), "trailing text after the JSON: ", s.substr(p.i));
  return v;
}

// The same double, or both NaN.
bool same(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

struct Image {
  int64_t h, w;
  std::vector<int32_t> pred, truth;
};

// Truth labels in [0, classes_drawn), a share of them `ignore`; the prediction is the truth
// with some pixels changed to a label in [0, pred_max] (anything at ignored pixels).
Image draw(std::mt19937& rng, int64_t h, int64_t w, int32_t classes_drawn, int32_t pred_max,
           int32_t ignore, double ignore_share) {
  Image im{h, w, {}, {}};
  std::uniform_int_distribution<int32_t> cls(0, classes_drawn - 1), pcls(0, pred_max);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t i = 0; i < h * w; ++i) {
    const int32_t t = u(rng) < ignore_share ? ignore : cls(rng);
    im.truth.push_back(t);
    im.pred.push_back(t == ignore || u(rng) < 0.3 ? pcls(rng) : t);
  }
  return im;
}

// Checks the tool's JSON against ConfusionMatrix and the scores on the same labels.
void check_json(const Json& j, const std::vector<Image>& images, int64_t classes, int64_t ignore) {
  segloss::ConfusionMatrixOptions o;
  o.ignore_index = ignore;
  segloss::ConfusionMatrix cm(classes, o);
  int64_t pixels = 0;
  for (const Image& im : images) {
    const segloss::Shape s{im.h, im.w};
    cm.update(segloss::Tensor<int32_t>::view(im.pred.data(), s),
              segloss::Tensor<int32_t>::view(im.truth.data(), s));
    pixels += im.h * im.w;
  }
  CHECK(j["ok"].b);
  CHECK(j["images"].integer() == static_cast<int64_t>(images.size()));
  CHECK(j["classes"].integer() == classes);
  CHECK(j["pixels"].integer() == pixels);
  CHECK(j["scored"].integer() == cm.total());
  CHECK(j["ignored"].integer() == pixels - cm.total());
  const segloss::FcnScores fcn = segloss::label_accuracy_score(cm);
  CHECK(same(j["pixel_accuracy"].score(), fcn.pixel_accuracy));
  CHECK(same(j["mean_class_accuracy"].score(), fcn.mean_class_accuracy));
  CHECK(same(j["mean_iou"].score(), fcn.mean_iou));
  CHECK(same(j["fw_iou"].score(), fcn.fw_iou));
  CHECK(same(j["mean_dice"].score(),
             segloss::average_score(cm, segloss::Score::dice, segloss::Average::macro)));
  const auto iou = segloss::class_scores(cm, segloss::Score::iou);
  const auto dice = segloss::class_scores(cm, segloss::Score::dice);
  const auto precision = segloss::class_scores(cm, segloss::Score::precision);
  const auto recall = segloss::class_scores(cm, segloss::Score::recall);
  const auto support = cm.true_counts(), predicted = cm.pred_counts();
  const Json& per = j["per_class"];
  REQUIRE(per.items.size() == static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) {
    CAPTURE(c);
    const Json& e = per[static_cast<size_t>(c)];
    CHECK(e["class"].integer() == c);
    CHECK(same(e["iou"].score(), iou[c]));
    CHECK(same(e["dice"].score(), dice[c]));
    CHECK(same(e["precision"].score(), precision[c]));
    CHECK(same(e["recall"].score(), recall[c]));
    CHECK(e["support"].integer() == support[c]);
    CHECK(e["predicted"].integer() == predicted[c]);
  }
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("segloss-eval: JSON scores equal ConfusionMatrix's on 8-bit, 16-bit and palette PNGs") {
  TempDir dir;
  std::mt19937 rng(7);
  const int64_t C = 6;  // class 5 is never drawn: undefined (null) scores
  struct Pair {
    const char* name;
    int64_t h, w;
    PngColor pred_color;
    int pred_depth;
    PngColor truth_color;
    int truth_depth;
  };
  // Predictions reach label 4, which the truth never holds (a class predicted, never true).
  const Pair pairs[] = {
      {"a.png", 17, 23, PngColor::gray, 8, PngColor::gray, 16},
      {"b.png", 1, 1, PngColor::palette, 8, PngColor::gray, 8},
      {"c.png", 32, 9, PngColor::palette, 4, PngColor::palette, 8},
      {"d.png", 5, 40, PngColor::gray, 4, PngColor::gray, 16},
      {"e.png", 64, 64, PngColor::gray, 16, PngColor::gray, 8},
      {"f.PNG", 3, 70, PngColor::palette, 8, PngColor::palette, 8},
  };
  std::vector<Image> images;
  for (const Pair& p : pairs) {
    // Sub-8-bit truth cannot hold 255: no ignored pixels there.
    const bool can_ignore = p.truth_depth >= 8;
    const Image im = draw(rng, p.h, p.w, 4, 4, 255, can_ignore ? 0.1 : 0.0);
    write_label_png(dir.pred(p.name), im.pred, p.h, p.w, p.pred_color, p.pred_depth);
    write_label_png(dir.truth(p.name), im.truth, p.h, p.w, p.truth_color, p.truth_depth);
    images.push_back(im);
  }
  const RunResult r3 =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "6", "--json", "--threads", "3"});
  INFO(r3.err);
  REQUIRE(r3.code == 0);
  const Json j = parse_json(r3.out);
  check_json(j, images, C, 255);
  CHECK(j["ignore"].integer() == 255);
  CHECK(j["per_class"][5]["iou"].kind == Json::null);
  CHECK(j["per_class"][4]["recall"].kind == Json::null);
  CHECK(j["per_class"][4]["precision"].score() == 0.0);

  // The same bytes at any thread count.
  const RunResult r1 =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes=6", "--json", "--threads=1"});
  CHECK(r1.code == 0);
  CHECK(r1.out == r3.out);
}

TEST_CASE("segloss-eval: 16-bit labels above 255, --ignore V and --ignore none") {
  TempDir dir;
  std::mt19937 rng(11);
  const int64_t C = 300;
  std::vector<Image> images;
  for (int k = 0; k < 3; ++k) {
    Image im = draw(rng, 20 + k, 31, 300, 299, 65535, 0.2);
    const std::string name = "img" + std::to_string(k) + ".png";
    write_label_png(dir.pred(name), im.pred, im.h, im.w, PngColor::gray, 16);
    write_label_png(dir.truth(name), im.truth, im.h, im.w, PngColor::gray, 16);
    images.push_back(im);
  }
  const RunResult r =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "300", "--ignore", "65535", "--json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  check_json(parse_json(r.out), images, C, 65535);

  // With nothing ignored, 65535 in the truth is an out-of-range label.
  const RunResult none =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "300", "--ignore", "none"});
  CHECK(none.code == 1);
  CHECK(contains(none.err, "label 65535"));
  CHECK(contains(none.err, "(no value is ignored)"));

  // Without ignored pixels, --ignore none scores every pixel.
  TempDir clean;
  std::vector<Image> clean_images;
  Image im = draw(rng, 9, 8, 300, 299, 65535, 0.0);
  write_label_png(clean.pred("x.png"), im.pred, im.h, im.w, PngColor::gray, 16);
  write_label_png(clean.truth("x.png"), im.truth, im.h, im.w, PngColor::gray, 16);
  clean_images.push_back(im);
  const RunResult all =
      run_tool(clean, {clean.pred(), clean.truth(), "--classes", "300", "--ignore=none", "--json"});
  INFO(all.err);
  REQUIRE(all.code == 0);
  const Json j = parse_json(all.out);
  check_json(j, clean_images, C, -1);
  CHECK(j["ignore"].kind == Json::null);
  CHECK(j["scored"].integer() == 72);
}

TEST_CASE("segloss-eval: --ignore 0 leaves the background out of the scores") {
  // truth [[0,0,1,1],[0,0,1,1]], prediction [[0,0,0,1],[0,0,1,1]]: class 1 has TP 3, FN 1, FP 0
  // (IoU 3/4, Dice 6/7); class 0, ignored, is not scored (it was: IoU 0 from its one wrong
  // prediction, and Mean IoU 0.375).
  TempDir dir;
  const std::vector<int32_t> truth = {0, 0, 1, 1, 0, 0, 1, 1}, pred = {0, 0, 0, 1, 0, 0, 1, 1};
  write_label_png(dir.pred("a.png"), pred, 2, 4);
  write_label_png(dir.truth("a.png"), truth, 2, 4);
  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "2", "--ignore", "0"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "Mean IoU                0.7500"));
  CHECK(contains(r.out, "Mean Dice               0.8571"));
  CHECK(contains(r.out, "Mean class accuracy     0.7500"));
  CHECK(contains(r.out, "Pixel accuracy          0.7500"));
  const size_t row = r.out.find("\n0 ");
  REQUIRE(row != std::string::npos);
  const std::string line = r.out.substr(row + 1, r.out.find('\n', row + 1) - row - 1);
  CHECK(line.find("0.0000") == std::string::npos);  // IoU, Dice, precision: '-', not 0
  const RunResult j =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "2", "--ignore", "0", "--json"});
  REQUIRE(j.code == 0);
  const Json json = parse_json(j.out);
  CHECK(json["per_class"][size_t{0}]["iou"].kind == Json::null);
  CHECK(json["per_class"][size_t{1}]["iou"].score() == 0.75);
  CHECK(json["mean_iou"].score() == 0.75);
  CHECK(json["per_class"][size_t{0}]["predicted"].integer() == 1);
}

TEST_CASE("segloss-eval: the table with --names") {
  TempDir dir;
  std::mt19937 rng(3);
  Image im = draw(rng, 30, 30, 2, 2, 255, 0.05);  // class 2 is predicted, never true
  write_label_png(dir.pred("one.png"), im.pred, im.h, im.w);
  write_label_png(dir.truth("one.png"), im.truth, im.h, im.w);
  const std::string names = (dir.path / "names.txt").string();
  std::ofstream(names) << "background\nroad\ntraffic light\n\n";
  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "3", "--names", names});
  INFO(r.err);
  REQUIRE(r.code == 0);
  segloss::ConfusionMatrixOptions o;
  o.ignore_index = 255;
  segloss::ConfusionMatrix cm(3, o);
  cm.update(segloss::Tensor<int32_t>::view(im.pred.data(), {30, 30}),
            segloss::Tensor<int32_t>::view(im.truth.data(), {30, 30}));
  const auto fcn = segloss::label_accuracy_score(cm);
  const auto fmt = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return std::string(b);
  };
  CHECK(contains(r.out, "0 background"));
  CHECK(contains(r.out, "2 traffic light"));
  CHECK(contains(r.out, "Precision"));
  CHECK(contains(r.out, "Support"));
  CHECK(contains(r.out, "Pixel accuracy          " + fmt(fcn.pixel_accuracy)));
  CHECK(contains(r.out, "Mean class accuracy     " + fmt(fcn.mean_class_accuracy)));
  CHECK(contains(r.out, "Mean IoU                " + fmt(fcn.mean_iou)));
  CHECK(contains(r.out, "Frequency-weighted IoU  " + fmt(fcn.fw_iou)));
  CHECK(contains(
      r.out, "Mean Dice               " +
                 fmt(segloss::average_score(cm, segloss::Score::dice, segloss::Average::macro))));
  CHECK(contains(r.out, std::to_string(cm.true_counts()[1])));
  // Class 2 is never true: its recall is undefined, shown as '-'.
  const size_t row = r.out.find("2 traffic light");
  const std::string line = r.out.substr(row, r.out.find('\n', row) - row);
  CHECK(contains(line, " - "));

  // A names file with the wrong count is a usage error.
  std::ofstream(names) << "a\nb\n";
  const RunResult bad =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "3", "--names", names});
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, "has 2 names; --classes is 3"));
}

TEST_CASE("segloss-eval: missing, extra, unreadable and size-mismatched files are all listed") {
  TempDir dir;
  const std::vector<int32_t> l20(20, 1);
  write_label_png(dir.pred("ok.png"), l20, 4, 5);
  write_label_png(dir.truth("ok.png"), l20, 4, 5);
  write_label_png(dir.truth("missing.png"), l20, 4, 5);
  write_label_png(dir.pred("extra.png"), l20, 4, 5);
  write_label_png(dir.pred("rgb.png"), l20, 4, 5, PngColor::rgb);
  write_label_png(dir.truth("rgb.png"), l20, 4, 5);
  write_label_png(dir.pred("ga.png"), l20, 4, 5);
  write_label_png(dir.truth("ga.png"), l20, 4, 5, PngColor::gray_alpha);
  write_label_png(dir.pred("junk.png"), l20, 4, 5);
  std::ofstream(dir.truth("junk.png")) << "not a png";
  // A PNG cut short in its image data.
  std::vector<int32_t> big(64 * 64);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<int32_t>(i * 7919 % 5);
  write_label_png(dir.pred("cut.png"), big, 64, 64);
  write_label_png(dir.truth("cut.png"), big, 64, 64);
  fs::resize_file(dir.pred("cut.png"), fs::file_size(dir.pred("cut.png")) / 2);
  write_label_png(dir.pred("size.png"), l20, 4, 5);
  write_label_png(dir.truth("size.png"), l20, 5, 4);
  std::ofstream(dir.pred("notes.txt")) << "not read";
  fs::create_directory(dir.pred("folder.png"));  // not a file: not read
  fs::create_symlink(dir.path / "nowhere.png", dir.truth("link.png"));
  write_label_png(dir.pred("link.png"), l20, 4, 5);

  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5"});
  CHECK(r.code == 1);
  CHECK(r.out.empty());  // no score for a partial set
  INFO(r.err);
  CHECK(contains(r.err, "8 problems; no scores were computed"));
  CHECK(contains(r.err, "missing    " + dir.pred("missing.png")));
  CHECK(contains(r.err, "extra      " + dir.pred("extra.png")));
  CHECK(contains(r.err, "unreadable " + dir.pred("rgb.png") + ": is RGB"));
  CHECK(contains(r.err, "unreadable " + dir.truth("ga.png") + ": is gray+alpha"));
  CHECK(contains(r.err, "unreadable " + dir.truth("junk.png") + ": is not a PNG file"));
  CHECK(contains(r.err, "unreadable " + dir.pred("cut.png") + ": bad PNG data"));
  CHECK(contains(r.err, "size       " + dir.pred("size.png") + ": prediction is 4x5"));
  CHECK(contains(r.err, "unreadable " + dir.truth("link.png") + ": cannot be opened"));
  CHECK(contains(r.err, "2 entries that are not .png files were not read"));
  CHECK_FALSE(contains(r.err, "ok.png"));

  const RunResult j = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5", "--json"});
  CHECK(j.code == 1);
  const Json v = parse_json(j.out);
  CHECK_FALSE(v["ok"].b);
  std::map<std::string, std::string> kinds;  // file -> kind
  for (const Json& p : v["problems"].items) kinds[p["file"].str] = p["kind"].str;
  const std::map<std::string, std::string> expected = {
      {dir.pred("cut.png"), "unreadable"},   {dir.pred("extra.png"), "extra"},
      {dir.truth("ga.png"), "unreadable"},   {dir.truth("junk.png"), "unreadable"},
      {dir.truth("link.png"), "unreadable"}, {dir.pred("missing.png"), "missing"},
      {dir.pred("rgb.png"), "unreadable"},   {dir.pred("size.png"), "size"}};
  CHECK(kinds == expected);
  // Listed in file-name order.
  std::vector<std::string> order;
  for (const Json& p : v["problems"].items) order.push_back(fs::path(p["file"].str).filename());
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("segloss-eval: out-of-range labels name the file, the pixel and the value") {
  TempDir dir;
  std::vector<int32_t> truth(6 * 7, 1), pred(6 * 7, 1);
  truth[2 * 7 + 3] = 9;  // row 2, column 3: not a class and not 255
  truth[5 * 7 + 6] = 9;
  pred[4 * 7 + 1] = 7;  // row 4, column 1: a predicted label >= C
  truth[0] = 255;       // ignored: its prediction is not read
  pred[0] = 200;
  write_label_png(dir.pred("x.png"), pred, 6, 7);
  write_label_png(dir.truth("x.png"), truth, 6, 7);
  std::vector<int32_t> ok(6 * 7, 0);
  ok[10] = 255;  // a 255 predicted where the truth is scored: out of range
  write_label_png(dir.pred("y.png"), ok, 6, 7, PngColor::palette, 8);
  std::fill(ok.begin(), ok.end(), 0);
  write_label_png(dir.truth("y.png"), ok, 6, 7);

  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5"});
  INFO(r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.err, "labels     " + dir.truth("x.png") +
                            ": label 9 at row 2, column 3 is outside [0, 5) and is not the "
                            "ignore value 255 (2 such pixels)"));
  CHECK(contains(r.err, "labels     " + dir.pred("x.png") +
                            ": label 7 at row 4, column 1 (truth 1) is outside [0, 5) (1 such "
                            "pixel)"));
  CHECK(contains(r.err, dir.pred("y.png") + ": label 255 at row 1, column 3 (truth 0)"));
  CHECK(contains(r.err, "3 problems"));

  // With the bad pixels fixed, the 200 predicted under an ignored truth pixel is fine.
  truth[2 * 7 + 3] = 0;
  truth[5 * 7 + 6] = 0;
  pred[4 * 7 + 1] = 4;
  write_label_png(dir.pred("x.png"), pred, 6, 7);
  write_label_png(dir.truth("x.png"), truth, 6, 7);
  fs::remove(dir.pred("y.png"));
  fs::remove(dir.truth("y.png"));
  const RunResult fixed = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5", "--json"});
  INFO(fixed.err);
  CHECK(fixed.code == 0);
  CHECK(parse_json(fixed.out)["ignored"].integer() == 1);
}

TEST_CASE("segloss-eval: everything ignored, and an empty truth folder") {
  TempDir dir;
  const std::vector<int32_t> all_ignored(12, 255), pred(12, 0);
  write_label_png(dir.pred("a.png"), pred, 3, 4);
  write_label_png(dir.truth("a.png"), all_ignored, 3, 4);
  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "2", "--json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const Json j = parse_json(r.out);
  check_json(j, {Image{3, 4, pred, all_ignored}}, 2, 255);
  CHECK(j["scored"].integer() == 0);
  CHECK(j["mean_iou"].kind == Json::null);
  CHECK(j["fw_iou"].score() == 0.0);  // pytorch-fcn: a sum over no class

  TempDir empty;
  const RunResult e = run_tool(empty, {empty.pred(), empty.truth(), "--classes", "2"});
  CHECK(e.code == 1);
  CHECK(contains(e.err, "no PNG file in the truth folder"));
}

TEST_CASE("segloss-eval: usage errors exit with 2, --help with 0") {
  TempDir dir;
  const std::string p = dir.pred(), t = dir.truth();
  const struct {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{}, "expected PRED_DIR and TRUTH_DIR, got 0 arguments"},
      {{p}, "got 1 argument"},
      {{p, t}, "--classes C is required"},
      {{p, t, "--classes", "0"}, "--classes is 0; it must be in [1, 32768]"},
      {{p, t, "--classes", "3x"}, "--classes expects an integer, got '3x'"},
      {{p, t, "--classes"}, "--classes needs a value"},
      {{p, t, "--classes", "3", "--threads", "0"}, "--threads is 0"},
      {{p, t, "--classes", "3", "--ignore", "70000"}, "--ignore is 70000"},
      {{p, t, "--classes", "3", "--json=yes"}, "--json takes no value"},
      {{p, t, "--classes", "3", "--frobnicate"}, "unknown option --frobnicate"},
      {{p, t, "--classes", "3", "--names", dir.truth("none.txt")}, "cannot be opened"},
      {{p, (dir.path / "nowhere").string(), "--classes", "3"}, "cannot be listed"},
      {{p, t, "--classes", "3", "--surface=1"}, "--surface takes no value"},
      {{p, t, "--classes", "3", "--names="}, "--names needs a file name; the value is empty"},
      {{p, t, "--classes", "3", "--names", ""}, "--names needs a file name; the value is empty"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.message);
    const RunResult r = run_tool(dir, c.args);
    CHECK(r.code == 2);
    CHECK(contains(r.err, c.message));
    CHECK(r.out.empty());
  }
  const RunResult help = run_tool(dir, {"--help"});
  CHECK(help.code == 0);
  CHECK(contains(help.out, "Usage: segloss-eval PRED_DIR TRUTH_DIR --classes C"));
  CHECK(contains(help.out, "Exit status"));
}

// --surface on shapes whose distances are known exactly: a one-pixel-wide vertical line and its
// copy shifted sideways by k (every border pixel is k from the other line), and single pixels
// 3 and 4 apart (distance 5). Background against the library on the same labels.
TEST_CASE("segloss-eval: --surface HD95 and ASSD per class, with known distances") {
  TempDir dir;
  constexpr int64_t H = 20, W = 24, C = 5;
  struct Labels {
    std::vector<int32_t> pred = std::vector<int32_t>(H * W, 0), truth = pred;
    void set(std::vector<int32_t>& m, int64_t y, int64_t x, int32_t c) { m[y * W + x] = c; }
  };
  Labels a, b;
  for (int64_t y = 4; y <= 13; ++y) a.set(a.truth, y, 5, 1), a.set(a.pred, y, 8, 1);   // k = 3
  a.set(a.truth, 15, 10, 2), a.set(a.pred, 18, 14, 2);                                 // 5 apart
  for (int64_t y = 2; y <= 9; ++y) b.set(b.truth, y, 12, 1), b.set(b.pred, y, 13, 1);  // k = 1
  for (int64_t y = 10; y <= 11; ++y)  // class 3 in the truth only: missed
    for (int64_t x = 3; x <= 4; ++x) b.set(b.truth, y, x, 3);
  for (int64_t x = 0; x < W; ++x) b.set(b.truth, 19, x, 255);  // an ignored row
  write_label_png(dir.pred("a.png"), a.pred, H, W);
  write_label_png(dir.truth("a.png"), a.truth, H, W);
  write_label_png(dir.pred("b.png"), b.pred, H, W);
  write_label_png(dir.truth("b.png"), b.truth, H, W);

  const RunResult r =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5", "--json", "--surface"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const Json j = parse_json(r.out);
  check_json(j, {Image{H, W, a.pred, a.truth}, Image{H, W, b.pred, b.truth}}, C, 255);
  const Json& per = j["per_class"];
  const double diagonal = std::sqrt(double(H * H + W * W));
  // Class 0 (background, in both images): the library on the same label maps.
  segloss::SurfaceDistanceOptions so;
  so.empty = segloss::SurfaceEmpty::bounded;
  so.ignore_index = 255;
  double hd0 = 0, assd0 = 0;
  for (const Labels* l : {&a, &b}) {
    const segloss::Shape s{1, H, W};
    const auto lib = segloss::surface_distance_labels(
        segloss::Tensor<int32_t>::view(l->pred.data(), s),
        segloss::Tensor<int32_t>::view(l->truth.data(), s), {0}, so);
    hd0 += lib.hausdorff_percentile[0], assd0 += lib.average_surface_distance[0];
  }
  const struct {
    double hd95, assd;
    int64_t images, one_empty;
  } expected[C] = {{hd0 / 2, assd0 / 2, 2, 0},
                   {2.0, 2.0, 2, 0},  // (3 + 1) / 2
                   {5.0, 5.0, 1, 0},  // absent from b: b is skipped
                   {diagonal, diagonal, 1, 1},
                   {std::nan(""), std::nan(""), 0, 0}};
  for (int64_t c = 0; c < C; ++c) {
    CAPTURE(c);
    const Json& e = per[static_cast<size_t>(c)];
    CHECK(same(e["hd95"].score(), expected[c].hd95));
    CHECK(same(e["assd"].score(), expected[c].assd));
    CHECK(e["surface_images"].integer() == expected[c].images);
    CHECK(e["surface_one_empty"].integer() == expected[c].one_empty);
  }
  CHECK(hd0 > 0);
  CHECK(same(j["mean_hd95"].score(), (hd0 / 2 + 2.0 + 5.0 + diagonal) / 4));
  CHECK(same(j["mean_assd"].score(), (assd0 / 2 + 2.0 + 5.0 + diagonal) / 4));

  // The same at 3 threads, byte for byte; the table shows the two columns and the means.
  const RunResult r3 = run_tool(
      dir, {dir.pred(), dir.truth(), "--classes", "5", "--json", "--surface", "--threads", "3"});
  CHECK(r3.out == r.out);
  const RunResult table = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5", "--surface"});
  REQUIRE(table.code == 0);
  CHECK(contains(table.out, "HD95"));
  CHECK(contains(table.out, "ASSD"));
  CHECK(contains(table.out, "   2.0000    2.0000\n"));
  CHECK(contains(table.out, "  31.2410   31.2410\n"));
  CHECK(contains(table.out, "Mean HD95"));
  // Without --surface, no surface keys.
  const RunResult plain = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "5", "--json"});
  REQUIRE(plain.code == 0);
  CHECK(!contains(plain.out, "hd95"));

  // A class that is the ignore value has no surface value.
  TempDir small;
  std::vector<int32_t> t(16, 0), p(16, 0);
  t[5] = 1, p[6] = 1, t[10] = 2;
  write_label_png(small.pred("x.png"), p, 4, 4);
  write_label_png(small.truth("x.png"), t, 4, 4);
  const RunResult ig = run_tool(small, {small.pred(), small.truth(), "--classes", "3", "--ignore",
                                        "2", "--json", "--surface"});
  INFO(ig.err);
  REQUIRE(ig.code == 0);
  const Json ji = parse_json(ig.out);
  CHECK(ji["per_class"][1]["hd95"].score() == 1.0);
  CHECK(ji["per_class"][2]["hd95"].kind == Json::null);
  CHECK(ji["per_class"][2]["surface_images"].integer() == 0);
}

namespace {

// CRC-32 of PNG chunks (ISO 3309, the polynomial 0xedb88320), for hand-made files.
uint32_t png_crc(const std::string& bytes) {
  uint32_t c = 0xffffffffu;
  for (const unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return c ^ 0xffffffffu;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(png_crc(type + data));
}

}  // namespace

// A reviewer's reports: a 100-byte file whose header claims 100000x100000 pixels made the tool
// allocate and touch 10 GB before libpng found the data short (47 s, and an OOM kill with a few
// such files); a FIFO named *.png blocked the run forever; a file name that is not UTF-8 made
// --json print invalid JSON.
TEST_CASE(
    "segloss-eval: a header claiming more pixels than the file holds, a FIFO, a non-UTF-8 name") {
  TempDir dir;
  const std::vector<int32_t> l20(20, 1);
  write_label_png(dir.pred("ok.png"), l20, 4, 5);
  write_label_png(dir.truth("ok.png"), l20, 4, 5);
  // IHDR 100000 x 100000, 8-bit gray; an IDAT of a few stored zlib bytes; IEND.
  std::string ihdr = be32(100000) + be32(100000);
  ihdr += std::string{8, 0, 0, 0, 0};
  const std::string idat{
      0x78, 0x01, 0x01, 0x01, 0x00, static_cast<char>(0xfe), static_cast<char>(0xff), 0x00};
  const std::string liar = std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
                           png_chunk("IDAT", idat) + png_chunk("IEND", "");
  for (const std::string& p : {dir.pred("liar.png"), dir.truth("liar.png")})
    std::ofstream(p, std::ios::binary) << liar;
  REQUIRE(::mkfifo(dir.truth("fifo.png").c_str(), 0600) == 0);
  write_label_png(dir.pred("fifo.png"), l20, 4, 5);
  const std::string latin1 = std::string("b") + static_cast<char>(0xff) + ".png";
  write_label_png(dir.pred(latin1), l20, 4, 5);  // no truth: an `extra` problem naming it

  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "3", "--threads", "1"});
  INFO(r.err);
  CHECK(r.code == 1);
  CHECK(contains(r.err, "unreadable " + dir.truth("liar.png") +
                            ": header claims 100000x100000 pixels, more than its 8 bytes of "
                            "image data (IDAT) can hold (deflate expands at most 1032:1)"));
  CHECK(contains(r.err, "unreadable " + dir.truth("fifo.png") + ": is not a regular file"));
  CHECK(contains(r.err, "extra      " + dir.pred(latin1)));

  const RunResult j =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "3", "--threads", "1", "--json"});
  CHECK(j.code == 1);
  CHECK(j.out.find(static_cast<char>(0xff)) == std::string::npos);
  CHECK(contains(j.out, "b\\ufffd.png"));
  const Json v = parse_json(j.out);
  CHECK_FALSE(v["ok"].b);
  CHECK(v["problems"].items.size() == 4);  // liar (both files), fifo, the extra file
}

namespace {

// A zlib stream of stored (uncompressed) deflate blocks holding `raw` (RFC 1950, 1951).
std::string zlib_stored(const std::string& raw) {
  std::string z{0x78, 0x01};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    z += static_cast<char>(pos + n == raw.size() ? 1 : 0);  // BFINAL, BTYPE 00
    z += {static_cast<char>(n & 0xff), static_cast<char>(n >> 8), static_cast<char>(~n & 0xff),
          static_cast<char>((~n >> 8) & 0xff)};
    z += raw.substr(pos, n);
    pos += n;
  } while (pos < raw.size());
  uint32_t a = 1, b = 0;  // Adler-32
  for (const unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  return z + be32((b << 16) | a);
}

// A PNG of the given header fields and IDAT data, then `padding` zero bytes after IEND.
std::string hand_png(uint32_t width, uint32_t height, int depth, const std::string& idat,
                     size_t padding = 0) {
  std::string ihdr = be32(width) + be32(height);
  ihdr += {static_cast<char>(depth), 0, 0, 0, 0};  // grayscale, no interlace
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", idat) +
         png_chunk("IEND", "") + std::string(padding, '\0');
}

}  // namespace

// A reviewer's reports (2026-12-03): a 1-bit header padded after IEND passed the size check
// (which counted the file's bytes, not the image data's) and the tool allocated 8 bytes per
// stored byte before libpng found the data short; libpng's default limit of 1000000 pixels a
// side refused valid wide files, and every header problem read only "Invalid IHDR data";
// `--names ""` was taken as no --names; a full disk gave exit 0 with a truncated report. Also:
// every bit depth read a row at a time, and Adam7-interlaced, against the library's counts.
TEST_CASE("segloss-eval: bit depths and interlacing, header limits and causes, a full stdout") {
  TempDir dir;
  std::mt19937 rng(2026);
  struct Case {
    const char* name;
    int64_t h, w;
    PngColor color;
    int depth;
  };
  const Case cases[] = {
      {"g1.png", 11, 13, PngColor::gray, 1},    {"g2.png", 7, 1, PngColor::gray, 2},
      {"g4.png", 1, 7, PngColor::gray, 4},      {"g16.png", 9, 2, PngColor::gray, 16},
      {"p1.png", 1, 1, PngColor::palette, 1},   {"p2.png", 5, 5, PngColor::palette, 2},
      {"p8.png", 23, 17, PngColor::palette, 8}, {"g8.png", 3, 70, PngColor::gray, 8},
  };
  std::vector<Image> images;
  for (const Case& c : cases) {
    const int32_t drawn = c.depth == 1 ? 2 : 4;
    const Image im = draw(rng, c.h, c.w, drawn, drawn - 1, 255, 0.0);
    // The prediction interlaced, the truth not: both must read as written.
    write_label_png(dir.pred(c.name), im.pred, c.h, c.w, c.color, c.depth, true);
    write_label_png(dir.truth(c.name), im.truth, c.h, c.w, c.color, c.depth, false);
    images.push_back(im);
  }
  const RunResult r = run_tool(dir, {dir.pred(), dir.truth(), "--classes", "4", "--json"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  check_json(parse_json(r.out), images, 4, 255);

  // A report that cannot be written: exit 4, not 0.
  const RunResult full =
      run_tool(dir, {dir.pred(), dir.truth(), "--classes", "4", "--json"}, "/dev/full");
  CHECK(full.code == 4);
  CHECK(contains(full.err, "segloss-eval: the output could not be written to stdout"));

  // 1000001 x 1 is a valid PNG (libpng's reader refused it by default).
  TempDir wide;
  const std::vector<int32_t> row(1000001, 1);
  write_label_png(wide.pred("w.png"), row, 1, 1000001);
  write_label_png(wide.truth("w.png"), row, 1, 1000001);
  const RunResult w = run_tool(wide, {wide.pred(), wide.truth(), "--classes", "2", "--json"});
  INFO(w.err);
  CHECK(w.code == 0);
  if (w.code == 0) CHECK(parse_json(w.out)["scored"].integer() == 1000001);

  // A zero width: libpng's cause, not only its "Invalid IHDR data". A 1-bit claim of 8000 x
  // 2000 pixels with one row of data and 300 kB of padding after IEND: refused by the size
  // check, which counts the IDAT bytes (1012), not the file's.
  TempDir bad;
  const std::string one_row = zlib_stored(std::string(1 + 1000, '\0'));
  const std::string zero_width = hand_png(0, 1, 8, zlib_stored(std::string(1, '\0')));
  const std::string padded = hand_png(8000, 2000, 1, one_row, 300000);
  std::ofstream(bad.pred("z.png"), std::ios::binary) << zero_width;
  std::ofstream(bad.truth("z.png"), std::ios::binary) << zero_width;
  std::ofstream(bad.pred("pad.png"), std::ios::binary) << padded;
  std::ofstream(bad.truth("pad.png"), std::ios::binary) << padded;
  // An interlaced 1-bit header of 1000000 x 4096 and an IDAT chunk that claims 2^31 - 1 bytes,
  // then the end of the file: the claimed length counted (a seek past the end succeeds), and
  // the tool allocated 500 MB for a 41-byte file (a second review).
  std::string ihdr = be32(1000000) + be32(4096);
  ihdr += {1, 0, 0, 0, 1};  // depth 1, grayscale, Adam7
  const std::string fake_idat =
      std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + be32(0x7fffffff) + "IDAT";
  std::ofstream(bad.pred("fake.png"), std::ios::binary) << fake_idat;
  std::ofstream(bad.truth("fake.png"), std::ios::binary) << fake_idat;
  const RunResult b = run_tool(bad, {bad.pred(), bad.truth(), "--classes", "2"});
  INFO(b.err);
  CHECK(b.code == 1);
  CHECK(contains(b.err, "unreadable " + bad.truth("z.png") +
                            ": bad PNG data: Invalid IHDR data (libpng warned: Image width is "
                            "zero in IHDR)"));
  CHECK(contains(b.err, "unreadable " + bad.truth("pad.png") +
                            ": header claims 8000x2000 pixels, more than its " +
                            std::to_string(one_row.size()) +
                            " bytes of image data (IDAT) can hold"));
  CHECK(contains(b.err, "unreadable " + bad.truth("fake.png") +
                            ": header claims 1000000x4096 pixels, more than its 0 bytes of image "
                            "data (IDAT) can hold"));
}
