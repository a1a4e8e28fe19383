#include "tools/flash_plan.h"

#include <stdio.h>

#include <algorithm>
#include <sstream>

#include "engine/image_header.h"

namespace llmwire {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// "0x1F0000", "2031616", "64K", "14M".
bool parse_number(const std::string& text, uint64_t* out) {
  std::string s = trim(text);
  uint64_t mult = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) mult = 1024;
  if (!s.empty() && (s.back() == 'M' || s.back() == 'm')) mult = 1024 * 1024;
  if (mult != 1) s.pop_back();
  if (s.empty()) return false;
  int base = 10;
  size_t i = 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    i = 2;
  }
  uint64_t v = 0;
  for (; i < s.size(); i++) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
    v = v * (uint64_t)base + (uint64_t)d;
  }
  if (v > UINT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

std::string hex(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%llX", (unsigned long long)v);
  return buf;
}

}  // namespace

bool parse_partition_csv(const std::string& text, std::vector<PartitionEntry>* out,
                         std::string* err) {
  out->clear();
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    n++;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::vector<std::string> f;
    std::string cell;
    std::istringstream cells(t);
    while (std::getline(cells, cell, ',')) f.push_back(trim(cell));
    const std::string where = "partitions.csv line " + std::to_string(n) + ": ";
    if (f.size() < 5) {
      *err = where + "expected name, type, subtype, offset, size";
      return false;
    }
    PartitionEntry e;
    e.name = f[0];
    e.type = f[1];
    e.subtype = f[2];
    if (e.name.empty() || e.type.empty() || e.subtype.empty()) {
      *err = where + "empty name, type or subtype";
      return false;
    }
    if (!parse_number(f[3], &e.offset)) {
      *err = where + "offset '" + f[3] + "' is not a number (this plan needs explicit offsets)";
      return false;
    }
    if (!parse_number(f[4], &e.size) || e.size == 0) {
      *err = where + "size '" + f[4] + "' is not a positive number";
      return false;
    }
    for (const PartitionEntry& p : *out) {
      if (p.name == e.name) {
        *err = where + "partition '" + e.name + "' appears twice";
        return false;
      }
      if (e.offset < p.offset + p.size && p.offset < e.offset + e.size) {
        *err = where + "'" + e.name + "' overlaps '" + p.name + "'";
        return false;
      }
    }
    out->push_back(e);
  }
  if (out->empty()) {
    *err = "partitions.csv holds no partitions";
    return false;
  }
  return true;
}

