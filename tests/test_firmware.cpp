// The ESP-IDF project (firmware/esp32s3) checked on the host: its component lists every
// portable source, its partition table agrees with the planner's board profile, its
// sdkconfig.defaults says what docs/HARDWARE.md promises, and `llmwire flash-plan` reads the
// offsets and pins from the project's own files. And /selftest: the digest the PC stores in
// the head image is the one a ring's head computes.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>

#include "engine/image_header.h"
#include "pipeline/split_link.h"
#include "platform/host/fd_link.h"
#include "platform/host/host_stage.h"
#include "runtime/head_console.h"
#include "test_util.h"
#include "tools/flash_plan.h"
#include "tools/planner.h"
#include "tools/selftest_digest.h"
#include "tools/split.h"

using namespace llmwire;
using llmwire::test::read_file;
using llmwire::test::TempDir;

namespace {

const std::string kRoot = LLMWIRE_SOURCE_DIR;
const std::string kFirmware = kRoot + "/firmware/esp32s3";

std::set<std::string> portable_sources_on_disk() {
  std::set<std::string> out;
  for (const char* dir : {"src/engine", "src/link", "src/pipeline", "src/runtime"}) {
    DIR* d = opendir((kRoot + "/" + dir).c_str());
    EXPECT_NE(d, nullptr) << dir;
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".cpp") == 0) {
        out.insert(std::string(dir) + "/" + name);
      }
    }
    closedir(d);
  }
  return out;
}

std::set<std::string> component_sources(const std::string& cmake) {
  std::set<std::string> out;
  const std::string marker = "${llmwire_root}/";
  for (size_t at = cmake.find(marker); at != std::string::npos; at = cmake.find(marker, at + 1)) {
    const size_t end = cmake.find('"', at);
    const std::string path = cmake.substr(at + marker.size(), end - at - marker.size());
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".cpp") == 0) out.insert(path);
  }
  return out;
}

struct CmdResult {
  int rc = -1;
  std::string out;
};

CmdResult run(const std::string& args) {
  CmdResult r;
  FILE* p = popen((std::string(LLMWIRE_BIN) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

void write_file(const std::string& path, const std::string& text) {
  FILE* f = fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  fwrite(text.data(), 1, text.size(), f);
  fclose(f);
}

}  // namespace

TEST(FirmwareProject, ComponentListsEveryPortableSource) {
  const std::string cmake = read_file(kFirmware + "/components/llmwire/CMakeLists.txt");
  ASSERT_FALSE(cmake.empty());
  const std::set<std::string> listed = component_sources(cmake);
  const std::set<std::string> on_disk = portable_sources_on_disk();
  ASSERT_GE(on_disk.size(), 10u);
  for (const std::string& f : on_disk) {
    EXPECT_TRUE(listed.count(f)) << f
                                 << " is portable but not in components/llmwire/CMakeLists.txt";
  }
  for (const std::string& f : listed) {
    EXPECT_TRUE(on_disk.count(f)) << f << " is listed in components/llmwire but does not exist";
  }
  EXPECT_NE(cmake.find("idf_component_register"), std::string::npos);
  for (const char* flag : {"-fno-exceptions", "-fno-rtti", "-ffp-contract=off", "gnu++17"}) {
    EXPECT_NE(cmake.find(flag), std::string::npos) << flag;
  }
}

TEST(FirmwareProject, PartitionMatchesPlanner) {
  std::vector<PartitionEntry> table;
  std::string err;
  ASSERT_TRUE(parse_partition_csv(read_file(kFirmware + "/partitions.csv"), &table, &err)) << err;
  const PartitionEntry* model = find_partition(table, "model");
  const PartitionEntry* app = find_partition(table, "factory");
  ASSERT_NE(model, nullptr);
  ASSERT_NE(app, nullptr);
  BoardProfile board;
  ASSERT_TRUE(find_profile("esp32s3-16mb", &board));
  EXPECT_EQ(model->size, board.partition_bytes);
  EXPECT_GE(model->size, 14680064u);
  EXPECT_EQ(model->type, "data");
  EXPECT_EQ(model->subtype, "0x40");
  // At 0x1F0000 (where users of the reference project flash models), or later with a
  // smaller app partition; everything inside 16 MB.
  EXPECT_GE(model->offset, 0x1F0000u);
  EXPECT_EQ(app->type, "app");
  EXPECT_LE(app->offset + app->size, model->offset);
  for (const PartitionEntry& p : table) {
    EXPECT_LE(p.offset + p.size, 16u * 1024 * 1024) << p.name;
    EXPECT_GE(p.offset, 0x9000u) << p.name << " overlaps the bootloader or partition table";
  }
  // The mapped image is read with aligned loads: the partition starts on a 64 KB MMU page.
  EXPECT_EQ(model->offset % 0x10000, 0u);
}

TEST(FirmwareProject, PartitionCsvParserRejectsBadTables) {
  std::vector<PartitionEntry> t;
  std::string err;
  EXPECT_TRUE(
      parse_partition_csv("# c\n\nnvs, data, nvs, 0x9000, 20K,\nm, data, 0x40, 1M, 2M\n", &t, &err))
      << err;
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].size, 20u * 1024);
  EXPECT_EQ(t[1].offset, 1024u * 1024);
  EXPECT_FALSE(parse_partition_csv("a, data, nvs, 0x9000, 0x5000\nb, data, nvs, 0xA000, 0x1000\n",
                                   &t, &err));
  EXPECT_NE(err.find("overlaps"), std::string::npos) << err;
  EXPECT_FALSE(parse_partition_csv("a, data, nvs, , 0x5000\n", &t, &err));
  EXPECT_NE(err.find("line 1"), std::string::npos) << err;
  EXPECT_FALSE(parse_partition_csv("a, data, nvs, 0x9000, 0xZZ\n", &t, &err));
  EXPECT_FALSE(parse_partition_csv("a, data\n", &t, &err));
  EXPECT_FALSE(parse_partition_csv("# nothing\n", &t, &err));
  EXPECT_FALSE(parse_partition_csv("a, data, nvs, 0xFFFFFFFFFFFFFFFFF, 1\n", &t, &err));
}

