//! Keys and values of every sequence slot, preallocated: `[slots, kv_heads, ctx, head_dim]` per
//! layer. A sequence owns one slot; its position `p` lives at index `p` along the context axis.

use tch::{Device, Kind, Tensor};

use super::config::LlamaConfig;

/// The KV cache of all slots.
pub(super) struct KvCache {
    pub(super) keys: Vec<Tensor>,
    pub(super) values: Vec<Tensor>,
    slots: i64,
    ctx: i64,
}

impl KvCache {
    /// Zeroed cache for `slots` sequences of `ctx` tokens each.
    pub(super) fn new(
        config: &LlamaConfig,
        slots: i64,
        ctx: i64,
        kind: Kind,
        device: Device,
    ) -> Self {
        let shape = [slots, config.num_key_value_heads, ctx, config.head_dim];
        let make = || {
            (0..config.num_hidden_layers)
                .map(|_| Tensor::zeros(shape, (kind, device)))
                .collect::<Vec<_>>()
        };
        Self {
            keys: make(),
            values: make(),
            slots,
            ctx,
        }
    }

    /// Tokens one slot holds at most.
    pub(super) fn ctx(&self) -> i64 {
        self.ctx
    }

    /// Number of slots.
    pub(super) fn slots(&self) -> i64 {
        self.slots
    }

    /// Bytes the cache occupies.
    pub(super) fn bytes(&self) -> u64 {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|t| (t.numel() * t.kind().elt_size_in_bytes()) as u64)
            .sum()
    }
}
