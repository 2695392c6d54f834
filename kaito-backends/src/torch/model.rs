//! The Llama-family decoder on `tch` tensors: token embeddings, `n` blocks of
//! RMSNorm → grouped-query attention with RoPE → residual → RMSNorm → SwiGLU MLP → residual,
//! a final RMSNorm and the output projection (tied to the embeddings when the checkpoint says so).
//!
//! One forward pass serves one of three shapes ([`Pass`]): a decode step of several sequences
//! (one token each, at different positions, in different KV slots), a prefill chunk of one
//! sequence, or a whole sequence without cache (embeddings and evaluation).

use tch::{Device, Kind, Tensor};

use super::checkpoint::TensorMap;
use super::config::LlamaConfig;
use super::kv_cache::KvCache;
use super::linear::Linear;
use super::rope::Rope;
use crate::error::Result;

/// What a forward pass computes.
#[derive(Debug, Clone, Copy)]
pub enum Pass<'a> {
    /// The next token of each sequence: `slots[i]` at `positions[i]`; tokens are `[n, 1]`.
    Decode {
        /// KV slot of each sequence.
        slots: &'a [i64],
        /// Position of each sequence's token.
        positions: &'a [i64],
    },
    /// Prompt tokens `[1, t]` of the sequence in `slot`, at positions `start..start + t`.
    Prefill {
        /// KV slot.
        slot: i64,
        /// Position of the first token.
        start: i64,
    },
    /// Tokens `[1, t]` from position 0, without touching the KV cache.
    Full,
}

/// Builds one projection: receives the tensors, the layer's full name (`model.layers.3.mlp.up_proj`),
/// its `[out, in]` shape and whether it has a bias, and decides how it is stored (dense in the
/// compute dtype, quantized at load, or read pre-quantized).
pub type LinearBuilder<'a> = dyn FnMut(&mut TensorMap, &str, [i64; 2], bool) -> Result<Linear> + 'a;

/// The dense [`LinearBuilder`]: weight (and bias) in `kind` on `device`.
pub fn dense_linear(
    tensors: &mut TensorMap,
    name: &str,
    shape: [i64; 2],
    bias: bool,
    kind: Kind,
    device: Device,
) -> Result<Linear> {
    let weight = tensors
        .take(&format!("{name}.weight"), &shape)?
        .to_device(device)
        .to_kind(kind);
    let bias = if bias {
        Some(
            tensors
                .take(&format!("{name}.bias"), &[shape[0]])?
                .to_device(device)
                .to_kind(kind),
        )
    } else {
        None
    };
    Ok(Linear::Dense { weight, bias })
}