TEST(FirmwareProject, SdkconfigDefaultsAndKconfig) {
  const std::string sdk = read_file(kFirmware + "/sdkconfig.defaults");
  for (const char* key :
       {"CONFIG_ESPTOOLPY_FLASHSIZE_16MB=y", "CONFIG_ESPTOOLPY_FLASHMODE_QIO=y",
        "CONFIG_ESPTOOLPY_FLASHFREQ_80M=y", "CONFIG_SPIRAM_MODE_OCT=y",
        "CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y", "CONFIG_ESP32S3_DATA_CACHE_LINE_64B=y",
        "CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG=y", "CONFIG_PARTITION_TABLE_CUSTOM=y",
        "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"partitions.csv\""}) {
    EXPECT_NE(sdk.find(std::string("\n") + key + "\n"), std::string::npos) << key;
  }
  LinkDefaults link;
  std::string err;
  ASSERT_TRUE(parse_link_defaults(read_file(kFirmware + "/main/Kconfig.projbuild"), &link, &err))
      << err;
  EXPECT_EQ(link.uart, 1);
  EXPECT_EQ(link.tx_pin, 17);
  EXPECT_EQ(link.rx_pin, 18);
  EXPECT_EQ(link.baud, 460800);
  EXPECT_FALSE(parse_link_defaults("config LLMWIRE_LINK_UART_NUM\n  int \"x\"\n", &link, &err));
}

TEST(FirmwareProject, EveryEspIdfCallStaysInThePlatformFolder) {
  // The portable code never names ESP-IDF: no esp_/FreeRTOS headers outside firmware/.
  for (const std::string& f : portable_sources_on_disk()) {
    const std::string text = read_file(kRoot + "/" + f);
    for (const char* idf : {"esp_", "freertos/", "driver/", "sdkconfig.h"}) {
      EXPECT_EQ(text.find(std::string("#include \"") + idf), std::string::npos) << f << " " << idf;
    }
  }
}

