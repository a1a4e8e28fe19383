// llmwire synth --shape NAME --seed S -o CKPT [--tokenizer-out TOK] [custom shape flags]
#include <cstdio>

#include "cli/commands.h"
#include "platform/host/output_file.h"
#include "tools/checkpoint.h"
#include "tools/synth.h"

namespace llmwire::cli {
namespace {

struct Args {
  std::string shape, output, tokenizer_out;
  uint64_t seed = 1;
  uint32_t dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq = 0;
  bool separate = false;
  CLI::Option *o_dim = nullptr, *o_hidden = nullptr, *o_layers = nullptr, *o_heads = nullptr,
              *o_kv = nullptr, *o_vocab = nullptr, *o_seq = nullptr;
};

void run(const Args& a) {
  ModelConfig c;
  if (!a.shape.empty()) {
    if (!shape_config(a.shape, &c)) {
      fail("unknown shape '" + a.shape + "'",
           "use stories260K, stories15M, stories42M or stories110M, or give --dim --hidden "
           "--layers --heads --vocab --seq");
    }
  } else {
    std::string missing;
    const std::pair<const CLI::Option*, const char*> need[] = {
        {a.o_dim, "--dim"},     {a.o_hidden, "--hidden"}, {a.o_layers, "--layers"},
        {a.o_heads, "--heads"}, {a.o_vocab, "--vocab"},   {a.o_seq, "--seq"}};
    for (const auto& n : need) {
      if (n.first->count() == 0) missing += std::string(missing.empty() ? "" : " ") + n.second;
    }
    if (!missing.empty()) {
      fail("no --shape and no " + missing,
           "give --shape NAME, or all of --dim --hidden --layers --heads --vocab --seq "
           "(--kv-heads defaults to --heads)");
    }
  }
  if (a.o_dim->count()) c.dim = a.dim;
  if (a.o_hidden->count()) c.hidden_dim = a.hidden;
  if (a.o_layers->count()) c.n_layers = a.layers;
  if (a.o_heads->count()) {
    c.n_heads = a.heads;
    if (a.o_kv->count() == 0) c.n_kv_heads = a.heads;
  }
  if (a.o_kv->count()) c.n_kv_heads = a.kv_heads;
  if (a.o_vocab->count()) c.vocab_size = a.vocab;
  if (a.o_seq->count()) c.seq_len = a.seq;
  if (a.separate) c.shared_classifier = false;

  if (c.dim % 2 != 0 || c.dim % c.n_heads != 0 || (c.dim / c.n_heads) % 2 != 0) {
    fail("dim " + std::to_string(c.dim) + " with " + std::to_string(c.n_heads) +
             " heads does not give an even head size",
         "dim must be a multiple of heads and dim/heads even (RoPE rotates pairs)");
  }
  if (c.n_kv_heads > c.n_heads || c.n_heads % c.n_kv_heads != 0) {
    fail("heads " + std::to_string(c.n_heads) + " is not a multiple of kv-heads " +
             std::to_string(c.n_kv_heads),
         "kv-heads must divide heads (grouped-query attention)");
  }
  std::string err;
  if (!a.tokenizer_out.empty() &&
      (a.tokenizer_out == a.output || !check_output_path(a.tokenizer_out, {a.output}, &err))) {
    fail("-o and --tokenizer-out name the same file (" + a.tokenizer_out +
             "): the tokenizer would overwrite the checkpoint",
         "give the tokenizer its own file, e.g. --tokenizer-out tok.bin");
  }
  if (!synth_checkpoint(c, a.seed, a.output, &err)) fail(err);
  std::printf(
      "wrote %s: random weights (seed %llu), dim %u hidden %u layers %u heads %u "
      "kv_heads %u vocab %u seq %u, %s classifier, %zu bytes\n",
      a.output.c_str(), (unsigned long long)a.seed, c.dim, c.hidden_dim, c.n_layers, c.n_heads,
      c.n_kv_heads, c.vocab_size, c.seq_len, c.shared_classifier ? "shared" : "separate",
      checkpoint_bytes(c));
  if (!a.tokenizer_out.empty()) {
    if (!synth_tokenizer(c.vocab_size, a.seed, a.tokenizer_out, &err)) fail(err);
    std::printf("wrote %s: synthetic tokenizer with %u tokens\n", a.tokenizer_out.c_str(),
                c.vocab_size);
  }
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "synth",
      "Write a llama2.c legacy checkpoint with deterministic random weights of a given shape "
      "(for size and speed work without real weights; it generates noise, not stories), and "
      "optionally a matching synthetic tokenizer.bin");
  static Args a;
  cmd->add_option("--shape", a.shape,
                  "named shape: stories260K, stories15M, stories42M or stories110M (the flags "
                  "below override its fields)")
      ->check(CLI::IsMember({"stories260K", "stories15M", "stories42M", "stories110M"}));
  cmd->add_option("--seed", a.seed, "random seed (same seed, same bytes)")->default_val(1);
  cmd->add_option("-o,--output", a.output, "checkpoint file to write")->required();
  cmd->add_option("--tokenizer-out", a.tokenizer_out,
                  "also write a synthetic tokenizer.bin with the model's vocabulary size");
  a.o_dim = cmd->add_option("--dim", a.dim, "model width")->check(CLI::Range(2u, 65536u));
  a.o_hidden = cmd->add_option("--hidden", a.hidden, "FFN width")->check(CLI::Range(1u, 1u << 20));
  a.o_layers = cmd->add_option("--layers", a.layers, "layers")->check(CLI::Range(1u, 64u));
  a.o_heads = cmd->add_option("--heads", a.heads, "query heads")->check(CLI::Range(1u, 65536u));
  a.o_kv = cmd->add_option("--kv-heads", a.kv_heads, "key/value heads (default: --heads)")
               ->check(CLI::Range(1u, 65536u));
  a.o_vocab = cmd->add_option("--vocab", a.vocab, "vocabulary size (a tokenizer needs >= 3)")
                  ->check(CLI::Range(3u, 1u << 20));
  a.o_seq = cmd->add_option("--seq", a.seq, "context length")->check(CLI::Range(1u, 1u << 20));
  cmd->add_flag("--separate-classifier", a.separate,
                "give the model its own classifier matrix (negative vocab in the header) "
                "instead of sharing the embedding");
  cmd->callback([] { run(a); });
}

}  // namespace llmwire::cli