struct Block {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A loaded decoder.
pub struct LlamaModel {
    config: LlamaConfig,
    kind: Kind,
    device: Device,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Linear,
    rope: Rope,
}

impl LlamaModel {
    /// Builds the model from `tensors` (HF names) in `kind` on `device`, with RoPE tables for
    /// `max_positions`. `build_linear` receives each projection (weight already on the device in
    /// `kind`) and decides how it is stored: dense, or quantized.
    pub fn load(
        config: LlamaConfig,
        tensors: &mut TensorMap,
        kind: Kind,
        device: Device,
        max_positions: i64,
        build_linear: &mut LinearBuilder<'_>,
    ) -> Result<Self> {
        let c = &config;
        let (h, hd) = (c.hidden_size, c.head_dim);
        let q_out = c.num_attention_heads * hd;
        let kv_out = c.num_key_value_heads * hd;
        let to = |t: Tensor| t.to_device(device).to_kind(kind);
        let take =
            |tensors: &mut TensorMap, name: &str, shape: &[i64]| tensors.take(name, shape).map(to);
        let embed = take(tensors, "model.embed_tokens.weight", &[c.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(c.num_hidden_layers as usize);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut linear = |name: &str, out: i64, inp: i64, bias: bool| -> Result<Linear> {
                build_linear(tensors, &format!("{p}.{name}"), [out, inp], bias)
            };
            let bias = c.attention_bias;
            let q = linear("self_attn.q_proj", q_out, h, bias)?;
            let k = linear("self_attn.k_proj", kv_out, h, bias)?;
            let v = linear("self_attn.v_proj", kv_out, h, bias)?;
            let o = linear("self_attn.o_proj", h, q_out, false)?;
            let gate = linear("mlp.gate_proj", c.intermediate_size, h, false)?;
            let up = linear("mlp.up_proj", c.intermediate_size, h, false)?;
            let down = linear("mlp.down_proj", h, c.intermediate_size, false)?;
            blocks.push(Block {
                input_norm: take(tensors, &format!("{p}.input_layernorm.weight"), &[h])?,
                post_norm: take(
                    tensors,
                    &format!("{p}.post_attention_layernorm.weight"),
                    &[h],
                )?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let norm = take(tensors, "model.norm.weight", &[h])?;
        // The output projection stays dense: it is a small share of the weights and the most
        // sensitive to rounding.
        let lm_head = if c.tie_word_embeddings {
            Linear::Dense {
                weight: embed.shallow_clone(),
                bias: None,
            }
        } else if tensors.contains("lm_head.weight") {
            dense_linear(tensors, "lm_head", [c.vocab_size, h], false, kind, device)?
        } else {
            return Err(tensors_missing("lm_head.weight"));
        };
        let rope = Rope::new(c, max_positions, kind, device);
        Ok(Self {
            config,
            kind,
            device,
            embed,
            blocks,
            norm,
            lm_head,
            rope,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Compute dtype.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Device the weights live on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Bytes of all weights as held (quantized layers count their packed size).
    pub fn weight_bytes(&self) -> u64 {
        let bytes = |t: &Tensor| (t.numel() * t.kind().elt_size_in_bytes()) as u64;
        let blocks: u64 = self
            .blocks
            .iter()
            .map(|b| {
                [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down]
                    .iter()
                    .map(|l| l.weight_bytes())
                    .sum::<u64>()
                    + bytes(&b.input_norm)
                    + bytes(&b.post_norm)
            })
            .sum();
        let head = if self.config.tie_word_embeddings {
            0
        } else {
            self.lm_head.weight_bytes()
        };
        bytes(&self.embed) + blocks + bytes(&self.norm) + head
    }

    /// A zeroed KV cache for `slots` sequences of `ctx` tokens.
    pub(super) fn new_cache(&self, slots: i64, ctx: i64) -> KvCache {
        KvCache::new(&self.config, slots, ctx, self.kind, self.device)
    }

    /// Runs the decoder over `tokens` (`[batch, t]`, i64) and returns the final-norm hidden
    /// states `[batch, t, hidden]`. Decode and prefill passes write their keys and values into
    /// `cache` (required for them).
    pub(super) fn forward(
        &self,
        tokens: &Tensor,
        pass: Pass<'_>,
        mut cache: Option<&mut KvCache>,
    ) -> Tensor {
        let (b, t) = (tokens.size()[0], tokens.size()[1]);
        let positions = match pass {
            Pass::Decode { positions, .. } => Tensor::from_slice(positions).view([b, 1]),
            Pass::Prefill { start, .. } => {
                Tensor::arange_start(start, start + t, int64()).view([1, t])
            }
            Pass::Full => Tensor::arange(t, int64()).view([1, t]),
        }
        .to_device(self.device);
        let mask = self.attention_mask(pass, &positions, t);
        let slots = match pass {
            Pass::Decode { slots, .. } => Some(Tensor::from_slice(slots).to_device(self.device)),
            _ => None,
        };
        let c = &self.config;
        let (heads, kv_heads, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let ids = tokens.to_device(self.device).reshape([-1]);
        let mut x = self.embed.index_select(0, &ids).view([b, t, c.hidden_size]);
        for (layer, block) in self.blocks.iter().enumerate() {
            let normed = self.rms_norm(&x, &block.input_norm);
            let split = |y: Tensor, n: i64| y.view([b, t, n, hd]).transpose(1, 2);
            let q = self
                .rope
                .apply(&split(block.q.forward(&normed), heads), &positions);
            let k = self
                .rope
                .apply(&split(block.k.forward(&normed), kv_heads), &positions);
            let v = split(block.v.forward(&normed), kv_heads);
            let (keys, values) = match (pass, cache.as_deref_mut()) {
                (Pass::Full, _) | (_, None) => (k, v),
                (Pass::Decode { positions: pos, .. }, Some(cache)) => {
                    let slots = slots.as_ref().expect("decode pass has slots");
                    let pos_t = Tensor::from_slice(pos).to_device(self.device);
                    let index = [Some(slots.shallow_clone()), None, Some(pos_t)];
                    let _ = cache.keys[layer].index_put_(&index, &k.squeeze_dim(2), false);
                    let _ = cache.values[layer].index_put_(&index, &v.squeeze_dim(2), false);
                    let len = pos.iter().copied().max().unwrap_or(0) + 1;
                    let gather = |all: &Tensor| {
                        if b == 1 {
                            all.narrow(0, pos_slot(pass), 1).narrow(2, 0, len)
                        } else {
                            all.narrow(2, 0, len).index_select(0, slots)
                        }
                    };
                    (gather(&cache.keys[layer]), gather(&cache.values[layer]))
                }
                (Pass::Prefill { slot, start }, Some(cache)) => {
                    let store = |all: &mut Tensor, new: &Tensor| {
                        all.get(slot).narrow(1, start, t).copy_(&new.squeeze_dim(0));
                        all.narrow(0, slot, 1).narrow(2, 0, start + t)
                    };
                    (
                        store(&mut cache.keys[layer], &k),
                        store(&mut cache.values[layer], &v),
                    )
                }
            };
            let attended = Tensor::scaled_dot_product_attention(
                &q,
                &keys,
                &values,
                mask.as_ref(),
                0.0,
                mask.is_none() && t > 1,
                None,
                heads != kv_heads,
            );
            let attended = attended.transpose(1, 2).reshape([b, t, heads * hd]);
            x += block.o.forward(&attended);
            let normed = self.rms_norm(&x, &block.post_norm);
            let gated = block.gate.forward(&normed).silu() * block.up.forward(&normed);
            x += block.down.forward(&gated);
        }
        self.rms_norm(&x, &self.norm)
    }

    /// Next-token logits `[.., vocab]` (float32) from hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.lm_head.forward(hidden).to_kind(Kind::Float)
    }

    /// Logits `[t, vocab]` of every position of `tokens`, without cache (evaluation).
    pub fn logits_of_sequence(&self, tokens: &[u32]) -> Tensor {
        tch::no_grad(|| {
            let ids = token_tensor(tokens).view([1, -1]);
            self.logits(&self.forward(&ids, Pass::Full, None))
                .squeeze_dim(0)
        })
    }

    /// Boolean mask `[b, 1, t, keys]` (true = may attend), or `None` when plain causal
    /// attention from position 0 (or a single query over everything before it) is exact.
    fn attention_mask(&self, pass: Pass<'_>, positions: &Tensor, t: i64) -> Option<Tensor> {
        let window = self.config.sliding_window;
        let keys = match pass {
            Pass::Decode { positions: p, .. } => {
                let len = p.iter().copied().max().unwrap_or(0) + 1;
                let uniform = p.iter().all(|x| *x == len - 1);
                if uniform && window.is_none_or(|w| len <= w) {
                    return None;
                }
                len
            }
            Pass::Prefill { start, .. } => {
                if start == 0 && window.is_none_or(|w| t <= w) {
                    return None;
                }
                start + t
            }
            Pass::Full => {
                if window.is_none_or(|w| t <= w) {
                    return None;
                }
                t
            }
        };
        let key_pos = Tensor::arange(keys, int64())
            .to_device(self.device)
            .view([1, 1, keys]);
        let query_pos = positions.unsqueeze(-1); // [b, t, 1]
        let mut allowed = key_pos.le_tensor(&query_pos);
        if let Some(w) = window {
            allowed = allowed.logical_and(&key_pos.gt_tensor(&(query_pos - w)));
        }
        Some(allowed.unsqueeze(1))
    }

    fn rms_norm(&self, x: &Tensor, weight: &Tensor) -> Tensor {
        let xf = x.to_kind(Kind::Float);
        let variance = xf.square().mean_dim(-1, true, Kind::Float);
        let normed = xf * (variance + self.config.rms_norm_eps).rsqrt();
        normed.to_kind(self.kind) * weight
    }
}

fn pos_slot(pass: Pass<'_>) -> i64 {
    match pass {
        Pass::Decode { slots, .. } => slots[0],
        Pass::Prefill { slot, .. } => slot,
        Pass::Full => 0,
    }
}

fn int64() -> (Kind, Device) {
    (Kind::Int64, Device::Cpu)
}

/// Token ids as an i64 tensor on the CPU.
pub(super) fn token_tensor(tokens: &[u32]) -> Tensor {
    let ids: Vec<i64> = tokens.iter().map(|t| i64::from(*t)).collect();
    Tensor::from_slice(&ids)
}

fn tensors_missing(name: &str) -> crate::error::Error {
    crate::error::Error::ModelLoad {
        path: name.into(),
        message: format!(
            "the checkpoint has no {name} and config.json does not tie the word embeddings"
        ),
    }
}