TEST(FlashPlan, PrintsCommandsAndRingWiringFromTheProjectFiles) {
  TempDir dir;
  const auto c = llmwire::test::small_config(64, 120, 4, 8, 4, 320, 64);
  const std::string whole = llmwire::test::make_image(dir, c, WeightType::kQ4, 32, 5);
  const CmdResult s = run("split " + whole + " --boards 3 -o " + dir.path);
  ASSERT_EQ(s.rc, 0) << s.out;
  const std::string base = whole.substr(0, whole.size() - 4);
  const std::string s0 = base + ".stage0.img", s1 = base + ".stage1.img", s2 = base + ".stage2.img";
  // Any order on the command line; the plan is in stage order.
  CmdResult r = run("flash-plan " + s2 + " " + s0 + " " + s1 + " --port-prefix /dev/ttyACM");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--port /dev/ttyACM0 write_flash 0x1F0000 " + s0), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("--port /dev/ttyACM2 write_flash 0x1F0000 " + s2), std::string::npos);
  EXPECT_NE(r.out.find(" 0x10000 " + kFirmware + "/build/llmwire_esp32s3.bin"), std::string::npos);
  EXPECT_NE(r.out.find("board 0 TX (GPIO17)  ->  board 1 RX (GPIO18)"), std::string::npos);
  EXPECT_NE(r.out.find("board 2 TX (GPIO17)  ->  board 0 RX (GPIO18)"), std::string::npos);
  EXPECT_NE(r.out.find("GND of every board"), std::string::npos);
  EXPECT_LT(r.out.find("board 0 ("), r.out.find("board 1 ("));

  // Offsets and pins come from the project's files, not from the code.
  const std::string fw = dir.file("fw");
  ASSERT_EQ(std::system(("mkdir -p " + fw + "/main").c_str()), 0);
  write_file(fw + "/partitions.csv",
             "nvs, data, nvs, 0x9000, 0x5000,\nfactory, app, factory, 0x10000, 0x100000,\n"
             "model, data, 0x40, 0x200000, 0xE00000,\n");
  std::string kconfig = read_file(kFirmware + "/main/Kconfig.projbuild");
  const size_t at = kconfig.find("default 17");
  ASSERT_NE(at, std::string::npos);
  kconfig.replace(at, 10, "default 43");
  write_file(fw + "/main/Kconfig.projbuild", kconfig);
  r = run("flash-plan --boards 2 --firmware " + fw);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--port PORT1 write_flash 0x200000 STAGE1_IMAGE"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("board 1 TX (GPIO43)  ->  board 0 RX (GPIO18)"), std::string::npos);

  // Refusals: a missing stage, a stage given twice, images of two models, a bad table.
  r = run("flash-plan " + s0 + " " + s1);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("stage 0 of 3"), std::string::npos) << r.out;
  r = run("flash-plan " + s0 + " " + s1 + " " + s1);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("stage 2 is missing"), std::string::npos) << r.out;
  TempDir other;
  const std::string whole2 = llmwire::test::make_image(other, c, WeightType::kQ8, 32, 9);
  ASSERT_EQ(run("split " + whole2 + " --boards 3 -o " + other.path).rc, 0);
  const std::string o2 = whole2.substr(0, whole2.size() - 4) + ".stage2.img";
  r = run("flash-plan " + s0 + " " + s1 + " " + o2);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("different model"), std::string::npos) << r.out;
  r = run("flash-plan " + whole + " " + s1);
  EXPECT_NE(r.rc, 0);
  write_file(fw + "/partitions.csv", "factory, app, factory, 0x10000, 0x100000,\n");
  r = run("flash-plan --boards 2 --firmware " + fw);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("no 'model'"), std::string::npos) << r.out;
  r = run("flash-plan");
  EXPECT_NE(r.rc, 0);
}

// ---- /selftest: the digest the PC stores in the head image, compared on the board ----------

