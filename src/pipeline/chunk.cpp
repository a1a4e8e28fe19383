#include "pipeline/chunk.h"

#include "link/messages.h"

namespace llmwire {

Status run_chunk(Model* model, uint32_t begin, uint32_t end, uint32_t pos, uint32_t count,
                 const uint8_t* in, uint8_t* out) {
  const uint32_t dim = model->config().dim, most = model->prompt_batch();
  for (uint32_t i = 0; i < count;) {
    const uint32_t n = count - i < most ? count - i : most;
    float* x = n > 1 ? model->batch_x() : model->x();
    const size_t off = (size_t)i * dim * 4;
    load_f32_array(in + off, n * dim, x);
    const Status s = model->run_layers_batch(begin, end, pos + i, n, x);
    if (s != Status::kOk) return s;
    if (out) store_f32_array(x, n * dim, out + off);
    i += n;
  }
  return Status::kOk;
}

uint32_t chunk_positions(uint32_t prompt_batch, uint32_t dim) {
  const uint32_t most = activation_batch_max_count(dim);
  const uint32_t b = prompt_batch > 1 ? prompt_batch : 1;
  return b < most ? b : (most > 1 ? most : 1);
}

}  // namespace llmwire