const PartitionEntry* find_partition(const std::vector<PartitionEntry>& table,
                                     const std::string& name) {
  for (const PartitionEntry& p : table) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool parse_link_defaults(const std::string& kconfig_text, LinkDefaults* out, std::string* err) {
  struct Key {
    const char* name;
    int* value;
  } keys[] = {{"LLMWIRE_LINK_UART_NUM", &out->uart},
              {"LLMWIRE_LINK_TX_PIN", &out->tx_pin},
              {"LLMWIRE_LINK_RX_PIN", &out->rx_pin},
              {"LLMWIRE_LINK_BAUD", &out->baud}};
  for (const Key& k : keys) {
    const std::string decl = std::string("config ") + k.name + "\n";
    size_t at = kconfig_text.find(decl);
    const size_t next = at == std::string::npos ? at : kconfig_text.find("config ", at + 7);
    const size_t def = at == std::string::npos ? at : kconfig_text.find("default ", at);
    uint64_t v = 0;
    if (def == std::string::npos || (next != std::string::npos && def > next) ||
        !parse_number(kconfig_text.substr(def + 8, kconfig_text.find('\n', def) - def - 8), &v) ||
        v > 0x7FFFFFFF) {
      *err = std::string("Kconfig.projbuild: no numeric default for ") + k.name;
      return false;
    }
    *k.value = (int)v;
  }
  return true;
}

bool flash_plan_boards(const std::vector<std::string>& images, uint64_t model_partition_bytes,
                       std::vector<FlashPlanBoard>* boards, std::string* err) {
  boards->clear();
  std::vector<ImageInfo> infos;
  for (const std::string& path : images) {
    FILE* f = fopen(path.c_str(), "rb");
    if (!f) {
      *err = "cannot read " + path;
      return false;
    }
    uint8_t header[kHeaderSize];
    const size_t got = fread(header, 1, sizeof header, f);
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fclose(f);
    ImageInfo info;
    const Status s = decode_header(header, got, &info);
    if (s != Status::kOk) {
      *err = path + ": " + status_message(s) + " (" + status_hint(s) + ")";
      return false;
    }
    if (size < 0 || (uint64_t)size != info.file_size) {
      *err = path + ": " + status_message(Status::kTruncated) + " or has extra bytes";
      return false;
    }
    if (info.file_size > model_partition_bytes) {
      *err = path + " is " + std::to_string(info.file_size) + " bytes; the model partition holds " +
             std::to_string(model_partition_bytes) +
             ": split the model over more boards (llmwire plan)";
      return false;
    }
    if (!infos.empty() && info.model_id != infos[0].model_id) {
      *err = path + " is cut from a different model than " + images[0] +
             " (model ids differ): use the images of one 'llmwire split'";
      return false;
    }
    if (info.stage_count != images.size()) {
      *err = path + " is stage " + std::to_string(info.stage_index) + " of " +
             std::to_string(info.stage_count) + ", but " + std::to_string(images.size()) +
             " images were given: pass every stage image of the split once";
      return false;
    }
    infos.push_back(info);
    boards->push_back(FlashPlanBoard{path, info.file_size, info.stage_index});
  }
  std::sort(boards->begin(), boards->end(),
            [](const FlashPlanBoard& a, const FlashPlanBoard& b) { return a.stage < b.stage; });
  for (size_t k = 0; k < boards->size(); k++) {
    if ((*boards)[k].stage != k) {
      *err = "stage " + std::to_string(k) + " is missing (or another stage was given twice)";
      return false;
    }
  }
  return true;
}

std::string format_flash_plan(const FlashPlanRequest& req, const std::vector<PartitionEntry>& table,
                              const LinkDefaults& link) {
  const PartitionEntry* app = find_partition(table, "factory");
  const PartitionEntry* model = find_partition(table, "model");
  // Fixed by the chip and by ESP-IDF's default CONFIG_PARTITION_TABLE_OFFSET, not by the CSV.
  const uint64_t kBootloaderOffset = 0x0, kTableOffset = 0x8000;
  const size_t n = req.boards.size();
  const std::string build = req.firmware_dir + "/build";
  std::ostringstream o;
  o << "Flash plan: " << n << (n == 1 ? " board" : " boards") << ", firmware " << req.firmware_dir
    << " (app at " << hex(app ? app->offset : 0) << ", model partition at "
    << hex(model ? model->offset : 0) << ", " << (model ? model->size : 0) << " bytes)\n\n";
  o << "1. Build the firmware once (ESP-IDF 5.3 or later; the same firmware for every board):\n"
    << "   cd " << req.firmware_dir << " && idf.py set-target esp32s3 && idf.py build\n\n";
  o << "2. Flash each board (boards on USB, serial monitors closed):\n";
  for (size_t k = 0; k < n; k++) {
    const FlashPlanBoard& b = req.boards[k];
    const std::string port = req.port_prefix + std::to_string(k);
    o << "\n   board " << k << " (" << (k == 0 ? "head: console, tokenizer, sampling" : "worker")
      << "), stage " << b.stage << " of " << n << ": " << b.image;
    if (b.image_bytes) {
      o << " (" << b.image_bytes << " bytes, "
        << (model && model->size ? (b.image_bytes * 100 + model->size - 1) / model->size : 0)
        << "% of the model partition)";
    }
    o << "\n";
    o << "     idf.py -C " << req.firmware_dir << " -p " << port << " flash\n";
    o << "       or: python -m esptool --chip esp32s3 --port " << port
      << " write_flash --flash_mode qio --flash_freq 80m --flash_size 16MB "
      << hex(kBootloaderOffset) << " " << build << "/bootloader/bootloader.bin "
      << hex(kTableOffset) << " " << build << "/partition_table/partition-table.bin "
      << hex(app ? app->offset : 0) << " " << build << "/" << req.app_name << ".bin\n";
    o << "     python -m esptool --chip esp32s3 --port " << port << " write_flash "
      << hex(model ? model->offset : 0) << " " << b.image << "\n";
  }
  o << "\n3. Wire the ring (power off; 3 wires per hop; link UART" << link.uart << " at "
    << link.baud << " baud on every board; pins are the Kconfig defaults, change them in "
    << "idf.py menuconfig -> llmwire):\n\n";
  o << "   from                      to\n";
  for (size_t k = 0; k < n; k++) {
    const size_t next = (k + 1) % n;
    if (n == 1) break;
    char line[160];
    snprintf(line, sizeof line, "   board %zu TX (GPIO%d)  ->  board %zu RX (GPIO%d)\n", k,
             link.tx_pin, next, link.rx_pin);
    o << line;
  }
  if (n == 1) {
    o << "   (one board: no link wires)\n";
  } else {
    o << "   GND of every board joined (one common ground; never join 3V3 or 5V)\n";
  }
  o << "\n4. Open the console of board 0 (idf.py -p " << req.port_prefix << "0 monitor), reset "
    << "every board, wait for \"Ready\", type a story opening. /selftest should answer "
    << "\"selftest: ok\": the ring told the story the PC stored in the head image.\n";
  return o.str();
}

}  // namespace llmwire