namespace {

ImageInfo header_of(const std::string& path) {
  const std::vector<uint8_t> b = llmwire::test::read_bytes(path);
  ImageInfo info;
  EXPECT_EQ(decode_header(b.data(), b.size(), &info), Status::kOk) << path;
  return info;
}

void set_digest(const std::string& path, uint32_t digest) {
  std::vector<uint8_t> b = llmwire::test::read_bytes(path);
  ImageInfo info;
  ASSERT_EQ(decode_header(b.data(), b.size(), &info), Status::kOk);
  info.selftest_digest = digest;
  encode_header(info, b.data());
  write_file(path, std::string(b.begin(), b.end()));
}

// Boots `paths` as a ring (workers on threads over socketpairs, the head driven here) and
// returns what the head's console prints for one line.
std::string console_line(const std::vector<std::string>& paths, const std::string& line,
                         uint32_t head_threads = 2) {
  const size_t n = paths.size();
  std::vector<std::unique_ptr<FdLink>> rx, tx;
  std::vector<std::unique_ptr<SplitLink>> links;
  std::vector<int> in(n), out(n);
  for (size_t k = 0; k < n; k++) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    out[k] = sv[0];
    in[(k + 1) % n] = sv[1];
  }
  for (size_t k = 0; k < n; k++) {
    rx.push_back(std::make_unique<FdLink>(in[k], true));
    tx.push_back(std::make_unique<FdLink>(out[k], true));
    links.push_back(std::make_unique<SplitLink>(rx[k].get(), tx[k].get()));
  }
  std::vector<std::unique_ptr<HostStage>> stages(n);
  std::string err, hint;
  for (size_t k = 0; k < n; k++) {
    stages[k] = std::make_unique<HostStage>();
    const bool ok =
        stages[k]->boot(paths[k], n > 1 ? links[k].get() : nullptr, StageOptions{},
                        k == 0 ? head_threads : 1, 100 + (uint32_t)k, nullptr, &err, &hint);
    EXPECT_TRUE(ok) << err;
    if (!ok) return "";
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (size_t k = 1; k < n; k++) {
    workers.emplace_back([&, k] {
      stages[k]->stage().serve([](void* c) { return static_cast<std::atomic<bool>*>(c)->load(); },
                               &stop);
    });
  }
  std::string printed;
  auto console = std::make_unique<HeadConsole>();
  console->init(
      &stages[0]->stage(),
      [](void* c, const char* s, size_t len) { static_cast<std::string*>(c)->append(s, len); },
      &printed);
  console->handle_line(line.data(), line.size());
  stop = true;
  for (auto& t : workers) t.join();
  return printed;
}

}  // namespace

TEST(SelftestDigest, SplitStoresItAndTheRingsHeadComparesIt) {
  TempDir dir;
  const auto c = llmwire::test::small_config(64, 120, 4, 8, 4, 320, 128);
  const std::string whole = llmwire::test::make_image(dir, c, WeightType::kQ4, 32, 11);
  MappedFile f;
  std::string err;
  ASSERT_TRUE(f.open(whole, &err)) << err;
  Image full;
  ASSERT_EQ(full.open(f.data(), f.size()), Status::kOk);

  const std::vector<std::string> paths = {dir.file("s0.img"), dir.file("s1.img"),
                                          dir.file("s2.img")};
  std::vector<uint64_t> sizes;
  ASSERT_TRUE(split_image(full, {{3, 4}, {0, 1}, {1, 3}}, 0, KvType::kF32, paths, &sizes, &err))
      << err;
  const uint32_t stored = header_of(paths[0]).selftest_digest;
  EXPECT_NE(stored, 0u);
  EXPECT_EQ(header_of(paths[1]).selftest_digest, 0u);  // only the head's image carries it
  EXPECT_EQ(header_of(paths[2]).selftest_digest, 0u);
  RunOptions run;
  run.kv_override = true;
  run.kv_type = KvType::kF32;
  uint32_t digest = 0;
  ASSERT_TRUE(compute_selftest_digest(full, run, &digest, &err)) << err;
  EXPECT_EQ(digest, stored);

  // A ring of three tells the PC's story: "ok".
  std::string out = console_line(paths, "/selftest");
  char want[32];
  snprintf(want, sizeof want, "%08lx", (unsigned long)stored);
  EXPECT_NE(out.find("selftest: ok, digest " + std::string(want)), std::string::npos) << out;

  // A head image whose stored digest differs: "MISMATCH", naming both digests.
  set_digest(paths[0], stored ^ 0x5A5A5A5Au);
  out = console_line(paths, "/selftest", 1);
  EXPECT_NE(out.find("selftest: MISMATCH: digest " + std::string(want)), std::string::npos) << out;
  // No stored digest (an image from an older llmwire): the digest, and why nothing compares.
  set_digest(paths[0], 0);
  out = console_line(paths, "/selftest");
  EXPECT_NE(out.find("stores no expected digest"), std::string::npos) << out;

  // The stages' KV type is what the digest is computed with.
  ASSERT_TRUE(split_image(full, {{2, 4}, {0, 2}}, 64, KvType::kF16,
                          {dir.file("h0.img"), dir.file("h1.img")}, &sizes, &err))
      << err;
  run.kv_type = KvType::kF16;
  run.seq_len = 64;
  ASSERT_TRUE(compute_selftest_digest(full, run, &digest, &err)) << err;
  EXPECT_EQ(header_of(dir.file("h0.img")).selftest_digest, digest);
  out = console_line({dir.file("h0.img"), dir.file("h1.img")}, "/selftest");
  EXPECT_NE(out.find("selftest: ok"), std::string::npos) << out;
}

TEST(SelftestDigest, ConvertStampsAOneBoardImage) {
  TempDir dir;
  const auto c = llmwire::test::small_config(64, 120, 2, 8, 4, 320, 64);
  const std::string whole = llmwire::test::make_image(dir, c, WeightType::kQ8, 32, 4);
  EXPECT_EQ(header_of(whole).selftest_digest, 0u);
  uint32_t digest = 0;
  std::string err;
  ASSERT_TRUE(stamp_selftest_digest(whole, &digest, &err)) << err;
  EXPECT_NE(digest, 0u);
  EXPECT_EQ(header_of(whole).selftest_digest, digest);
  std::string out = console_line({whole}, "/selftest");
  EXPECT_NE(out.find("selftest: ok"), std::string::npos) << out;
  // The image is still valid end to end (payload CRC untouched, header CRC rewritten).
  MappedFile f;
  ASSERT_TRUE(f.open(whole, &err));
  Image img;
  EXPECT_EQ(img.open(f.data(), f.size(), true), Status::kOk);
  // A context too short for the selftest prompt: no digest, no failure.
  const auto tiny = llmwire::test::small_config(64, 120, 2, 8, 4, 320, 4);
  const std::string short_ctx =
      llmwire::test::make_image(dir, tiny, WeightType::kQ8, 32, 4, KvType::kF32, "tiny");
  ASSERT_TRUE(stamp_selftest_digest(short_ctx, &digest, &err)) << err;
  EXPECT_EQ(digest, 0u);
}

TEST(FirmwareProject, HardwareDocMatchesTheProject) {
  const std::string doc = read_file(kRoot + "/docs/HARDWARE.md");
  ASSERT_FALSE(doc.empty());
  EXPECT_NE(read_file(kRoot + "/README.md").find("docs/HARDWARE.md"), std::string::npos);
  // The layout and pins it teaches are the project's.
  std::vector<PartitionEntry> table;
  std::string err;
  ASSERT_TRUE(parse_partition_csv(read_file(kFirmware + "/partitions.csv"), &table, &err));
  for (const PartitionEntry& p : table) {
    char row[96];
    snprintf(row, sizeof row, "| %s | %s | %s | 0x%llX | 0x%llX", p.name.c_str(), p.type.c_str(),
             p.subtype.c_str(), (unsigned long long)p.offset, (unsigned long long)p.size);
    EXPECT_NE(doc.find(row), std::string::npos) << "docs/HARDWARE.md lacks the row " << row;
  }
  LinkDefaults link;
  ASSERT_TRUE(parse_link_defaults(read_file(kFirmware + "/main/Kconfig.projbuild"), &link, &err));
  EXPECT_NE(doc.find("TX GPIO" + std::to_string(link.tx_pin) + ", RX GPIO" +
                     std::to_string(link.rx_pin) + ", " + std::to_string(link.baud) + " baud"),
            std::string::npos);
  // What the reference project's users hit has a row in the troubleshooting table.
  for (const char* symptom :
       {"no model", "no 'model' partition", "no banner", "PSRAM missing", "link timeout",
        "CRC rejects", "esptool: No such file", "port busy", "old model", "/selftest"}) {
    EXPECT_NE(doc.find(symptom), std::string::npos) << symptom;
  }
  // Every console command the runtime knows is documented.
  for (const char* cmd :
       {"/temp", "/topp", "/len", "/seed", "/stats", "/selftest", "/reset", "/help"}) {
    EXPECT_NE(doc.find(std::string("`") + cmd), std::string::npos) << cmd;
  }
}
